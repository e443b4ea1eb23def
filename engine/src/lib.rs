//! strata: a sharded, weight-bounded cache with W-TinyLFU eviction.
//!
//! A [`Cache`] is split into a power-of-two number of shards, each a lock
//! around a hash table of the shard's entries and its eviction state, on a
//! cache line of its own. A hit takes only its shard's *read* lock, finds
//! the entry, bumps a saturating counter on it and clones the value, so
//! values are usually `Arc`s, `Bytes` or small copies.
//!
//! ```
//! use std::time::Duration;
//! use strata::{Cache, RemovalCause};
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(60))
//!     .eviction_listener(|key: u64, _value: String, cause: RemovalCause| {
//!         if cause.was_evicted() {
//!             eprintln!("{key} left the cache: {cause:?}");
//!         }
//!     })
//!     .build()?;
//!
//! cache.insert(7, "seven".to_string())?;
//! assert_eq!(cache.get(&7).as_deref(), Some("seven"));
//! assert_eq!(cache.stats().hits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Eviction
//!
//! W-TinyLFU: new entries pass through a small LRU admission window; to
//! enter the main space (a segmented LRU of probation and protected) they
//! must be asked for more often than the entry they would displace,
//! according to a count-min sketch of 4-bit counters behind a doorkeeper
//! Bloom filter, halved periodically so that popularity fades. Each shard
//! tunes its window size by hill climbing on the cache's hit ratio, so
//! recency-heavy and frequency-heavy workloads both do well, and a sharp
//! drop in hit ratio (a new phase of the workload) ages the sketch early.
//! LRU order within each queue is approximated CLOCK-style from per-entry
//! reference bits, so a hit never reorders anything. Capacity is by weight
//! (a [`Weigher`], 1 per entry by default); one entry may weigh at most a
//! shard's share of the capacity.
//!
//! # Expiry
//!
//! A cache-wide time-to-live and time-to-idle, and per-entry time-to-live
//! ([`Cache::insert_with_ttl`]). An expired entry is never returned;
//! expired entries are reclaimed by a per-shard hierarchical timer wheel as
//! the shard is written (or read and found expired), never by a scan.
//!
//! # Loading
//!
//! [`Cache::get_or_load`] and [`Cache::try_get_or_load`] run a loader on a
//! miss, once for all concurrent callers of a key (single flight); errors
//! reach every waiter as one shared [`LoadError`] and are not cached; a
//! cancelled leader hands the load to a waiter; and a load never stores a
//! result older than a write (`insert`, `remove`, `clear`) of its key that
//! happened while it ran. They need no particular async runtime.
//!
//! [`Cache::load`] adds freshness windows: with
//! [`stale_while_revalidate`](CacheBuilder::stale_while_revalidate) an entry
//! past its time-to-live is still returned for a while, marked stale, while
//! one background reload runs; with
//! [`refresh_before`](CacheBuilder::refresh_before) an entry near its
//! time-to-live is renewed in the background before it expires. Plain
//! reads never return stale values.
//!
//! # Tags
//!
//! [`Cache::insert_with_tags`] labels an entry; [`Cache::invalidate_tag`]
//! and [`Cache::invalidate_tags`] remove every entry carrying a label. The
//! per-shard tag index holds only the entries the cache holds (an entry
//! leaves it when it leaves the cache), and exists only once a shard sees a
//! tagged entry.
//!
//! # Chunked range storage
//!
//! [`chunks::ChunkStore`] keeps large objects as fixed-size chunks, each a
//! weighted entry of its own cache: range reads (with HTTP's `first-last`,
//! `first-` and `-suffix` forms) touch only the chunks they need and return
//! slices of them without copying, objects may be cached in part, and
//! chunks of two versions of an object are never mixed.
//!
//! # A second tier
//!
//! [`tiered::TieredCache`] puts a remote [`tiered::SecondTier`] (the
//! `strata-redis` crate implements one for Redis and Redis Cluster) behind
//! a cache: reads go L1 → tier → loader with one flight per key across
//! both, values go to the tier through or behind, tier hits are promoted
//! into L1, tier failures are misses behind a circuit breaker, and
//! invalidations the tier hears of (writes by other instances) leave L1.
//!
//! # Removal listener
//!
//! An [`EvictionListener`] hears of every entry that leaves, exactly once,
//! with its [`RemovalCause`], from the operation that removed it, after the
//! shard lock is released (so it may call into the cache).
//!
//! # Memory
//!
//! An entry costs its key and value plus 16 bytes of links, weight and
//! state, 4 bytes of sketch, and a `u32` hash-table slot. The entry
//! vector grows by doubling but never past the shard's capacity (with the
//! unit weigher); per-entry timers (32 bytes) are allocated only once a
//! shard sees its first deadline. `clear` gives the memory back.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokio` | background reloads of the freshness windows run on `tokio::spawn` when no [`Spawner`] is given |
//! | `spill` | the [`spill`] tier: evicted entries kept in memory-mapped files, found again after a restart |
//! | `serde` | [`codec::Serde`]: any serde type as a spilled (or remote) key or value |
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod builder;
mod cache;
pub mod chunks;
mod climber;
mod clock;
pub mod codec;
mod error;
mod listener;
mod load;
mod policy;
mod shard;
mod single_flight;
mod sketch;
#[cfg(feature = "spill")]
pub mod spill;
mod spill_hook;
mod stats;
mod sync;
mod tags;
pub mod tiered;
mod timer_wheel;

pub use builder::{CacheBuilder, Config, MAX_CAPACITY, MAX_SHARDS};
pub use cache::{Cache, Iter};
pub use clock::ManualClock;
pub use error::{ConfigError, InsertError};
pub use listener::{BackgroundTask, EvictionListener, RemovalCause, Spawner, Weigher};
pub use load::{Freshness, LoadError, Loaded};
pub use stats::{SpillStats, Stats};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
