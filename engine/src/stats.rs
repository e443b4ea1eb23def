//! A snapshot of the cache's counters.

/// Counters of a cache, summed over its shards when
/// [`Cache::stats`](crate::Cache::stats) was called.
///
/// They add up: `inserts = entries + evictions + expirations + removals +
/// cleared` (updates replace a value in place and do not change the count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `get` calls that returned a value.
    pub hits: u64,
    /// `get` calls that returned nothing (absent or expired).
    pub misses: u64,
    /// Inserts of keys that were not cached.
    pub inserts: u64,
    /// Inserts that replaced the value of a cached key.
    pub updates: u64,
    /// Entries evicted to stay within capacity (including rejected
    /// candidates, see `admissions_rejected`).
    pub evictions: u64,
    /// Entries removed because their time ran out.
    pub expirations: u64,
    /// Entries removed by `remove`, `retain` or a too-heavy update.
    pub removals: u64,
    /// Entries removed by `clear`.
    pub cleared: u64,
    /// Of the evictions: new entries that lost the frequency contest when
    /// they left the admission window.
    pub admissions_rejected: u64,
    /// Inserts refused because the entry was heavier than an entry may be.
    pub rejected_too_heavy: u64,
    /// Panics raised by the eviction listener.
    pub listener_panics: u64,
    /// Entries held at the time of the snapshot (including expired ones
    /// not yet reclaimed).
    pub entries: u64,
    /// Their total weight.
    pub weighted_size: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before any `get`.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let requests = self.hits + self.misses;
        if requests == 0 {
            0.0
        } else {
            self.hits as f64 / requests as f64
        }
    }
}
