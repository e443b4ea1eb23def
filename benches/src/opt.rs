//! Belady's clairvoyant policy (OPT / MIN), the ceiling for hit ratios.

use std::collections::BinaryHeap;

use hashbrown::HashMap;

/// Stands for "never used again".
const NEVER: usize = usize::MAX;

/// Number of hits Belady's optimal policy scores on `trace` with room for
/// `capacity` keys, replayed cache-aside.
///
/// Every access counts. On a miss with the cache full, the policy looks at
/// the resident keys and the newcomer and drops whichever is next used
/// farthest in the future (or never): if that is the newcomer, it is not
/// admitted. This is the variant with bypass, an upper bound for every
/// policy that may decline admission, which W-TinyLFU does.
///
/// Runs in O(n log n): the next use of each access is found in one backward
/// pass, and resident keys sit in a max-heap keyed by next use whose stale
/// entries are skipped (and periodically purged) rather than removed.
///
/// # Examples
///
/// ```
/// use strata_benches::opt_hits;
/// // With one slot, keeping 1 (reused soonest) beats admitting 2.
/// assert_eq!(opt_hits(&[1, 2, 1, 2], 1), 1);
/// ```
#[must_use]
pub fn opt_hits(trace: &[u64], capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let next_use = next_uses(trace);
    // Resident key -> position of its next use.
    let mut resident: HashMap<u64, usize, ahash::RandomState> =
        HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new());
    // (next use, key) of resident keys, farthest first; may hold stale pairs.
    let mut farthest: BinaryHeap<(usize, u64)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0;
    for (&key, &next) in trace.iter().zip(&next_use) {
        if let Some(slot) = resident.get_mut(&key) {
            hits += 1;
            *slot = next;
            farthest.push((next, key));
        } else if resident.len() < capacity {
            resident.insert(key, next);
            farthest.push((next, key));
        } else {
            // Find the resident key used farthest ahead, dropping stale pairs.
            while let Some(&(at, victim)) = farthest.peek() {
                if resident.get(&victim) == Some(&at) {
                    break;
                }
                farthest.pop();
            }
            let Some(&(at, victim)) = farthest.peek() else {
                unreachable!("a full cache has a heap entry per resident key");
            };
            if next < at {
                farthest.pop();
                resident.remove(&victim);
                resident.insert(key, next);
                farthest.push((next, key));
            }
        }
        // Stale pairs sink (their positions are in the past) and pile up;
        // rebuild from the resident set now and then to bound memory.
        if farthest.len() > 4 * capacity + 1024 {
            farthest = resident.iter().map(|(&key, &at)| (at, key)).collect();
        }
    }
    hits
}

/// For each position, the position of the next access to the same key, or
/// [`NEVER`].
fn next_uses(trace: &[u64]) -> Vec<usize> {
    let mut next_use = vec![NEVER; trace.len()];
    let mut seen: HashMap<u64, usize, ahash::RandomState> =
        HashMap::with_hasher(ahash::RandomState::new());
    for (i, &key) in trace.iter().enumerate().rev() {
        if let Some(later) = seen.insert(key, i) {
            next_use[i] = later;
        }
    }
    next_use
}
