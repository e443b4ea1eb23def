//! The tag index against an invalidation and a tagged insert.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use loom::thread;
use strata::ManualClock;
use strata_loom::{model, small_cache};

/// Invariant: an invalidation removes every entry tagged before it ran;
/// an entry tagged concurrently is either removed (and counted) or stays
/// and is still found by the next invalidation of its tag: the index
/// never loses a tagged entry and never removes an untagged one.
#[test]
fn invalidation_races_a_tagged_insert() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        cache.insert_with_tags(1, 10, &["t"]).unwrap();
        cache.insert(3, 30).unwrap();
        let inserter = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert_with_tags(2, 20, &["t", "u"]).unwrap())
        };
        let removed = cache.invalidate_tag("t");
        inserter.join().unwrap();
        assert_eq!(cache.get(&1), None);
        match removed {
            2 => assert_eq!(cache.get(&2), None),
            1 => {
                assert_eq!(cache.get(&2), Some(20));
                assert_eq!(cache.invalidate_tag("u"), 1);
            }
            n => panic!("removed {n}"),
        }
        assert_eq!(cache.get(&3), Some(30), "untagged entries stay");
        assert_eq!(cache.invalidate_tag("t"), 0);
    });
}
