//! The counters of a tiered cache.

use crate::sync::{AtomicU64, Ordering};

/// Counters of a [`TieredCache`](super::TieredCache); L1's own are in
/// [`Cache::stats`](crate::Cache::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by the second tier.
    pub l2_hits: u64,
    /// Reads the second tier had nothing (or only an expired record) for.
    pub l2_misses: u64,
    /// Tier reads that failed or timed out (each was a miss to its caller).
    pub l2_errors: u64,
    /// Tier calls not made because the circuit breaker was open.
    pub l2_skipped: u64,
    /// Records from the tier that failed verification (checksum, key,
    /// value decoding) and were treated as misses.
    pub l2_corrupt: u64,
    /// Values written to the tier.
    pub l2_writes: u64,
    /// Tier writes, deletes and tag invalidations that failed.
    pub l2_write_errors: u64,
    /// Loader runs.
    pub loads: u64,
    /// Values copied from the tier into L1.
    pub promotions: u64,
    /// Keys removed from L1 because the tier reported them changed.
    pub invalidated_keys: u64,
    /// Times L1 was cleared because the tier reported a flush or lost its
    /// notifications.
    pub flushes: u64,
    /// Fills not stored because an invalidation of their key overtook them.
    pub fills_dropped: u64,
    /// Times the circuit breaker opened.
    pub breaker_opened: u64,
    /// Whether the breaker is open now.
    pub breaker_open: bool,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) l1_hits: AtomicU64,
    pub(super) l2_hits: AtomicU64,
    pub(super) l2_misses: AtomicU64,
    pub(super) l2_errors: AtomicU64,
    pub(super) l2_skipped: AtomicU64,
    pub(super) l2_corrupt: AtomicU64,
    pub(super) l2_writes: AtomicU64,
    pub(super) l2_write_errors: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) promotions: AtomicU64,
    pub(super) invalidated_keys: AtomicU64,
    pub(super) flushes: AtomicU64,
    pub(super) fills_dropped: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
