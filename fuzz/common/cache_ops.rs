// Shared by the fuzz target and the corpus replay test (`include!`d).
// Uses `scratch_root` from spill_open.rs.

/// Random operations on a small cache with a spill tier, checked against a
/// map of what was last written: a read returns that value or nothing
/// (evicted, reclaimed), never an older or other value, also across
/// restarts of the cache on its directory.
pub fn check_cache_ops(data: &[u8]) {
    use std::collections::HashMap;
    use std::time::Duration;

    use bytes::Bytes;
    use strata::{spill::SpillConfig, Cache, ManualClock};

    let dir = scratch_root().join(format!("strata-fuzz-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = ManualClock::new();
    let open = |through: bool| -> Cache<u16, Bytes> {
        Cache::builder()
            .max_capacity(6)
            .shards(1)
            .time_to_live(Duration::from_secs(1000))
            .clock(clock.clone())
            .spill(
                SpillConfig::new(&dir, 256 << 10)
                    .segment_size(64 << 10)
                    .write_on_insert(through),
            )
            .build()
            .expect("open")
    };
    let mut through = false;
    let mut cache = open(through);
    // key -> (version, value length); `None`: removed.
    let mut model: HashMap<u16, Option<(u16, usize)>> = HashMap::new();
    let mut version = 0u16;
    let value = |key: u16, version: u16, len: usize| {
        let mut v = vec![(key ^ version) as u8; len.max(4)];
        v[..2].copy_from_slice(&key.to_le_bytes());
        v[2..4].copy_from_slice(&version.to_le_bytes());
        Bytes::from(v)
    };
    for op in data.chunks(3) {
        let [code, k, arg] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let key = u16::from(k % 24);
        match code % 8 {
            0..=2 => {
                version = version.wrapping_add(1);
                let len = usize::from(arg) * 97;
                cache.insert(key, value(key, version, len)).expect("fits");
                model.insert(key, Some((version, len.max(4))));
            }
            3 => {
                let removed = cache.remove(&key);
                if let Some(v) = &removed {
                    let expected = model.get(&key).copied().flatten();
                    let got = (u16::from_le_bytes([v[2], v[3]]), v.len());
                    assert_eq!(Some(got), expected, "remove({key}) returned a stale value");
                }
                model.insert(key, None);
            }
            4 | 5 => {
                if let Some(v) = cache.get(&key) {
                    assert_eq!(u16::from_le_bytes([v[0], v[1]]), key);
                    let got = (u16::from_le_bytes([v[2], v[3]]), v.len());
                    let expected = model.get(&key).copied().flatten();
                    assert_eq!(Some(got), expected, "get({key}) returned a stale value");
                    assert_eq!(v, value(key, got.0, got.1));
                }
            }
            6 => {
                if arg % 2 == 0 {
                    cache.persist().expect("persist");
                }
                drop(cache);
                through = arg % 4 == 1;
                cache = open(through);
            }
            _ => match arg % 3 {
                0 => {
                    cache.clear();
                    for slot in model.values_mut() {
                        *slot = None;
                    }
                }
                1 => clock.advance(Duration::from_secs(u64::from(arg))),
                _ => {
                    let stats = cache.stats();
                    assert!(stats.spill.disk_bytes <= 256 << 10);
                    assert_eq!(stats.spill.corrupt, 0);
                }
            },
        }
    }
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

