//! strata-redis: a Redis or Redis Cluster second tier for the strata cache
//! engine, with cross-instance L1 invalidation.
//!
//! [`RedisTier`] implements [`strata::tiered::SecondTier`]; compose it with
//! an in-process [`strata::Cache`] through [`strata::tiered::TieredCache`]:
//! reads go L1 → Redis → your loader, writes go to both, and an update or
//! delete on one instance removes the key from every other instance's L1.
//!
//! ```no_run
//! use std::time::Duration;
//! use strata::{tiered::TieredCache, Cache};
//! use strata_redis::RedisTier;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let l1: Cache<String, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .build()?;
//! let tier = RedisTier::builder("redis://127.0.0.1:6379")
//!     .namespace("users")
//!     .timeout(Duration::from_millis(100))
//!     .connect()
//!     .await?;
//! let cache = TieredCache::builder(l1, tier).build()?;
//! let name = cache
//!     .try_get_or_load("user:7".to_string(), || async { Ok::<_, std::io::Error>("Ada".to_string()) })
//!     .await?;
//! assert_eq!(name, "Ada");
//! # Ok(()) }
//! ```
//!
//! # Storage layout
//!
//! Under a namespace `ns`, a value lives at `ns:d:<key>` as one strata codec
//! record (key, value, expiry, tags, checksum) with a server-side TTL
//! (`PX`); a tag is a set at `ns:t:<tag>` holding the Redis keys of its
//! entries, expiring with the longest-lived of them. Reads verify every
//! record, so garbage under a key is a miss, not an error.
//!
//! # Invalidation
//!
//! The tier's connection runs RESP3 client tracking in broadcast mode for
//! `ns:d:` (`CLIENT TRACKING ON BCAST PREFIX ns:d: NOLOOP`): every write
//! or delete of a key under the namespace, by anyone, and every expiry or
//! eviction of one, pushes an invalidation to every instance but the
//! writer, which drops the key from L1; a `FLUSHALL` pushes one without
//! keys, which clears L1. When the connection drops, invalidations may be
//! lost: L1 is cleared at once, tracking is turned on again when the
//! connection is back (it is not replayed by the `redis` crate), and L1 is
//! cleared once more, since entries loaded meanwhile could not be
//! invalidated. A check every second finds tracking turned off by any other
//! path (a reconnect that sent no notice) and does the same.
//!
//! # Failures
//!
//! Every call is bounded by [`RedisTierBuilder::timeout`] (100 ms by
//! default), including waits for a reconnect; the tiered cache treats a
//! failed read as a miss and stops calling a dead Redis for a while
//! (its circuit breaker).
//!
//! [`RedisTierBuilder::connect`] needs Redis up; a service that must start
//! without it uses [`RedisTierBuilder::connect_lazy`]: calls are misses
//! until the first connection, made in the background.
//!
//! # Redis Cluster
//!
//! [`RedisTier::cluster_builder`] takes seed nodes. Multi-key reads and
//! deletes are split by slot by the cluster client; a value and its tags
//! are written with one command per slot; tracking is enabled on every
//! master.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod error;
mod tier;
mod tracking;

pub use error::Error;
pub use tier::{RedisTier, RedisTierBuilder, RedisTierStats};
