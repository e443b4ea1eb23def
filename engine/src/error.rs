//! Errors of the engine.

use std::fmt;

/// A setting that `CacheBuilder::build` refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity was zero.
    #[error("max capacity must be at least 1")]
    ZeroCapacity,
    /// The capacity was larger than the engine can account for.
    #[error("max capacity {given} exceeds the supported maximum {max}")]
    CapacityTooLarge {
        /// The capacity asked for.
        given: u64,
        /// The largest supported capacity.
        max: u64,
    },
    /// The shard count was zero, not a power of two, or too large.
    #[error("shard count {given} must be a power of two between 1 and {max}")]
    InvalidShards {
        /// The shard count asked for.
        given: usize,
        /// The largest supported shard count.
        max: usize,
    },
    /// More shards than units of capacity: some shards could hold nothing.
    #[error("{shards} shards exceed max capacity {capacity}; use fewer shards")]
    ShardsExceedCapacity {
        /// The shard count asked for.
        shards: usize,
        /// The capacity asked for.
        capacity: u64,
    },
    /// Freshness windows were set, but nothing can run their background
    /// reloads.
    #[error("stale_while_revalidate and refresh_before need a spawner; set one or enable the tokio feature")]
    NoSpawner,
    /// A chunk store's chunk size of zero.
    #[error("chunk size must be at least 1 byte")]
    ZeroChunkSize,
    /// The spill directory could not be opened (feature `spill`).
    #[cfg(feature = "spill")]
    #[error("cannot open the spill tier: {0}")]
    Spill(#[source] crate::spill::SpillError),
    /// A time-to-live or time-to-idle of zero.
    #[error("{which} must be greater than zero")]
    ZeroDuration {
        /// `"time_to_live"` or `"time_to_idle"`.
        which: &'static str,
    },
}

/// An entry the cache could not take; the key and value come back.
#[non_exhaustive]
pub enum InsertError<K, V> {
    /// The entry weighs more than one shard's share of the capacity
    /// (`max_capacity / shards`), so it could never be held. If the key was
    /// cached, its old value was removed, so that a stale value is not
    /// served.
    TooHeavy {
        /// The key given to `insert`.
        key: K,
        /// The value given to `insert`.
        value: V,
        /// The entry's weight.
        weight: u32,
        /// The largest weight an entry may have in this cache.
        max_weight: u64,
    },
}

impl<K, V> InsertError<K, V> {
    /// The key and value that were not stored.
    pub fn into_inner(self) -> (K, V) {
        match self {
            Self::TooHeavy { key, value, .. } => (key, value),
        }
    }
}

impl<K, V> fmt::Debug for InsertError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooHeavy {
                weight, max_weight, ..
            } => f
                .debug_struct("TooHeavy")
                .field("weight", weight)
                .field("max_weight", max_weight)
                .finish_non_exhaustive(),
        }
    }
}

impl<K, V> fmt::Display for InsertError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooHeavy {
                weight, max_weight, ..
            } => write!(
                f,
                "entry of weight {weight} exceeds the per-entry maximum {max_weight}; raise max_capacity or use fewer shards"
            ),
        }
    }
}

impl<K, V> std::error::Error for InsertError<K, V> {}
