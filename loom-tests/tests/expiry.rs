//! Expiry racing a read and a re-insert.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use loom::thread;
use strata::ManualClock;
use strata_loom::{model, small_cache};

/// Invariant: once the clock has passed an entry's time-to-live, no read
/// returns it, whatever a concurrent re-insert does; the re-inserted
/// value stays; the expired entry is counted once (expired or replaced).
#[test]
fn an_expired_entry_is_never_read_back() {
    model(|| {
        let clock = ManualClock::new();
        let cache = small_cache(4, &clock);
        cache.insert(1, 10).unwrap();
        clock.advance(Duration::from_secs(11));
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1))
        };
        cache.insert(1, 11).unwrap();
        let seen = reader.join().unwrap();
        assert!(matches!(seen, None | Some(11)), "{seen:?}");
        assert_eq!(cache.get(&1), Some(11));
        let stats = cache.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.inserts + stats.updates, 2);
    });
}

/// Invariant: a clock moving while a reader looks never makes an entry
/// come back after a reader saw it expired.
#[test]
fn time_moving_during_reads() {
    model(|| {
        let clock = ManualClock::new();
        let cache = small_cache(4, &clock);
        cache.insert(1, 10).unwrap();
        let mover = {
            let clock = clock.clone();
            thread::spawn(move || clock.advance(Duration::from_secs(11)))
        };
        let first = cache.get(&1);
        let second = cache.get(&1);
        mover.join().unwrap();
        assert!(!(first.is_none() && second.is_some()), "came back");
        assert_eq!(cache.get(&1), None);
    });
}
