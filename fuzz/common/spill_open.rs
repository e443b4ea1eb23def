// Shared by the fuzz target and the corpus replay test (`include!`d).

/// A spill directory whose files hold arbitrary bytes opens without a
/// panic, and every entry it serves is one a cache could have written.
pub fn check_spill_open(data: &[u8]) {
    use bytes::Bytes;
    use strata::{spill::SpillConfig, Cache};
    let dir = scratch_root().join(format!("strata-fuzz-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The input is cut into up to three segment files (plus a meta and a
    // state file) at the positions its first bytes name.
    let cut = |i: usize| data.get(i).map_or(0, |&b| usize::from(b) * data.len() / 256);
    let (a, b) = (cut(0).min(cut(1)), cut(0).max(cut(1)));
    let parts = [&data[..a], &data[a..b], &data[b..]];
    for (i, part) in parts.iter().enumerate() {
        let name = format!("seg-{:010}.dat", 7 + i);
        std::fs::write(dir.join(name), part).expect("write segment");
    }
    if data.first().is_some_and(|b| b & 1 == 1) {
        let _ = std::fs::write(dir.join("strata.meta"), &data[..data.len().min(48)]);
        let _ = std::fs::write(dir.join("strata.state"), &data[..data.len().min(300)]);
    }
    {
        let cache: Cache<u64, Bytes> = Cache::builder()
            .max_capacity(4)
            .shards(1)
            .spill(SpillConfig::new(&dir, 1 << 20).segment_size(256 << 10))
            .build()
            .expect("a directory of damaged files still opens");
        let stats = cache.stats().spill;
        assert!(stats.entries <= data.len() as u64 / 40);
        for key in 0..64u64 {
            let _ = cache.get(&key);
        }
        cache.insert(1, Bytes::from_static(b"new")).expect("insert");
        assert!(cache.get(&1).is_none_or(|v| v == "new"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where the fuzz checks put their directories: memory-backed when the
/// machine has /dev/shm (file creation there is several times faster).
#[allow(dead_code)]
fn scratch_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}
