//! Shared code of strata's benchmarks: the engines compared, the workloads
//! they are fed, and the reference policies their hit ratios are judged
//! against.
//!
//! - [`BenchCache`] puts strata and its peers (moka, quick_cache, foyer with
//!   S3-FIFO and with W-TinyLFU eviction, and a never-evicting sharded map as
//!   an upper bound on speed) behind one small interface over `u64` keys;
//!   [`Peer`] names them and builds them.
//! - [`zipf_keys`] draws seeded Zipf-distributed key streams.
//! - [`arc_oltp`] and [`lirs_glimpse`] read the recorded traces described in
//!   `shared/traces/README.md`.
//! - [`opt_hits`] (Belady's clairvoyant policy) and [`lru_hits`] (exact LRU)
//!   are the reference points of the hit-ratio tables.
//!
//! The binaries `hit_ratio` and `memory` and the criterion bench
//! `throughput` are built on top of this.
#![deny(unsafe_code)]

mod lru;
mod opt;
mod peer;
#[cfg(feature = "spill")]
pub mod spill;
mod trace;
mod workload;

pub use lru::{lru_hits, Lru};
pub use opt::opt_hits;
pub use peer::{
    Accounting, BenchCache, FoyerCache, FoyerEviction, MokaCache, Peer, QuickCache, ShardedMap,
    StrataCache,
};
pub use trace::{arc_oltp, lirs_glimpse, traces_dir, TRACES_ENV};
pub use workload::{scramble, zipf_keys};
