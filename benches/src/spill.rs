//! Helpers of the spill-tier benchmarks (feature `spill`): a scratch
//! directory, a cache filled so that its values sit on disk, the same
//! values read from plain maps of the segment files, and a page-cache
//! dropper for cold reads.
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::Mmap;
use strata::spill::SpillConfig;
use strata::{codec, Cache};

/// A directory under `/tmp` (a real disk, not tmpfs, so that cold reads
/// are reads), removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory named after `label`.
    pub fn new(label: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("strata-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The segment files in it, oldest first.
    pub fn segments(&self) -> Vec<PathBuf> {
        segments(&self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "dat"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The value stored under `key` by [`fill`].
pub fn value(key: u64, size: usize) -> Bytes {
    let mut bytes = vec![(key % 251) as u8; size];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    Bytes::from(bytes)
}

/// A spill cache on `dir` with room for one entry in memory (so every
/// insert spills one), 256 MiB of disk in 64 MiB segments.
pub fn spill_cache(dir: &Path, budget: u64) -> Cache<u64, Bytes> {
    Cache::builder()
        .max_capacity(1)
        .shards(1)
        .spill(SpillConfig::new(dir, budget))
        .build()
        .expect("spill directory")
}

/// Inserts `count` values of `size` bytes into a fresh spill cache on
/// `dir`: all but the one in memory end up on disk, written with `pwrite`
/// and never read (so no page of them is mapped yet).
pub fn fill(dir: &Path, size: usize, count: usize) -> Cache<u64, Bytes> {
    let budget = ((size as u64 + 64) * count as u64 * 2).max(256 << 20);
    let cache = spill_cache(dir, budget);
    for key in 0..count as u64 {
        cache.insert(key, value(key, size)).expect("fits");
    }
    cache
}

/// The keys of `cache` (filled with keys `0..count`) held on disk only.
pub fn disk_keys(cache: &Cache<u64, Bytes>, count: usize) -> Vec<u64> {
    let in_memory: Vec<u64> = cache.iter().map(|(k, _)| k).collect();
    (0..count as u64)
        .filter(|k| !in_memory.contains(k))
        .collect()
}

/// The values of every record in a spill directory, read from plain maps
/// of its segment files (the baseline of the read benches).
#[derive(Debug)]
pub struct RawValues {
    maps: Vec<Mmap>,
    ranges: Vec<(usize, Range<usize>)>,
}

/// Maps the segment files of `dir` and finds each record's value in them.
pub fn raw_values(dir: &Path) -> RawValues {
    let mut maps = Vec::new();
    let mut ranges = Vec::new();
    for path in segments(dir) {
        let file = File::open(&path).expect("segment");
        if file.metadata().map_or(0, |m| m.len()) == 0 {
            continue;
        }
        // SAFETY: the bench owns the directory and no one truncates or
        // writes these files while the map lives (the spill cache only
        // appends past what it has published, and this map reads only
        // published records).
        let map = unsafe { Mmap::map(&file) }.expect("map");
        let mut offset = 0;
        while let Ok((record, used)) = codec::decode_unverified(&map[offset..]) {
            let start = offset + record.value_offset();
            ranges.push((maps.len(), start..start + record.value.len()));
            offset += used;
        }
        maps.push(map);
    }
    RawValues { maps, ranges }
}

impl RawValues {
    /// How many values.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Value `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let (map, range) = &self.ranges[i];
        &self.maps[*map][range.clone()]
    }

    /// All values, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// What both sides of a read bench do with a value: a wrapping sum of its
/// 8-byte words, which touches every byte at memory speed.
pub fn touch(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for word in words.by_ref() {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        sum = sum.wrapping_add(u64::from_le_bytes(w));
    }
    words
        .remainder()
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(u64::from(b)))
}

/// Flushes every segment file of `dir` and drops its pages from the page
/// cache (`posix_fadvise(DONTNEED)`), so that the next reads go to the
/// disk. Pages some process still maps are kept by the kernel.
pub fn drop_page_cache(dir: &Path) {
    use std::os::fd::AsRawFd;
    for path in segments(dir) {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let _ = file.sync_all();
        // SAFETY: a plain system call on a descriptor this function owns;
        // it reads no memory of ours.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise failed on {}", path.display());
    }
}
