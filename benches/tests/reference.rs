//! Checks of the reference policies, the workload generator and the trace
//! readers, against hand-computed answers and brute force.
#![forbid(unsafe_code)]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_benches::{arc_oltp, lirs_glimpse, lru_hits, opt_hits, zipf_keys, Lru};

#[test]
fn lru_matches_hand_count() {
    // cap 2: 1 m, 2 m, 1 h, 3 m (evicts 2), 1 h, 2 m (evicts 3)
    assert_eq!(lru_hits(&[1, 2, 1, 3, 1, 2], 2), 2);
    // A loop one larger than the cache: LRU never hits.
    assert_eq!(lru_hits(&[1, 2, 3, 1, 2, 3, 1, 2, 3], 2), 0);
    assert_eq!(lru_hits(&[1, 1, 1], 0), 0);
}

#[test]
fn opt_matches_hand_count() {
    // cap 2: 3 is bypassed (used last), so 1 and 2 hit once each; the
    // second 3 misses again.
    assert_eq!(opt_hits(&[1, 2, 3, 1, 2, 3], 2), 2);
    // Belady's textbook string with 3 frames: 7 faults, 5 hits.
    assert_eq!(opt_hits(&[1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5], 3), 5);
    assert_eq!(opt_hits(&[1, 1, 1], 0), 0);
}

/// Best hit count over every admit/evict decision sequence (exponential).
fn brute_force_opt(trace: &[u64], capacity: usize, resident: &mut Vec<u64>) -> u64 {
    let Some((&key, rest)) = trace.split_first() else {
        return 0;
    };
    if resident.contains(&key) {
        return 1 + brute_force_opt(rest, capacity, resident);
    }
    // Bypass.
    let mut best = brute_force_opt(rest, capacity, resident);
    if resident.len() < capacity {
        resident.push(key);
        best = best.max(brute_force_opt(rest, capacity, resident));
        resident.pop();
    } else {
        for slot in 0..resident.len() {
            let evicted = std::mem::replace(&mut resident[slot], key);
            best = best.max(brute_force_opt(rest, capacity, resident));
            resident[slot] = evicted;
        }
    }
    best
}

/// Straightforward LRU: a vector ordered from least to most recent.
fn naive_lru_hits(trace: &[u64], capacity: usize) -> u64 {
    let mut order: Vec<u64> = Vec::new();
    let mut hits = 0;
    if capacity == 0 {
        return 0;
    }
    for &key in trace {
        if let Some(at) = order.iter().position(|&k| k == key) {
            hits += 1;
            order.remove(at);
        } else if order.len() == capacity {
            order.remove(0);
        }
        order.push(key);
    }
    hits
}

#[test]
fn opt_and_lru_match_brute_force_on_random_traces() {
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..30 {
        let len = rng.random_range(1..=11);
        let keys = rng.random_range(1..=5);
        let trace: Vec<u64> = (0..len).map(|_| rng.random_range(0..keys)).collect();
        for capacity in 0..=3 {
            let best = brute_force_opt(&trace, capacity, &mut Vec::new());
            assert_eq!(
                opt_hits(&trace, capacity),
                best,
                "OPT on {trace:?} cap {capacity}"
            );
            assert_eq!(
                lru_hits(&trace, capacity),
                naive_lru_hits(&trace, capacity),
                "LRU on {trace:?} cap {capacity}"
            );
        }
    }
}

#[test]
fn lru_matches_naive_on_a_long_trace() {
    let trace = zipf_keys(500, 0.9, 20_000, 3);
    for capacity in [1, 10, 100] {
        assert_eq!(lru_hits(&trace, capacity), naive_lru_hits(&trace, capacity));
    }
    // A reused instance keeps its state between calls.
    let mut lru = Lru::new(1);
    assert!(!lru.access(7));
    assert!(lru.access(7));
}

#[test]
fn opt_bounds_lru_on_zipf() {
    let trace = zipf_keys(10_000, 1.0, 100_000, 11);
    for capacity in [10, 100, 1_000] {
        let (opt, lru) = (opt_hits(&trace, capacity), lru_hits(&trace, capacity));
        assert!(opt >= lru, "cap {capacity}: OPT {opt} < LRU {lru}");
        assert!(
            lru > 0,
            "cap {capacity}: a Zipf(1) stream must give LRU some hits"
        );
    }
    // Enough room for every key: both hit on everything but first accesses.
    let distinct = trace.iter().collect::<std::collections::HashSet<_>>().len() as u64;
    let all = trace.len() as u64 - distinct;
    assert_eq!(opt_hits(&trace, 10_000), all);
    assert_eq!(lru_hits(&trace, 10_000), all);
}

#[test]
fn zipf_is_seeded_and_skewed() {
    let a = zipf_keys(1_000, 1.0, 10_000, 5);
    assert_eq!(a, zipf_keys(1_000, 1.0, 10_000, 5));
    assert_ne!(a, zipf_keys(1_000, 1.0, 10_000, 6));
    // Keys are scrambled ranks: none of them is a rank itself.
    assert!(a.iter().all(|&k| k > 1_000));
    // The most popular key is rank 1, at about 1 / H(1000) ≈ 13% of draws.
    let top = a
        .iter()
        .filter(|&&k| k == strata_benches::scramble(1))
        .count();
    assert!((1_000..1_700).contains(&top), "rank 1 drawn {top} times");
}

#[test]
fn traces_have_their_documented_sizes() {
    // Sizes from shared/traces/README.md; absent files are skipped.
    match lirs_glimpse().expect("glimpse trace readable") {
        Some(gli) => assert_eq!(gli.len(), 6_015),
        None => eprintln!("skipped: lirs-gli.trace.gz not found"),
    }
    match arc_oltp().expect("OLTP trace readable") {
        Some(oltp) => {
            assert_eq!(oltp.len(), 914_145);
            let distinct = oltp.iter().collect::<std::collections::HashSet<_>>().len();
            assert_eq!(distinct, 186_880);
        }
        None => eprintln!("skipped: arc-OLTP.lis.zst not found"),
    }
}
