//! One segment file: written with positioned writes, read through a
//! read-only memory map. The only `unsafe` code of the engine lives here.
//!
//! ```text
//!  seg-0000000042.dat  (grows as records are appended)
//!  +----------+----------+-----+----------+ . . . . . . . . . . . .
//!  | record 0 | record 1 | ... | record n |  mapped, past the file's end
//!  +----------+----------+-----+----------+ . . . . . . . . . . . .
//!  0                                   `readable`          `len`
//! ```
//!
//! Why this is sound:
//!
//! 1. The map covers `len` bytes, the segment's full size, but only the
//!    first `readable` bytes are ever read: bytes that completed writes put
//!    into the file (or, for a segment opened from disk, the file's length
//!    at open). Those pages are inside the file and hold data, so reading
//!    them cannot raise SIGBUS, unless another program truncates the file,
//!    which the directory's lock and contract forbid (module docs). Files
//!    are not created sparse: on tmpfs, even a read of a hole allocates a
//!    page, and faults when the file system is full.
//! 2. Bytes below `readable` are never written again while the mapping
//!    lives: the writer only appends past it. So no `&[u8]` we create ever
//!    sees its bytes change.
//! 3. Writes go through `pwrite`, never through the map, so the mapping is
//!    read-only and a full disk is an `io::Error` from `pwrite`, not a
//!    fault on a store into the map.
//! 4. Reclaiming a segment unlinks its file; the mapping (and so every
//!    `Bytes` still pointing into it) stays valid until the last `Arc` of
//!    the segment is dropped.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use crate::sync::{AtomicUsize, Ordering, PublicArc as Arc};

/// A segment: its file, its read-only mapping and its size.
pub(crate) struct Segment {
    pub(crate) id: u32,
    pub(crate) path: PathBuf,
    file: File,
    map: MmapRaw,
    len: usize,
    /// The prefix holding written data (module docs, point 1).
    readable: AtomicUsize,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The file name of segment `id`.
pub(crate) fn file_name(id: u32) -> String {
    format!("seg-{id:010}.dat")
}

/// The id of a segment file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".dat")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Segment {
    /// Creates segment `id` in `dir`, empty, with room for `len` bytes.
    pub(crate) fn create(dir: &Path, id: u32, len: usize) -> io::Result<Self> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        match Self::map(&file, len) {
            Ok(map) => Ok(Self {
                id,
                path,
                file,
                map,
                len,
                readable: AtomicUsize::new(0),
            }),
            Err(e) => {
                // Leave no half-made segment behind.
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Opens an existing segment file; its length is what it is (a short or
    /// empty file maps what there is, and a scan finds its records or none).
    pub(crate) fn open(path: &Path, id: u32) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment too large"))?;
        // Opening scans the whole segment: fault its pages in at once.
        let map = if len == 0 {
            Self::map(&file, len)?
        } else {
            MmapOptions::new()
                .len(len)
                .populate()
                .map_raw_read_only(&file)?
        };
        Ok(Self {
            id,
            path: path.to_owned(),
            file,
            map,
            len,
            readable: AtomicUsize::new(len),
        })
    }

    fn map(file: &File, len: usize) -> io::Result<MmapRaw> {
        if len == 0 {
            // mmap of zero bytes fails; an empty segment maps one page of
            // nothing and `len` keeps every read away from it.
            return MmapOptions::new().len(1).map_anon().map(MmapRaw::from);
        }
        MmapOptions::new().len(len).map_raw_read_only(file)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The written prefix (module docs, point 1).
    pub(crate) fn readable(&self) -> usize {
        self.readable.load(Ordering::Acquire)
    }

    /// Writes `bytes` at `offset`, which must be where the readable part
    /// ends (segments are append-only), and makes them readable.
    pub(crate) fn write_at(&self, bytes: &[u8], offset: usize) -> io::Result<()> {
        let end = offset
            .checked_add(bytes.len())
            .filter(|&end| end <= self.len && offset == self.readable.load(Ordering::Acquire));
        let Some(end) = end else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write past the end of a segment, or not at its end",
            ));
        };
        self.file.write_all_at(bytes, offset as u64)?;
        self.readable.store(end, Ordering::Release);
        Ok(())
    }

    /// Flushes written bytes to the device.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The bytes `[offset, offset + len)`, or `None` if out of bounds.
    ///
    /// Callers pass only ranges that a completed write published (see the
    /// module docs, point 2); the bounds check keeps a wrong range from
    /// reading outside the mapping.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.readable.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: 1. `offset + len <= readable <= self.len`: the range lies
        // in the mapping and in the written part of the file (module docs,
        // point 1), so the pointer range is valid for reads.
        // 2. Bytes below `readable` are never written again while `self`
        // lives (point 2), so they do not change while the returned borrow
        // of `self` lasts.
        unsafe {
            Some(std::slice::from_raw_parts(
                self.map.as_ptr().add(offset),
                len,
            ))
        }
    }

    /// Like [`Segment::slice`], as `Bytes` that keep the segment mapped.
    pub(crate) fn bytes(self: &Arc<Self>, offset: usize, len: usize) -> Option<Bytes> {
        self.slice(offset, len)?;
        Some(Bytes::from_owner(View {
            segment: Arc::clone(self),
            offset,
            len,
        }))
    }
}

/// Owner of a `Bytes` over part of a segment's map.
struct View {
    segment: Arc<Segment>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // Checked in `Segment::bytes` before the view was made; the range
        // cannot go out of bounds later (a segment's length is fixed).
        self.segment.slice(self.offset, self.len).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_lookalikes() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name(&file_name(u32::MAX)), Some(u32::MAX));
        for bad in [
            "seg-42.dat",
            "seg-000000004x.dat",
            "x-0000000042.dat",
            "seg-9999999999.dat",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn written_bytes_read_back_through_the_map() {
        let dir = std::env::temp_dir().join(format!("strata-seg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seg = Arc::new(Segment::create(&dir, 1, 4096).unwrap());
        assert!(seg.write_at(b"gap", 100).is_err(), "appends only");
        seg.write_at(b"hello", 0).unwrap();
        let bytes = seg.bytes(0, 5).unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert!(seg.slice(3, 3).is_none(), "past the written part");
        assert!(seg.write_at(&[0; 4092], 5).is_err(), "past the end");
        // The map outlives the file and the segment handle.
        std::fs::remove_file(&seg.path).unwrap();
        drop(seg);
        assert_eq!(&bytes[..], b"hello");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
