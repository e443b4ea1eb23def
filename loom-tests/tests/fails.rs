//! Evidence that the models can fail: a deliberately racy use of the
//! cache that loom must catch.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use strata::ManualClock;
use strata_loom::{model, small_cache};

/// Hand-rolled cache-aside (`get`, and on a miss load and `insert`), as
/// the seed tutorial writes it: two threads can both miss and both load.
/// `get_or_load` exists to prevent exactly this (see
/// `single_flight::two_misses_one_load`); loom must find the interleaving.
#[test]
#[should_panic(expected = "loaded twice")]
fn naive_cache_aside_loads_twice() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let naive = |cache: strata::Cache<u64, u64, strata_loom::Hasher>,
                     calls: Arc<AtomicUsize>| {
            if cache.get(&7).is_none() {
                calls.fetch_add(1, Ordering::SeqCst);
                cache.insert(7, 70).unwrap();
            }
        };
        let other = {
            let (cache, calls) = (cache.clone(), Arc::clone(&calls));
            thread::spawn(move || naive(cache, calls))
        };
        naive(cache.clone(), Arc::clone(&calls));
        other.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "loaded twice");
    });
}
