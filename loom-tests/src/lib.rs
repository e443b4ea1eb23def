//! loom models of strata's concurrent protocols.
//!
//! The models live in `tests/`, one file per protocol, and run the
//! engine's real code: built with `RUSTFLAGS="--cfg strata_loom"`, every
//! lock and atomic of `strata` comes from loom, which then explores the
//! interleavings of a few threads exhaustively (up to a preemption bound).
//! This library holds what the models share.
//!
//! ```text
//! .ci/loom.sh        # all models, release, LOOM_MAX_PREEMPTIONS=2, own target dir
//! ```
#![forbid(unsafe_code)]

#[cfg(strata_loom)]
mod shared {
    use std::time::Duration;

    use strata::{Cache, ManualClock};

    /// The hasher every model uses: fixed seeds, so that each explored
    /// execution takes the same path through the hash tables.
    pub type Hasher = ahash::RandomState;

    /// A fixed-seed hasher (see [`Hasher`]).
    pub fn hasher() -> Hasher {
        ahash::RandomState::with_seeds(1, 2, 3, 4)
    }

    /// A one-shard cache of `capacity` entries on a manual clock, with a
    /// time-to-live of 10 s.
    pub fn small_cache(capacity: u64, clock: &ManualClock) -> Cache<u64, u64, Hasher> {
        Cache::builder()
            .max_capacity(capacity)
            .shards(1)
            .time_to_live(Duration::from_secs(10))
            .clock(clock.clone())
            .hasher(hasher())
            .build()
            .expect("valid settings")
    }

    /// The bound the models are explored to unless `LOOM_MAX_PREEMPTIONS`
    /// says otherwise.
    pub fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        builder.check(f);
    }
}

#[cfg(strata_loom)]
pub use shared::*;
