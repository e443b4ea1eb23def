//! The spill tier against real files: eviction to disk, reads back,
//! restart, damage of every kind, budgets, and failures of the disk.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use strata::spill::{SpillConfig, SpillError};
use strata::{Cache, ConfigError, ManualClock};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("strata-spill-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut found: Vec<_> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dat"))
            .collect();
        found.sort();
        found
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const MIB: u64 = 1 << 20;

fn value(key: u64, len: usize) -> Bytes {
    let mut bytes = vec![(key % 251) as u8; len];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    Bytes::from(bytes)
}

/// A short stand-in for a value in assertion messages: its length and its
/// first eight bytes (which `value` sets to the key).
fn digest(v: Option<Bytes>) -> Option<(usize, u64)> {
    v.map(|v| {
        let mut head = [0u8; 8];
        let n = v.len().min(8);
        head[..n].copy_from_slice(&v[..n]);
        (v.len(), u64::from_le_bytes(head))
    })
}

/// Inserts `value(key, len)` for every key of `keys`.
fn put_all(cache: &Cache<u64, Bytes>, keys: impl IntoIterator<Item = u64>, len: usize) {
    for key in keys {
        cache.insert(key, value(key, len)).unwrap();
    }
}

fn open(
    dir: &Path,
    capacity: u64,
    config: impl FnOnce(SpillConfig) -> SpillConfig,
) -> Cache<u64, Bytes> {
    Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .spill(config(SpillConfig::new(dir, 16 * MIB).segment_size(MIB)))
        .build()
        .unwrap()
}

#[test]
fn evicted_entries_are_read_back_from_disk() {
    let dir = TempDir::new("evict");
    let cache = open(dir.path(), 10, |c| c);
    put_all(&cache, 0..1000, 1000);
    assert!(cache.len() <= 10);
    let stats = cache.stats();
    assert!(stats.spill.writes >= 900, "{stats:?}");
    for key in 0..1000 {
        assert_eq!(
            digest(cache.get(&key)),
            digest(Some(value(key, 1000))),
            "key {key}"
        );
    }
    let stats = cache.stats();
    assert!(stats.spill.hits >= 990, "{:?}", stats.spill);
    assert_eq!(stats.misses, 0);
    // peek and contains_key see disk too, without promoting.
    cache.clear();
    cache.insert(1, value(1, 10)).unwrap();
    assert_eq!(cache.peek(&2), None);
    assert!(!cache.contains_key(&2));
}

#[test]
fn a_later_write_always_wins_over_the_disk() {
    let dir = TempDir::new("wins");
    let cache = open(dir.path(), 4, |c| c);
    put_all(&cache, 0..100, 100);
    // Key 5 is on disk; replace it, then let the new value be evicted too.
    cache.insert(5, value(5_000, 100)).unwrap();
    assert_eq!(digest(cache.get(&5)), digest(Some(value(5_000, 100))));
    for key in 100..200 {
        cache.insert(key, value(key, 100)).unwrap();
    }
    assert_eq!(digest(cache.get(&5)), digest(Some(value(5_000, 100))));
    // A removal of an entry only on disk returns it and removes it.
    assert_eq!(digest(cache.remove(&6)), digest(Some(value(6, 100))));
    assert_eq!(digest(cache.get(&6)), digest(None));
    assert_eq!(cache.remove(&6), None);
}

#[test]
fn restart_restores_intact_entries_and_never_removed_ones() {
    let dir = TempDir::new("restart");
    {
        let cache = open(dir.path(), 8, |c| c);
        put_all(&cache, 0..500, 500);
        for key in (0..500).step_by(7) {
            cache.remove(&key);
        }
        for key in (0..500).step_by(11) {
            cache.insert(key, value(key + 10_000, 500)).unwrap();
        }
        cache.persist().unwrap();
    }
    let cache = open(dir.path(), 8, |c| c);
    // 500 keys, 72 removed (multiples of 7), 7 of those written again
    // (multiples of 77).
    assert_eq!(cache.stats().spill.recovered, 500 - 72 + 7);
    for key in 0..500u64 {
        let expected = if key % 11 == 0 {
            Some(value(key + 10_000, 500))
        } else if key % 7 == 0 {
            None
        } else {
            Some(value(key, 500))
        };
        assert_eq!(digest(cache.get(&key)), digest(expected), "key {key}");
    }
    assert_eq!(cache.stats().spill.corrupt, 0);
}

#[test]
fn without_persist_only_spilled_entries_survive_and_removals_stick() {
    let dir = TempDir::new("nopersist");
    {
        let cache = open(dir.path(), 4, |c| c);
        put_all(&cache, 0..100, 64);
        // Spilled, then removed or replaced (the new value only in memory).
        cache.remove(&10);
        cache.insert(11, value(1_111, 64)).unwrap();
    }
    let cache = open(dir.path(), 4, |c| c);
    assert_eq!(
        digest(cache.get(&10)),
        digest(None),
        "a removed key came back"
    );
    assert_ne!(
        digest(cache.get(&11)),
        digest(Some(value(11, 64))),
        "a replaced value came back"
    );
    assert_eq!(digest(cache.get(&12)), digest(Some(value(12, 64))));
}

#[test]
fn write_on_insert_needs_no_persist() {
    let dir = TempDir::new("through");
    {
        let cache = open(dir.path(), 1000, |c| c.write_on_insert(true));
        put_all(&cache, 0..100, 64);
        cache.insert(3, value(333, 64)).unwrap();
        cache.remove(&4);
        assert_eq!(
            cache.stats().spill.writes,
            101 + 1,
            "100 + update + tombstone"
        );
    }
    let cache = open(dir.path(), 1000, |c| c.write_on_insert(true));
    assert_eq!(cache.len(), 0, "memory starts empty");
    assert_eq!(digest(cache.get(&3)), digest(Some(value(333, 64))));
    assert_eq!(digest(cache.get(&4)), digest(None));
    assert_eq!(digest(cache.get(&99)), digest(Some(value(99, 64))));
}

#[test]
fn expired_entries_are_misses_on_disk_and_after_restart() {
    let dir = TempDir::new("expiry");
    let clock = ManualClock::new();
    let build = |clock: &ManualClock| -> Cache<u64, Bytes> {
        Cache::builder()
            .max_capacity(4)
            .shards(1)
            .time_to_live(Duration::from_secs(60))
            .clock(clock.clone())
            .spill(SpillConfig::new(dir.path(), 16 * MIB).segment_size(MIB))
            .build()
            .unwrap()
    };
    {
        let cache = build(&clock);
        put_all(&cache, 0..50, 64);
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            digest(cache.get(&1)),
            digest(Some(value(1, 64))),
            "fresh on disk"
        );
        clock.advance(Duration::from_secs(31));
        assert_eq!(digest(cache.get(&2)), digest(None), "expired on disk");
        cache.insert(100, value(100, 64)).unwrap();
    }
    let cache = build(&clock);
    assert_eq!(
        digest(cache.get(&3)),
        digest(None),
        "expired before the restart"
    );
    assert_eq!(cache.stats().spill.recovered, 0);
}

#[test]
fn the_budget_holds_through_reclaim() {
    let dir = TempDir::new("budget");
    let budget = 4 * MIB;
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_capacity(16)
        .shards(1)
        .spill(SpillConfig::new(dir.path(), budget).segment_size(MIB))
        .build()
        .unwrap();
    for key in 0..20_000 {
        cache.insert(key, value(key, 1000)).unwrap();
        if key % 1000 == 0 {
            // Reads make some entries hot, so reclaim copies them forward.
            for back in 0..50 {
                let _ = cache.get(&(key.saturating_sub(back * 3)));
            }
        }
        if key % 997 == 0 {
            let on_disk: u64 = dir
                .segments()
                .iter()
                .map(|p| fs::metadata(p).unwrap().len())
                .sum();
            assert!(on_disk <= budget, "{on_disk} > {budget} after {key}");
        }
    }
    let stats = cache.stats().spill;
    assert!(stats.reclaimed_segments > 10, "{stats:?}");
    assert!(stats.disk_bytes <= budget);
    assert!(stats.reinserted > 0, "{stats:?}");
    // The newest entries are all there; the oldest were reclaimed.
    for key in 19_000..20_000 {
        assert_eq!(
            digest(cache.get(&key)),
            digest(Some(value(key, 1000))),
            "key {key}"
        );
    }
    assert_eq!(digest(cache.get(&1)), digest(None));
}

#[test]
fn a_second_cache_on_the_directory_is_refused() {
    let dir = TempDir::new("lock");
    let first = open(dir.path(), 10, |c| c);
    let second: Result<Cache<u64, Bytes>, _> = Cache::builder()
        .max_capacity(10)
        .spill(SpillConfig::new(dir.path(), 16 * MIB))
        .build();
    assert!(
        matches!(second, Err(ConfigError::Spill(SpillError::Locked { .. }))),
        "{second:?}"
    );
    drop(first);
    assert!(Cache::<u64, Bytes>::builder()
        .max_capacity(10)
        .spill(SpillConfig::new(dir.path(), 16 * MIB))
        .build()
        .is_ok());
}

#[test]
fn bad_sizes_and_paths_are_typed_errors() {
    let dir = TempDir::new("bad");
    let tiny: Result<Cache<u64, Bytes>, _> = Cache::builder()
        .max_capacity(10)
        .spill(SpillConfig::new(dir.path(), 1000))
        .build();
    assert!(matches!(
        tiny,
        Err(ConfigError::Spill(SpillError::BadSize { .. }))
    ));
    // A regular file where the directory should be.
    fs::write(dir.path(), b"not a directory").unwrap();
    let file: Result<Cache<u64, Bytes>, _> = Cache::builder()
        .max_capacity(10)
        .spill(SpillConfig::new(dir.path().join("sub"), 16 * MIB))
        .build();
    let err = file.unwrap_err();
    assert!(
        matches!(err, ConfigError::Spill(SpillError::Io { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("cannot open the spill tier"),
        "{err}"
    );
    fs::remove_file(dir.path()).unwrap();
}

/// Fills a directory with spilled entries 0..200 and returns the segments.
fn filled(dir: &TempDir) -> Vec<PathBuf> {
    let cache = open(dir.path(), 4, |c| c);
    put_all(&cache, 0..200, 20_000);
    cache.persist().unwrap();
    drop(cache);
    let segments = dir.segments();
    assert!(segments.len() >= 3, "{segments:?}");
    segments
}

/// Every key reads back as its own value or as a miss, never as another.
fn only_true_values(cache: &Cache<u64, Bytes>) -> usize {
    (0..200)
        .filter(|&key| match cache.get(&key) {
            Some(v) => {
                assert!(v == value(key, 20_000), "key {key}: {:?}", digest(Some(v)));
                true
            }
            None => false,
        })
        .count()
}

#[test]
fn a_segment_truncated_mid_record_loses_only_its_tail() {
    let dir = TempDir::new("torn");
    let segments = filled(&dir);
    let last = segments.last().unwrap();
    let data = fs::read(last).unwrap();
    let used = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    fs::write(last, &data[..used - 5_000]).unwrap();
    let cache = open(dir.path(), 4, |c| c);
    let found = only_true_values(&cache);
    assert!((150..200).contains(&found), "found {found}");
}

#[test]
fn a_flipped_byte_costs_one_entry() {
    let dir = TempDir::new("flip");
    let segments = filled(&dir);
    let mut data = fs::read(&segments[0]).unwrap();
    data[30_000] ^= 0x10;
    fs::write(&segments[0], &data).unwrap();
    let cache = open(dir.path(), 4, |c| c);
    assert_eq!(cache.stats().spill.corrupt, 1);
    let found = only_true_values(&cache);
    assert!((185..200).contains(&found), "found {found}");
}

#[test]
fn zeroed_garbage_empty_and_missing_files_never_panic() {
    // A zero-filled segment, one of random bytes, an empty one.
    for damage in 0..3 {
        let dir = TempDir::new("damage");
        let segments = filled(&dir);
        let victim = &segments[1];
        let len = fs::metadata(victim).unwrap().len() as usize;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let content: Vec<u8> = match damage {
            0 => vec![0; len],
            1 => (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect(),
            _ => Vec::new(),
        };
        fs::write(victim, content).unwrap();
        let cache = open(dir.path(), 4, |c| c);
        let found = only_true_values(&cache);
        assert!(found < 200, "damage {damage}: found {found}");
        assert!(found > 50, "damage {damage}: found {found}");
        // And it keeps working.
        cache.insert(1_000, value(1_000, 10)).unwrap();
        assert_eq!(digest(cache.get(&1_000)), digest(Some(value(1_000, 10))));
    }
    // A missing segment drops the older ones too (they could hold records
    // its tombstones removed).
    let dir = TempDir::new("missing");
    let segments = filled(&dir);
    fs::remove_file(&segments[1]).unwrap();
    let cache = open(dir.path(), 4, |c| c);
    assert!(cache.stats().spill.dropped_segments >= 1);
    only_true_values(&cache);
    assert!(!segments[0].exists());
}

#[test]
fn a_damaged_state_or_meta_file_is_ignored() {
    let dir = TempDir::new("meta");
    filled(&dir);
    fs::write(dir.path().join("strata.state"), b"garbage").unwrap();
    fs::write(dir.path().join("strata.meta"), b"garbage").unwrap();
    let cache = open(dir.path(), 4, |c| c);
    assert!(!cache.stats().spill.sketch_restored);
    assert_eq!(only_true_values(&cache), 200, "new seeds, same entries");
}

#[test]
fn the_admission_state_survives_a_clean_restart() {
    let dir = TempDir::new("sketch");
    let build = |capacity| -> Cache<u64, Bytes> {
        Cache::builder()
            .max_capacity(capacity)
            .shards(2)
            .spill(SpillConfig::new(dir.path(), 16 * MIB).segment_size(MIB))
            .build()
            .unwrap()
    };
    {
        let cache = build(100);
        assert!(!cache.stats().spill.sketch_restored);
        for round in 0..20 {
            for key in 0..50 {
                cache.insert(key + round, value(key, 16)).unwrap();
                let _ = cache.get(&key);
            }
        }
    }
    let cache = build(100);
    assert!(cache.stats().spill.sketch_restored);
    drop(cache);
    // Another capacity: the state does not fit and is not used.
    assert!(!build(200).stats().spill.sketch_restored);
}

#[test]
fn tagged_entries_stay_in_memory() {
    let dir = TempDir::new("tags");
    let cache = open(dir.path(), 4, |c| c);
    for key in 0..20 {
        cache.insert_with_tags(key, value(key, 16), &["t"]).unwrap();
    }
    let stats = cache.stats();
    assert_eq!(stats.spill.writes, 0);
    let held = cache.len();
    assert_eq!(cache.invalidate_tag("t"), held);
    assert!((0..20).all(|k| cache.get(&k).is_none()));
}

#[test]
fn clear_forgets_the_disk_too() {
    let dir = TempDir::new("clear");
    {
        let cache = open(dir.path(), 4, |c| c);
        put_all(&cache, 0..100, 64);
        cache.clear();
        assert_eq!(digest(cache.get(&50)), digest(None));
        assert_eq!(cache.stats().spill.entries, 0);
        cache.insert(7, value(7, 64)).unwrap();
        cache.persist().unwrap();
    }
    let cache = open(dir.path(), 4, |c| c);
    assert_eq!(digest(cache.get(&50)), digest(None));
    assert_eq!(digest(cache.get(&7)), digest(Some(value(7, 64))));
}

#[test]
fn string_keys_and_serde_values_round_trip() {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
    }
    let dir = TempDir::new("serde");
    let build = || -> Cache<String, strata::codec::Serde<User>> {
        Cache::builder()
            .max_capacity(2)
            .shards(1)
            .spill(SpillConfig::new(dir.path(), 16 * MIB).segment_size(MIB))
            .build()
            .unwrap()
    };
    {
        let cache = build();
        for id in 0..50 {
            let user = User {
                id,
                name: format!("user {id}"),
            };
            cache
                .insert(format!("/users/{id}"), strata::codec::Serde(user))
                .unwrap();
        }
    }
    let cache = build();
    let user = cache.get("/users/17").unwrap().0;
    assert_eq!((user.id, user.name.as_str()), (17, "user 17"));
}

#[test]
fn threads_never_see_an_older_value() {
    let dir = TempDir::new("threads");
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_capacity(64)
        .shards(4)
        .spill(SpillConfig::new(dir.path(), 8 * MIB).segment_size(MIB))
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let cache = &cache;
            scope.spawn(move || {
                // Each thread owns its keys and writes versions 1, 2, ...
                let mut version = [0u64; 32];
                let mut rng = thread.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                for _ in 0..20_000 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let slot = (rng % 32) as usize;
                    let key = thread * 1000 + slot as u64;
                    match rng % 5 {
                        0 | 1 => {
                            version[slot] += 1;
                            let v = Bytes::from(version[slot].to_le_bytes().repeat(64));
                            cache.insert(key, v).unwrap();
                        }
                        2 => {
                            cache.remove(&key);
                            version[slot] += 1; // nothing older may come back
                        }
                        _ => {
                            if let Some(v) = cache.get(&key) {
                                let seen = u64::from_le_bytes(v[..8].try_into().unwrap());
                                assert_eq!(seen, version[slot], "key {key}");
                            }
                        }
                    }
                }
            });
        }
    });
    assert_eq!(cache.stats().spill.corrupt, 0);
}

/// A small tmpfs mounted for a test (needs root, as in CI's containers);
/// unmounted on drop.
struct Tmpfs(TempDir);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Self> {
        let dir = TempDir::new(name);
        fs::create_dir_all(dir.path()).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            Some(Self(dir))
        } else {
            eprintln!("!!! SKIPPED: cannot mount a tmpfs here (not root?); this test needs one");
            None
        }
    }

    fn remount_read_only(&self) {
        let status = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a failed test may still hold files open in it.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_is_counted_and_memory_works_on() {
    let Some(disk) = Tmpfs::mount("full", "3m") else {
        return;
    };
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_capacity(8)
        .shards(1)
        .spill(SpillConfig::new(disk.0.path().join("spill"), 64 * MIB).segment_size(MIB))
        .build()
        .unwrap();
    put_all(&cache, 0..400, 20_000);
    let stats = cache.stats().spill;
    assert!(stats.write_errors > 0, "{stats:?}");
    assert!(stats.writes > 50, "{stats:?}");
    // What was written reads back; memory works as before.
    assert_eq!(cache.stats().spill.write_errors, stats.write_errors);
    assert_eq!(digest(cache.get(&20)), digest(Some(value(20, 20_000))));
    assert_eq!(cache.len(), 8);
    for (key, held) in cache.iter().collect::<Vec<_>>() {
        assert!(cache.get(&key) == Some(held), "key {key}");
    }
    // And the directory opens again after the failures.
    let segments = stats.segments;
    assert!(
        segments <= 4,
        "a full disk must not churn segments: {stats:?}"
    );
    drop(cache);
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_capacity(8)
        .shards(1)
        .spill(SpillConfig::new(disk.0.path().join("spill"), 64 * MIB).segment_size(MIB))
        .build()
        .unwrap();
    // Everything written (and not replaced by a promotion) came back.
    assert!(cache.stats().spill.recovered >= stats.writes - 5);
    assert_eq!(digest(cache.get(&21)), digest(Some(value(21, 20_000))));
}

#[test]
fn a_read_only_directory_is_a_typed_error() {
    let Some(disk) = Tmpfs::mount("ro", "8m") else {
        return;
    };
    let dir = disk.0.path().join("spill");
    {
        let cache = open(&dir, 4, |c| c);
        put_all(&cache, 0..50, 1000);
    }
    disk.remount_read_only();
    let opened: Result<Cache<u64, Bytes>, _> = Cache::builder()
        .max_capacity(4)
        .spill(SpillConfig::new(&dir, 16 * MIB))
        .build();
    match opened {
        Err(ConfigError::Spill(SpillError::Io { source, .. })) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ReadOnlyFilesystem);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn plain_reads_never_return_a_stale_spilled_entry() {
    let dir = TempDir::new("stale");
    let clock = ManualClock::new();
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_capacity(2)
        .shards(1)
        .time_to_live(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(5))
        .spawner(|_task| {})
        .clock(clock.clone())
        .spill(SpillConfig::new(dir.path(), 16 * MIB).segment_size(MIB))
        .build()
        .unwrap();
    put_all(&cache, 0..20, 64);
    clock.advance(Duration::from_secs(9));
    assert_eq!(digest(cache.peek(&5)), digest(Some(value(5, 64))), "fresh");
    clock.advance(Duration::from_secs(3));
    assert_eq!(digest(cache.peek(&6)), None, "stale: not for peek");
    assert_eq!(digest(cache.get(&6)), None, "stale: not for get");
    assert!(!cache.contains_key(&7));
}
