//! The cache's public API: lookups, inserts, removal, capacity, snapshots.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use strata::{Cache, ConfigError, InsertError, Stats};

#[test]
fn cache_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache<String, Vec<u8>>>();
    assert_eq!(
        std::mem::size_of::<Cache<u64, u64>>(),
        std::mem::size_of::<usize>()
    );
    let a = Cache::new(10);
    let b = a.clone();
    a.insert(1, 1).unwrap();
    assert_eq!(b.get(&1), Some(1));
}

#[test]
fn get_insert_remove_roundtrip() {
    let cache = Cache::new(100);
    assert_eq!(cache.get(&1), None);
    cache.insert(1, "a").unwrap();
    cache.insert(2, "b").unwrap();
    assert_eq!(cache.get(&1), Some("a"));
    assert!(cache.contains_key(&2));
    assert_eq!(cache.peek(&2), Some("b"));
    cache.insert(1, "c").unwrap();
    assert_eq!(cache.get(&1), Some("c"));
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.remove(&1), Some("c"));
    assert_eq!(cache.remove(&1), None);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.len(), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (2, 2));
    assert_eq!((stats.inserts, stats.updates, stats.removals), (2, 1, 1));
}

#[test]
fn borrowed_lookups() {
    let cache: Cache<String, u32> = Cache::new(10);
    cache.insert("key".to_string(), 1).unwrap();
    assert_eq!(cache.get("key"), Some(1));
    assert_eq!(cache.remove("key"), Some(1));
}

#[test]
fn peek_counts_nothing() {
    let cache = Cache::new(10);
    cache.insert(1, 1).unwrap();
    assert_eq!(cache.peek(&1), Some(1));
    assert_eq!(cache.peek(&2), None);
    assert_eq!(cache.stats().hits + cache.stats().misses, 0);
}

#[test]
fn never_exceeds_capacity() {
    let cache = Cache::builder()
        .max_capacity(1000)
        .shards(4)
        .build()
        .unwrap();
    for i in 0..50_000u64 {
        cache.insert(i % 7919 * 31, i).unwrap();
        if i % 3 == 0 {
            cache.get(&(i % 500));
        }
        assert!(cache.weighted_size() <= 1000);
    }
    assert!(
        cache.len() > 900,
        "a full cache stays nearly full: {}",
        cache.len()
    );
    let stats = cache.stats();
    assert_eq!(
        stats.inserts,
        stats.entries + stats.evictions + stats.expirations + stats.removals + stats.cleared
    );
}

/// One shard whose entries weigh their length in bytes.
fn byte_weighted(capacity: u64) -> Cache<u32, Vec<u8>> {
    Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .weigher(|_: &u32, v: &Vec<u8>| v.len() as u32)
        .build()
        .unwrap()
}

#[test]
fn weights_count_against_capacity() {
    let cache = byte_weighted(1000);
    for i in 0..100 {
        cache.insert(i, vec![0; 90]).unwrap();
        assert!(cache.weighted_size() <= 1000);
    }
    assert_eq!(cache.weighted_size(), cache.len() as u64 * 90);
    // A zero-weight entry still counts as one.
    cache.insert(1000, Vec::new()).unwrap();
    assert!(cache.weighted_size() <= 1000);
}

#[test]
fn too_heavy_entries_are_refused_and_their_stale_value_dropped() {
    let cache = byte_weighted(100);
    cache.insert(1, vec![1; 10]).unwrap();
    let err = cache.insert(1, vec![2; 101]).unwrap_err();
    assert!(matches!(
        err,
        InsertError::TooHeavy {
            weight: 101,
            max_weight: 100,
            ..
        }
    ));
    assert!(err.to_string().contains("exceeds"));
    let (key, value) = err.into_inner();
    assert_eq!((key, value.len()), (1, 101));
    assert_eq!(cache.get(&1), None, "the old value must not be served");
    assert_eq!(cache.stats().rejected_too_heavy, 1);
}

#[test]
fn zero_capacity_new_holds_nothing() {
    let cache = Cache::new(0);
    assert!(cache.insert(1, 1).is_err());
    assert_eq!(cache.get(&1), None);
}

#[test]
fn builder_reports_bad_settings() {
    let err = Cache::<u8, u8>::builder().build().unwrap_err();
    assert_eq!(err, ConfigError::ZeroCapacity);
    let err = Cache::<u8, u8>::builder()
        .max_capacity(100)
        .shards(3)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("power of two"));
    assert!(Cache::<u8, u8>::builder()
        .max_capacity(u64::MAX)
        .build()
        .is_err());
    assert!(Cache::<u8, u8>::builder()
        .max_capacity(10)
        .time_to_idle(std::time::Duration::ZERO)
        .build()
        .is_err());
}

#[test]
fn clear_retain_and_iter() {
    let cache = Cache::new(1000);
    for i in 0..100u32 {
        cache.insert(i, i * 2).unwrap();
    }
    let all: HashSet<(u32, u32)> = cache.iter().collect();
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|&(k, v)| v == k * 2));
    cache.retain(|k, _| k % 2 == 0);
    assert_eq!(cache.len(), 50);
    assert_eq!(cache.get(&3), None);
    assert_eq!(cache.get(&4), Some(8));
    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.weighted_size(), 0);
    let stats: Stats = cache.stats();
    assert_eq!((stats.removals, stats.cleared), (50, 50));
    cache.insert(1, 1).unwrap();
    assert_eq!(cache.get(&1), Some(1));
}

#[test]
fn frequent_keys_survive_a_scan() {
    let cache = Cache::builder()
        .max_capacity(1000)
        .shards(1)
        .build()
        .unwrap();
    for _ in 0..20 {
        for k in 0..500u64 {
            if cache.get(&k).is_none() {
                cache.insert(k, k).unwrap();
            }
        }
    }
    // A long scan of one-hit wonders.
    for k in 10_000..100_000u64 {
        if cache.get(&k).is_none() {
            cache.insert(k, k).unwrap();
        }
    }
    let kept = (0..500u64).filter(|k| cache.peek(k).is_some()).count();
    assert!(
        kept >= 450,
        "hot set mostly kept through the scan: {kept}/500"
    );
    let rejected = cache.stats().admissions_rejected;
    assert!(
        rejected > 70_000,
        "scan keys rejected at admission: {rejected}"
    );
}

#[test]
fn recency_wins_when_the_working_set_shifts() {
    let cache = Cache::builder()
        .max_capacity(1000)
        .shards(1)
        .build()
        .unwrap();
    let mut hits = 0;
    for phase in 0..4u64 {
        for round in 0..30 {
            for k in 0..800u64 {
                let key = phase * 10_000 + k;
                if cache.get(&key).is_some() {
                    if round >= 5 {
                        hits += 1;
                    }
                } else {
                    cache.insert(key, key).unwrap();
                }
            }
        }
    }
    // After warm-up each phase's 800 keys fit; frequency history of the old
    // phase must fade (aging, window growth) for the new keys to get in. A
    // pure LFU would serve almost none of the later phases.
    let possible = 4 * 25 * 800;
    assert!(hits * 100 / possible >= 70, "hit {hits} of {possible}");
}

#[test]
fn zipf_like_reads_from_two_threads() {
    let cache = Cache::new(10_000);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                let mut x = 0x1234_5678_u64 + t;
                for _ in 0..200_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = (x % 1000) * (x % 50);
                    match cache.get(&key) {
                        Some(v) => assert_eq!(v, key * 3),
                        None => {
                            cache.insert(key, key * 3).unwrap();
                        }
                    }
                }
            });
        }
    });
    assert!(cache.len() <= 10_000);
    assert!(cache.stats().hit_ratio() > 0.5);
}

#[test]
fn a_heavy_candidate_meets_several_victims() {
    // One shard and a window of one unit, so the arriving entry is both the
    // admission candidate and the last node, and it must displace several
    // victims one by one before it meets one more popular than itself.
    let cache = byte_weighted(100);
    let make_popular = |key: u32, times: usize| {
        for _ in 0..times {
            cache.insert(key, vec![1]).unwrap();
            cache.remove(&key);
        }
    };
    make_popular(3, 15);
    for key in 0..10 {
        cache.insert(key, vec![0; 10]).unwrap();
    }
    make_popular(99, 8);
    cache.insert(99, vec![9; 45]).unwrap();

    assert!(cache.weighted_size() <= 100);
    assert_eq!(
        cache.peek(&3),
        Some(vec![0; 10]),
        "the most popular entry stays"
    );
    for key in 0..10 {
        if let Some(v) = cache.peek(&key) {
            assert_eq!(v, vec![0; 10], "key {key} kept its own value");
        }
    }
    assert_eq!(cache.peek(&99), None, "the candidate lost to key 3");
    let stats = cache.stats();
    assert!(stats.evictions >= 4, "{stats:?}");
    assert_eq!(
        stats.inserts,
        stats.entries + stats.evictions + stats.expirations + stats.removals + stats.cleared
    );
    assert_eq!(stats.weighted_size, 10 * stats.entries);
}

#[test]
fn hottest_ranks_entries_by_recent_use() {
    let cache: Cache<u32, u32> = Cache::new(1000);
    for key in 0..100 {
        cache.insert(key, key).unwrap();
    }
    // Key 7 read 12 times, key 3 read 8 times, key 50 read 4 times.
    for (key, reads) in [(7, 12), (3, 8), (50, 4)] {
        for _ in 0..reads {
            assert!(cache.get(&key).is_some());
        }
    }
    let top = cache.hottest(3);
    let keys: Vec<u32> = top.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![7, 3, 50], "{top:?}");
    assert!(top[0].1 > top[1].1 && top[1].1 > top[2].1);
    assert_eq!(cache.hottest(0), Vec::new());
    assert_eq!(cache.hottest(1000).len(), 100, "never more than held");
}

#[test]
fn tags_lists_every_tag_with_its_entry_count() {
    let cache: Cache<u32, u32> = Cache::new(1000);
    for key in 0..10 {
        let tags: &[&str] = if key % 2 == 0 {
            &["even", "all"]
        } else {
            &["all"]
        };
        cache.insert_with_tags(key, key, tags).unwrap();
    }
    cache.insert(100, 100).unwrap();
    assert_eq!(
        cache.tags(),
        vec![("all".to_owned(), 10), ("even".to_owned(), 5)]
    );
    cache.invalidate_tag("even");
    assert_eq!(cache.tags(), vec![("all".to_owned(), 5)]);
    assert!(Cache::<u32, u32>::new(10).tags().is_empty());
}
