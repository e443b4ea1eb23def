//! The spill index: a record published while another is read and the
//! segment holding it is reclaimed.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bytes::Bytes;
use loom::thread;
use strata::spill::SpillConfig;
use strata::{Cache, ManualClock};
use strata_loom::{hasher, model, Hasher};

const VALUE: usize = 20 << 10;

fn value(key: u64) -> Bytes {
    let mut v = vec![key as u8; VALUE];
    v[..8].copy_from_slice(&key.to_le_bytes());
    Bytes::from(v)
}

fn is_value_of(key: u64, v: &Bytes) -> bool {
    *v == value(key)
}

/// A one-entry cache spilling into two 64 KiB segments at most.
fn open(dir: &PathBuf) -> Cache<u64, Bytes, Hasher> {
    Cache::builder()
        .max_capacity(1)
        .shards(1)
        .clock(ManualClock::new())
        .hasher(hasher())
        .spill(SpillConfig::new(dir, 128 << 10).segment_size(64 << 10))
        .build()
        .expect("spill directory")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("strata-loom-{name}-{}", std::process::id()))
}

/// Two 64 KiB segments of budget, three 20 KiB records each, memory for
/// one entry: after seven inserts both segments are full, so the next
/// spill rolls to a new segment and reclaims the oldest (copying forward
/// the records read since they were written).
///
/// Invariant: a read racing that insert returns the key's own value or
/// nothing (never bytes of a reclaimed or reused slot); afterwards every
/// key reads back as its own value or not at all, nothing is counted
/// corrupt, and the files stay within the budget.
#[test]
fn publish_read_and_reclaim() {
    let dir = scratch("spill");
    model(move || {
        let _ = std::fs::remove_dir_all(&dir);
        let cache = open(&dir);
        for key in 0..7 {
            cache.insert(key, value(key)).unwrap();
        }
        assert_eq!(cache.stats().spill.segments, 2);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&0))
        };
        cache.insert(7, value(7)).unwrap();
        let seen = reader.join().unwrap();
        assert!(seen.as_ref().is_none_or(|v| is_value_of(0, v)));
        for key in 0..8 {
            if let Some(v) = cache.peek(&key) {
                assert!(is_value_of(key, &v), "key {key}");
            }
        }
        let stats = cache.stats().spill;
        assert_eq!(stats.corrupt, 0);
        assert!(stats.disk_bytes <= 128 << 10);
    });
    let _ = std::fs::remove_dir_all(scratch("spill"));
}

/// Invariant: a key removed while its spilled record is being read is
/// gone afterwards (no promotion puts it back), and stays gone when the
/// directory is opened again.
#[test]
fn remove_races_a_promotion() {
    let dir = scratch("promote");
    model(move || {
        let _ = std::fs::remove_dir_all(&dir);
        let cache = open(&dir);
        for key in 0..3 {
            cache.insert(key, value(key)).unwrap();
        }
        let on_disk = (0..3).find(|k| cache.iter().all(|(m, _)| m != *k)).unwrap();
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&on_disk))
        };
        cache.remove(&on_disk);
        let seen = reader.join().unwrap();
        assert!(seen.as_ref().is_none_or(|v| is_value_of(on_disk, v)));
        assert!(
            cache.peek(&on_disk).is_none(),
            "removed, then promoted back"
        );
        drop(cache);
        assert!(open(&dir).peek(&on_disk).is_none(), "back after a restart");
    });
    let _ = std::fs::remove_dir_all(scratch("promote"));
}
