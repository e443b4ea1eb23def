//! The removal listener: exactly once, right cause, from the operation that
//! removed the entry, never under a shard lock, and survivable panics.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use strata::{Cache, ManualClock, RemovalCause};

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn logged(capacity: u64) -> (Cache<u64, u64>, Log) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let cache = Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build()
        .unwrap();
    (cache, log)
}

#[test]
fn each_cause_is_reported_once() {
    let (cache, log) = logged(10);
    cache.insert(1, 10).unwrap();
    cache.insert(1, 11).unwrap();
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((1, 10, RemovalCause::Replaced))
    );
    assert_eq!(cache.remove(&1), Some(11));
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((1, 11, RemovalCause::Removed))
    );
    cache.insert(2, 20).unwrap();
    cache.insert(3, 30).unwrap();
    cache.retain(|k, _| *k != 2);
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((2, 20, RemovalCause::Removed))
    );
    cache.clear();
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((3, 30, RemovalCause::Cleared))
    );
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn evictions_fire_from_the_insert_that_caused_them() {
    let (cache, log) = logged(100);
    for i in 0..100 {
        cache.insert(i, i).unwrap();
    }
    assert!(log.lock().unwrap().is_empty());
    for i in 100..1000 {
        let before = log.lock().unwrap().len();
        cache.insert(i, i).unwrap();
        // The insert itself reported its eviction: nothing deferred.
        assert_eq!(log.lock().unwrap().len(), before + 1, "insert {i}");
        assert_eq!(cache.len(), 100);
    }
    let log = log.lock().unwrap();
    assert!(log.iter().all(|&(_, _, c)| c == RemovalCause::Capacity));
    let mut seen = HashMap::new();
    for &(k, v, _) in log.iter() {
        assert_eq!(k, v);
        assert!(seen.insert(k, ()).is_none(), "{k} reported twice");
    }
    // Every key is either cached or was reported, never both.
    for k in 0..1000 {
        assert!(cache.peek(&k).is_some() != seen.contains_key(&k), "key {k}");
    }
}

#[test]
fn every_entry_is_accounted_for_under_concurrency() {
    let removed = Arc::new(Mutex::new(HashMap::<u64, usize>::new()));
    let sink = Arc::clone(&removed);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(256)
        .shards(2)
        .eviction_listener(move |k, _, cause| {
            if cause != RemovalCause::Replaced {
                *sink.lock().unwrap().entry(k).or_default() += 1;
            }
        })
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..5_000u64 {
                    let key = t * 1_000_000 + i;
                    cache.insert(key, key).unwrap();
                    if i % 7 == 3 {
                        cache.remove(&(key - 3));
                    }
                }
            });
        }
    });
    let removed = removed.lock().unwrap();
    assert!(
        removed.values().all(|&n| n == 1),
        "an entry was reported twice"
    );
    for t in 0..2u64 {
        for i in 0..5_000u64 {
            let key = t * 1_000_000 + i;
            let cached = cache.peek(&key).is_some();
            assert!(cached != removed.contains_key(&key), "key {key}");
        }
    }
}

#[test]
fn listener_may_call_back_into_the_cache() {
    let cell: Arc<OnceLock<Cache<u64, u64>>> = Arc::default();
    let inner = Arc::clone(&cell);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10)
        .shards(1)
        .eviction_listener(move |k, v, cause| {
            if cause == RemovalCause::Capacity {
                if let Some(cache) = inner.get() {
                    // Would deadlock if the shard lock were held.
                    assert_eq!(cache.get(&k), None);
                    let _ = cache.len();
                    let _ = v;
                }
            }
        })
        .build()
        .unwrap();
    cell.set(cache.clone()).unwrap();
    for i in 0..100 {
        cache.insert(i, i).unwrap();
    }
    assert_eq!(cache.len(), 10);
}

#[test]
fn a_panicking_listener_is_reported_and_the_cache_stays_consistent() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&calls);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .shards(1)
        .eviction_listener(move |k, _, _| {
            sink.lock().unwrap().push(k);
            if k == 3 {
                panic!("listener bug");
            }
        })
        .build()
        .unwrap();
    for i in 0..10 {
        cache.insert(i, i).unwrap();
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.clear()));
    assert!(outcome.is_err(), "the panic reaches the caller");
    // All ten were delivered despite the panic in the middle.
    assert_eq!(calls.lock().unwrap().len(), 10);
    assert!(cache.is_empty());
    assert_eq!(cache.stats().listener_panics, 1);
    // Still installed and the cache still works.
    cache.insert(1, 1).unwrap();
    assert_eq!(cache.remove(&1), Some(1));
    assert_eq!(calls.lock().unwrap().len(), 11);
}

#[test]
fn a_panicking_weigher_leaves_the_cache_untouched() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .weigher(|k: &u64, _: &u64| if *k == 13 { panic!("weigher bug") } else { 1 })
        .build()
        .unwrap();
    cache.insert(1, 1).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.insert(13, 13)));
    assert!(outcome.is_err());
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&13), None);
    cache.insert(2, 2).unwrap();
    assert_eq!(cache.get(&2), Some(2));
    assert_eq!(cache.weighted_size(), 2);
}

#[test]
fn expired_entries_are_reported_as_expired() {
    let clock = ManualClock::new();
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .shards(1)
        .clock(clock.clone())
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build()
        .unwrap();
    cache.insert_with_ttl(1, 1, Duration::from_secs(5)).unwrap();
    cache.insert(2, 2).unwrap();
    clock.advance(Duration::from_secs(7));
    // The read that finds it expired reclaims it.
    assert_eq!(cache.get(&1), None);
    assert_eq!(*log.lock().unwrap(), vec![(1, 1, RemovalCause::Expired)]);
    assert_eq!(cache.len(), 1);
}
