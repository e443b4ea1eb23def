//! Time-to-live, time-to-idle and incremental reclamation, on a manual clock.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strata::{Cache, ManualClock};

fn cache_with(clock: &ManualClock, ttl: Option<u64>, tti: Option<u64>) -> Cache<u64, u64> {
    let mut builder = Cache::builder().max_capacity(10_000).clock(clock.clone());
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(Duration::from_secs(ttl));
    }
    if let Some(tti) = tti {
        builder = builder.time_to_idle(Duration::from_secs(tti));
    }
    builder.build().unwrap()
}

#[test]
fn ttl_hides_then_reclaims() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, Some(10), None);
    for i in 0..1000 {
        cache.insert(i, i).unwrap();
    }
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(cache.get(&5), Some(5));
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get(&5), None, "expired exactly at the deadline");
    assert!(!cache.contains_key(&6));
    assert_eq!(cache.peek(&7), None);
    assert_eq!(cache.iter().count(), 0);
    assert_eq!(cache.remove(&8), None);
    // Reclaimed by the wheel within a tick (about a second) of the deadline.
    clock.advance(Duration::from_secs(2));
    cache.purge_expired();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 1000);
}

#[test]
fn writes_reclaim_expired_entries_of_their_shard() {
    let clock = ManualClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .shards(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        cache
            .insert_with_ttl(i, i, Duration::from_secs(1 + i % 5))
            .unwrap();
    }
    clock.advance(Duration::from_secs(4));
    cache.insert(1000, 1000).unwrap();
    // Deadlines of 1..=3 s are at least a tick behind and reclaimed; some of
    // the 4 s ones may wait for the next tick.
    let left = cache.len();
    assert!((41..=61).contains(&left), "left {left}");
    clock.advance(Duration::from_secs(3));
    cache.insert(1001, 1001).unwrap();
    assert_eq!(cache.len(), 2);
}

#[test]
fn per_entry_ttl_overrides_the_default() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, Some(60), None);
    cache.insert(1, 1).unwrap();
    cache.insert_with_ttl(2, 2, Duration::from_secs(5)).unwrap();
    cache.insert_with_ttl(3, 3, Duration::MAX).unwrap();
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        (cache.get(&1), cache.get(&2), cache.get(&3)),
        (Some(1), None, Some(3))
    );
    clock.advance(Duration::from_secs(31));
    assert_eq!((cache.get(&1), cache.get(&3)), (None, Some(3)));
}

#[test]
fn reinsert_restarts_the_clock() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, Some(10), None);
    cache.insert(1, 1).unwrap();
    clock.advance(Duration::from_secs(8));
    cache.insert(1, 2).unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(cache.get(&1), Some(2));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get(&1), None);
}

#[test]
fn tti_extends_on_reads_but_not_on_peeks() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, None, Some(10));
    cache.insert(1, 1).unwrap();
    cache.insert(2, 2).unwrap();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(6));
        assert_eq!(cache.get(&1), Some(1), "kept alive by reads");
    }
    assert_eq!(cache.peek(&2), None, "idle for 30 s");
    clock.advance(Duration::from_secs(11));
    assert_eq!(cache.get(&1), None);
    clock.advance(Duration::from_secs(2));
    cache.purge_expired();
    assert_eq!(cache.len(), 0);
}

#[test]
fn ttl_and_tti_together_take_the_earlier() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, Some(20), Some(10));
    cache.insert(1, 1).unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(6));
        assert_eq!(cache.get(&1), Some(1));
    }
    clock.advance(Duration::from_secs(3));
    assert_eq!(cache.get(&1), None, "the TTL ends it despite the reads");
}

#[test]
fn huge_and_tiny_durations_do_not_overflow() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock, None, None);
    cache.insert_with_ttl(1, 1, Duration::MAX).unwrap();
    cache
        .insert_with_ttl(2, 2, Duration::from_nanos(1))
        .unwrap();
    cache.insert_with_ttl(3, 3, Duration::ZERO).unwrap();
    assert_eq!(cache.get(&3), None, "a zero TTL is never served");
    clock.advance(Duration::from_secs(1_000_000_000));
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), None);
    cache.purge_expired();
    assert_eq!(cache.len(), 1);
}

#[test]
fn system_clock_expiry_works_too() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10)
        .time_to_live(Duration::from_millis(20))
        .build()
        .unwrap();
    cache.insert(1, 1).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(cache.get(&1), None);
}
