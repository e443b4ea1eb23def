//! A snapshot of the cache's counters, and the striped hit/miss counters
//! behind it.

use crossbeam_utils::CachePadded;

use crate::sync::{thread_number, AtomicU64, Ordering};

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
    /// Entries removed by `remove`, `retain`, `invalidate_tag(s)` or a
    /// too-heavy update.
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
    /// The spill tier's counters (all zero without one).
    pub spill: SpillStats,
}

/// Counters of the spill tier (all zero without one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillStats {
    /// Memory misses answered from disk.
    pub hits: u64,
    /// Memory misses that disk could not answer either.
    pub misses: u64,
    /// Records written (entries, tombstones and copies).
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Tombstones written for removed or replaced keys.
    pub tombstones: u64,
    /// Writes that failed (disk full, I/O errors); those entries were
    /// dropped instead of spilled.
    pub write_errors: u64,
    /// Entries not spilled: larger than a segment, tagged, or unencodable.
    pub skipped: u64,
    /// Records found damaged (bad checksum or undecodable) at open or on a
    /// read; each was treated as absent.
    pub corrupt: u64,
    /// Segments reclaimed to stay within the budget.
    pub reclaimed_segments: u64,
    /// Entries dropped with them.
    pub reclaimed_entries: u64,
    /// Hot entries copied forward out of reclaimed segments.
    pub reinserted: u64,
    /// Entries found when the directory was opened.
    pub recovered: u64,
    /// Segment files dropped at open (unreadable, or older than a missing
    /// one).
    pub dropped_segments: u64,
    /// Entries on disk now.
    pub entries: u64,
    /// Segment files now.
    pub segments: u64,
    /// Their total size.
    pub disk_bytes: u64,
    /// Whether the admission state saved by the last clean shutdown was
    /// restored at open.
    pub sketch_restored: bool,
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

/// Hit and miss counts, striped by thread so that readers never fight over
/// one cache line. A thread whose number (see `sync::thread_number`; live
/// threads hold distinct numbers) is below [`OWNED_STRIPES`] owns that
/// stripe and counts with a plain load and store: it is the stripe's only
/// writer, so nothing is lost and no locked instruction is paid. Other
/// threads share one stripe and count with atomic adds. A thread that exits
/// hands its number, and the stripe's running totals, to the next thread.
pub(crate) struct RequestCounters {
    owned: Box<[CachePadded<Stripe>]>,
    shared: CachePadded<Stripe>,
}

/// Threads that get a stripe of their own.
const OWNED_STRIPES: usize = 32;

#[derive(Default)]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl RequestCounters {
    pub(crate) fn new() -> Self {
        Self {
            owned: (0..OWNED_STRIPES)
                .map(|_| CachePadded::new(Stripe::default()))
                .collect(),
            shared: CachePadded::new(Stripe::default()),
        }
    }

    #[inline]
    fn count(&self, pick: impl Fn(&Stripe) -> &AtomicU64) {
        match self.owned.get(thread_number()) {
            Some(stripe) => {
                // Only this thread writes this stripe.
                let counter = pick(stripe);
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            None => {
                pick(&self.shared).fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.count(|s| &s.hits);
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.count(|s| &s.misses);
    }

    /// `(hits, misses)` summed over the stripes.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let all = self.owned.iter().map(|s| &**s).chain([&*self.shared]);
        all.fold((0, 0), |(h, m), s| {
            (
                h + s.hits.load(Ordering::Relaxed),
                m + s.misses.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_threads_give_their_numbers_back() {
        let numbers: Vec<usize> = (0..OWNED_STRIPES * 3)
            .map(|_| {
                std::thread::spawn(thread_number)
                    .join()
                    .unwrap_or(usize::MAX)
            })
            .collect();
        // One at a time, so each reuses a number an exited thread freed
        // (other tests' threads may come and go meanwhile).
        let distinct: std::collections::BTreeSet<usize> = numbers.iter().copied().collect();
        assert!(distinct.len() < numbers.len() / 2, "{numbers:?}");
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let counters = RequestCounters::new();
        // More threads than owned stripes, so both paths are taken.
        std::thread::scope(|s| {
            for t in 0..(OWNED_STRIPES + 8) {
                let counters = &counters;
                s.spawn(move || {
                    for i in 0..1000 {
                        if (i + t) % 3 == 0 {
                            counters.miss();
                        } else {
                            counters.hit();
                        }
                    }
                });
            }
        });
        let (hits, misses) = counters.totals();
        assert_eq!(hits + misses, (OWNED_STRIPES as u64 + 8) * 1000);
        assert!(misses > 13_000 && hits > 26_000);
    }
}
