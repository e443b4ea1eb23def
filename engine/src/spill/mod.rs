//! The spill tier: entries evicted from memory are kept in memory-mapped
//! segment files on local disk, served from there on a memory miss, and
//! found again after a restart.
//!
//! Enable it with the `spill` feature and [`CacheBuilder::spill`]; keys and
//! values must implement [`Codec`](crate::codec::Codec).
//!
//! ```
//! use bytes::Bytes;
//! use strata::{spill::SpillConfig, Cache};
//!
//! let dir = std::env::temp_dir().join(format!("strata-doc-spill-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let cache: Cache<u64, Bytes> = Cache::builder()
//!     .max_capacity(2)
//!     .spill(SpillConfig::new(&dir, 64 << 20))
//!     .build()?;
//! for key in 0..100 {
//!     cache.insert(key, Bytes::from(vec![key as u8; 1000]))?;
//! }
//! // Most of them left memory, and came to rest on disk.
//! assert_eq!(cache.get(&7).map(|v| v[0]), Some(7));
//! assert!(cache.stats().spill.hits >= 1);
//! cache.persist()?; // a clean shutdown: flush, and save the admission state
//! drop(cache);
//!
//! // A new cache on the same directory starts warm.
//! let cache: Cache<u64, Bytes> = Cache::builder()
//!     .max_capacity(2)
//!     .spill(SpillConfig::new(&dir, 64 << 20))
//!     .build()?;
//! assert_eq!(cache.get(&42).map(|v| v.len()), Some(1000));
//! # drop(cache);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! The directory holds `seg-NNNNNNNNNN.dat` segment files (fixed size,
//! appended to in order, oldest reclaimed first), `strata.meta` (the
//! hasher seeds, so that hashes mean the same after a restart),
//! `strata.state` (the admission sketch and window split, written by
//! [`Cache::persist`] and on drop) and `strata.lock`. Each record is one
//! [codec record](crate::codec): a checksum covers it, and a removed or
//! replaced key leaves a tombstone so that it never comes back.
//!
//! # Contract
//!
//! The directory belongs to one cache. Opening it takes an exclusive lock
//! on `strata.lock` (`flock`), so a second cache, in this process or
//! another, gets [`SpillError::Locked`] instead of corrupting it. Segment
//! files are mapped into memory: a program that ignores the lock and
//! truncates a segment while the cache runs would make reads of the cut
//! pages fault (SIGBUS), which no mapped-file cache can prevent. Anything
//! else done to the files while the cache is stopped (truncation, flipped
//! bytes, zeroed or deleted files) costs entries, never a panic: at open,
//! a torn tail record is dropped, a record with a bad checksum is skipped
//! and counted in [`SpillStats::corrupt`], and the segments older than a
//! missing one are dropped (they may hold records that its tombstones
//! removed).
//!
//! # Costs
//!
//! An entry is spilled by the insert that evicts it, on the inserting
//! thread, while that insert holds its shard's lock: the lock orders the
//! write with every other write of the key, so a record can never overtake
//! a later insert or removal. One `pwrite` per record (about 1 µs for
//! 4 KiB, 0.3 ms for 1 MiB here; see `benches/RESULTS.md`); other shards go
//! on meanwhile. A read from disk takes one index shard lock and slices
//! the segment's map: a `Bytes` value is not copied. In memory the index
//! costs about 30 bytes per spilled entry (the key's hash, its location,
//! two flags, the hash table's slack).
//!
//! Tagged entries are not spilled (the spill tier has no tag index, so it
//! could not honour [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
//! for them); [`Cache::iter`](crate::Cache::iter) and
//! [`Cache::retain`](crate::Cache::retain) see the memory tier only.
//!
//! # Failures
//!
//! I/O errors while the cache runs (a full disk, a vanished directory) are
//! counted in [`SpillStats::write_errors`]: the entry is not spilled and the
//! memory tier works on. Opening a directory that cannot be created,
//! locked or read is a [`ConfigError::Spill`](crate::ConfigError::Spill)
//! from `build`.
//!
//! [`CacheBuilder::spill`]: crate::CacheBuilder::spill
//! [`Cache::persist`]: crate::Cache::persist

mod segment;
mod state;
mod store;
mod tier;

use std::path::{Path, PathBuf};

use crate::sync::PublicArc as Arc;

pub use crate::stats::SpillStats;
pub(crate) use state::ShardState;
pub(crate) use tier::open_tier;

/// The default segment file size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// The smallest segment size (records larger than a segment are not
/// spilled).
pub const MIN_SEGMENT_SIZE: u64 = 64 << 10;
/// The largest segment size (offsets are 32-bit).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

/// Where and how much to spill.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillConfig {
    /// The directory (created if missing; owned by this cache).
    pub dir: PathBuf,
    /// The most bytes of segment files on disk; at least two segments.
    pub max_bytes: u64,
    /// The size of one segment file. Default [`DEFAULT_SEGMENT_SIZE`],
    /// lowered to half of `max_bytes` if that is smaller.
    pub segment_size: u64,
    /// Write every insert to disk too, not only evictions (then a restart
    /// finds everything, and an eviction costs no write). Default false.
    pub write_on_insert: bool,
}

impl SpillConfig {
    /// Spill into `dir`, using at most `max_bytes` of disk.
    pub fn new(dir: impl AsRef<Path>, max_bytes: u64) -> Self {
        Self {
            dir: dir.as_ref().to_owned(),
            max_bytes,
            segment_size: DEFAULT_SEGMENT_SIZE,
            write_on_insert: false,
        }
    }

    /// Sets the segment file size (see [`SpillConfig::segment_size`]).
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Writes every insert through to disk (see
    /// [`SpillConfig::write_on_insert`]).
    #[must_use]
    pub fn write_on_insert(mut self, yes: bool) -> Self {
        self.write_on_insert = yes;
        self
    }

    /// The segment size and the most segments the budget allows.
    pub(crate) fn geometry(&self) -> Result<(usize, usize), SpillError> {
        let size = self.segment_size.min(self.max_bytes / 2);
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
            return Err(SpillError::BadSize {
                max_bytes: self.max_bytes,
                segment_size: self.segment_size,
            });
        }
        let count = usize::try_from(self.max_bytes / size).unwrap_or(usize::MAX);
        // `size <= 1 GiB` fits usize on every platform with mmap.
        Ok((size as usize, count))
    }
}

/// Why the spill directory could not be used.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpillError {
    /// Another cache holds the directory's lock (still, after about 100 ms
    /// of retries).
    #[error(
        "spill directory {path} is in use by another cache; give each cache its own directory"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error from the OS.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The budget or segment size is out of range.
    #[error(
        "spill budget {max_bytes} B with segments of {segment_size} B: a segment must be between 64 KiB and 1 GiB and the budget hold two"
    )]
    BadSize {
        /// The configured budget.
        max_bytes: u64,
        /// The configured segment size.
        segment_size: u64,
    },
    /// A record does not fit in a segment.
    #[error("record of {len} B does not fit a segment ({max} B free)")]
    TooLarge {
        /// The record's length.
        len: u64,
        /// The room there was.
        max: u64,
    },
}

impl PartialEq for SpillError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Locked { path: a }, Self::Locked { path: b }) => a == b,
            (
                Self::Io { op, path, source },
                Self::Io {
                    op: op2,
                    path: path2,
                    source: source2,
                },
            ) => op == op2 && path == path2 && source.kind() == source2.kind(),
            (
                Self::BadSize {
                    max_bytes,
                    segment_size,
                },
                Self::BadSize {
                    max_bytes: m,
                    segment_size: s,
                },
            ) => max_bytes == m && segment_size == s,
            (Self::TooLarge { len, max }, Self::TooLarge { len: l, max: m }) => {
                len == l && max == m
            }
            _ => false,
        }
    }
}

impl Eq for SpillError {}
