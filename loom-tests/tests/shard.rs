//! One shard under a hit, an update and an eviction at once.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use strata::{Cache, ManualClock, RemovalCause};
use strata_loom::{hasher, model, Hasher};

type Gone = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn cache_with_listener(capacity: u64) -> (Cache<u64, u64, Hasher>, Gone) {
    let gone: Gone = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&gone);
    let cache = Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .clock(ManualClock::new())
        .hasher(hasher())
        .eviction_listener(move |k, v, cause| heard.lock().unwrap().push((k, v, cause)))
        .build()
        .expect("valid settings");
    (cache, gone)
}

/// Three threads: a reader, a writer (an update, then an insert that
/// evicts), and a remover. Invariant: a reader sees a key's old value, its
/// new value or nothing, never another; a removed key stays removed; every value ever inserted is, at the end, either still
/// cached or was handed to the listener, exactly once (none lost, none
/// both evicted and still returned); the weight is within capacity; and
/// the counters add up.
#[test]
fn hit_update_and_eviction_on_one_shard() {
    model(|| {
        let (cache, gone) = cache_with_listener(2);
        cache.insert(1, 10).unwrap();
        cache.insert(2, 20).unwrap();
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1))
        };
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(1, 11).unwrap();
                cache.insert(3, 30).unwrap();
            })
        };
        let removed = cache.remove(&2);
        let seen = reader.join().unwrap();
        writer.join().unwrap();
        assert!(matches!(seen, None | Some(10) | Some(11)), "{seen:?}");
        assert!(matches!(removed, None | Some(20)), "{removed:?}");

        let mut values: Vec<u64> = cache.iter().map(|(_, v)| v).collect();
        values.extend(gone.lock().unwrap().iter().map(|&(_, v, _)| v));
        values.sort_unstable();
        assert_eq!(values, [10, 11, 20, 30], "each value leaves exactly once");
        assert_eq!(cache.peek(&2), None);
        assert_ne!(cache.peek(&1), Some(10), "the overwritten value is gone");

        let stats = cache.stats();
        assert!(stats.weighted_size <= 2);
        assert_eq!(
            stats.inserts,
            stats.entries + stats.evictions + stats.expirations + stats.removals + stats.cleared
        );
    });
}

/// The read side records accesses with relaxed stores on a per-entry byte
/// (reference bit and hit count) under the shard's read lock, and eviction
/// drains them under the write lock. Invariant: every `get` is counted
/// once, as a hit or a miss, and a value returned is one the key had.
#[test]
fn access_recording_races_its_drain() {
    model(|| {
        let (cache, _gone) = cache_with_listener(2);
        cache.insert(1, 10).unwrap();
        cache.insert(2, 20).unwrap();
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || [cache.get(&1), cache.get(&2)])
        };
        cache.insert(3, 30).unwrap();
        let seen = reader.join().unwrap();
        assert!(matches!(seen[0], None | Some(10)));
        assert!(matches!(seen[1], None | Some(20)));
        let stats = cache.stats();
        assert_eq!(stats.hits + stats.misses, 2);
        assert_eq!(stats.hits, seen.iter().flatten().count() as u64);
    });
}
