//! Large objects as fixed-size chunks in the cache.
//!
//! A [`ChunkStore`] keeps an object's metadata (total length and a version,
//! such as an ETag) and its chunks as separate weighted entries of one
//! [`Cache`]: a range read touches only the chunks it needs, an object can be
//! cached in part (only the chunks that were fetched), and one huge object
//! cannot flush the cache. Chunk keys carry the version, so chunks of two
//! versions are never mixed, and evicting a chunk only makes that part of
//! the object missing.
//!
//! ```text
//!  object "video.mp4", version "v7", 10 MiB, chunks of 4 MiB:
//!    (video.mp4, Meta)            -> len 10 MiB, version "v7"
//!    (video.mp4, v7, chunk 0)     -> bytes 0 .. 4 MiB
//!    (video.mp4, v7, chunk 1)     -> bytes 4 .. 8 MiB   (evicted: reported missing)
//!    (video.mp4, v7, chunk 2)     -> bytes 8 .. 10 MiB  (the short tail)
//! ```
//!
//! Reads return [`Bytes`] slices of the cached chunks: no byte is copied.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::Range;

use bytes::Bytes;

use crate::cache::Cache;
use crate::error::{ConfigError, InsertError};
use crate::sync::PublicArc as Arc;

/// The default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// A single read may span at most this many chunks (64 GiB at the default
/// chunk size), so that an absurd range costs an error, not a long loop.
pub const MAX_CHUNKS_PER_READ: u64 = 1 << 16;

/// A requested byte range, as HTTP `Range` spells them (RFC 9110 §14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, both inclusive; `last` past the end means "to the end".
    FromTo(u64, u64),
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The byte offsets this range selects in an object of `len` bytes.
    ///
    /// # Errors
    ///
    /// [`RangeError::Unsatisfiable`] when it selects nothing: it starts at or
    /// past the end, `last < first`, or it is a suffix of zero bytes.
    pub fn resolve(self, len: u64) -> Result<Range<u64>, RangeError> {
        let unsatisfiable = Err(RangeError::Unsatisfiable { len });
        match self {
            Self::FromTo(first, last) if first <= last && first < len => {
                Ok(first..last.saturating_add(1).min(len))
            }
            Self::From(first) if first < len => Ok(first..len),
            Self::Suffix(n) if n > 0 && len > 0 => Ok(len.saturating_sub(n)..len),
            _ => unsatisfiable,
        }
    }
}

/// Why a range could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Nothing is known about the object (no metadata cached).
    #[error("object not cached; fetch its metadata first")]
    UnknownObject,
    /// The range selects no byte of the object (HTTP 416).
    #[error("range not satisfiable for an object of {len} bytes")]
    Unsatisfiable {
        /// The object's length.
        len: u64,
    },
    /// The range spans more than [`MAX_CHUNKS_PER_READ`] chunks.
    #[error("range spans {chunks} chunks, more than one read may; read it in pieces")]
    TooLarge {
        /// The chunks the range spans.
        chunks: u64,
    },
}

/// Why a chunk or an object was not stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The version does not match the cached metadata's (or there is none).
    #[error("version mismatch: the object is cached as another version, or not at all")]
    VersionMismatch,
    /// The chunk index lies past the object's end.
    #[error("chunk {index} is past the end of an object of {chunks} chunks")]
    OutOfRange {
        /// The index given.
        index: u64,
        /// The object's chunk count.
        chunks: u64,
    },
    /// The chunk's length is not what its place in the object requires.
    #[error("chunk {index} must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The index given.
        index: u64,
        /// The length required.
        expected: u64,
        /// The length given.
        actual: u64,
    },
    /// The cache refused the entry (heavier than a shard's share).
    #[error("the cache cannot hold a piece of {weight} bytes; raise its capacity")]
    TooHeavy {
        /// The piece's weight.
        weight: u64,
    },
}

/// An object's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Total length in bytes.
    pub len: u64,
    /// The version (an ETag, a hash, a revision number as text).
    pub version: Arc<str>,
}

/// A key in the store's cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PieceKey<O> {
    object: O,
    /// `None` for the metadata.
    chunk: Option<(Arc<str>, u64)>,
}

/// A value in the store's cache.
#[derive(Clone, Debug)]
pub enum Piece {
    /// An object's metadata.
    Meta(ObjectMeta),
    /// One chunk's bytes.
    Data(Bytes),
}

/// What a range read found: the cached parts of the range in order, and
/// the byte ranges that are not cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRead {
    /// The byte offsets the request resolved to.
    pub range: Range<u64>,
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// `(offset, bytes)` of every cached part of the range, in order.
    pub parts: Vec<(u64, Bytes)>,
    /// Byte ranges of the request that are not cached, in order.
    pub missing: Vec<Range<u64>>,
}

impl RangeRead {
    /// True if every byte of the range was cached.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The whole range as one buffer, if complete (a copy only when it
    /// spans more than one chunk).
    #[must_use]
    pub fn to_bytes(&self) -> Option<Bytes> {
        if !self.is_complete() {
            return None;
        }
        match self.parts.as_slice() {
            [] => Some(Bytes::new()),
            [(_, only)] => Some(only.clone()),
            parts => {
                let total = parts.iter().map(|(_, bytes)| bytes.len()).sum();
                let mut joined = bytes::BytesMut::with_capacity(total);
                for (_, bytes) in parts {
                    joined.extend_from_slice(bytes);
                }
                Some(joined.freeze())
            }
        }
    }
}

/// Objects cached as chunks; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use strata::chunks::{ByteRange, ChunkStore};
///
/// let store: ChunkStore<&str> = ChunkStore::new(64 << 20, 4)?;
/// store.put_object("greeting", "v1", Bytes::from_static(b"hello, world"))?;
/// let read = store.read_range(&"greeting", ByteRange::FromTo(7, 11))?;
/// assert_eq!(read.to_bytes().as_deref(), Some(&b"world"[..]));
/// assert_eq!(store.read_range(&"greeting", ByteRange::Suffix(5))?.to_bytes().as_deref(), Some(&b"world"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChunkStore<O, S = ahash::RandomState> {
    cache: Cache<PieceKey<O>, Piece, S>,
    chunk_size: u32,
}

/// Weight of a metadata entry beyond its version string.
const META_WEIGHT: u32 = 64;

fn weigh<O>(_key: &PieceKey<O>, piece: &Piece) -> u32 {
    match piece {
        Piece::Meta(meta) => {
            META_WEIGHT.saturating_add(u32::try_from(meta.version.len()).unwrap_or(u32::MAX))
        }
        Piece::Data(bytes) => u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    }
}

impl<O> ChunkStore<O>
where
    O: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A store holding up to `capacity_bytes` of chunks and metadata, with
    /// chunks of `chunk_size` bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero chunk size or capacity, or a capacity the
    /// cache cannot take.
    pub fn new(capacity_bytes: u64, chunk_size: u32) -> Result<Self, ConfigError> {
        if chunk_size == 0 {
            return Err(ConfigError::ZeroChunkSize);
        }
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(weigh::<O>)
            .build()?;
        Ok(Self { cache, chunk_size })
    }
}

impl<O, S> ChunkStore<O, S>
where
    O: Hash + Eq + Clone,
    S: BuildHasher,
{
    /// The chunk size.
    #[must_use]
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The underlying cache (for stats, or to share its budget).
    #[must_use]
    pub fn cache(&self) -> &Cache<PieceKey<O>, Piece, S> {
        &self.cache
    }

    fn chunk_count(&self, len: u64) -> u64 {
        len.div_ceil(u64::from(self.chunk_size))
    }

    fn chunk_len(&self, len: u64, index: u64) -> u64 {
        let start = index * u64::from(self.chunk_size);
        (len - start).min(u64::from(self.chunk_size))
    }

    fn meta_key(object: &O) -> PieceKey<O> {
        PieceKey {
            object: object.clone(),
            chunk: None,
        }
    }

    /// The cached metadata of `object`.
    pub fn meta(&self, object: &O) -> Option<ObjectMeta> {
        match self.cache.get(&Self::meta_key(object)) {
            Some(Piece::Meta(meta)) => Some(meta),
            _ => None,
        }
    }

    /// Records `object`'s length and version. A new version makes the
    /// chunks of the old one unreachable (they are removed).
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooHeavy`] if even the metadata does not fit.
    pub fn put_meta(&self, object: &O, len: u64, version: &str) -> Result<(), ChunkError> {
        if let Some(old) = self.meta(object) {
            if &*old.version != version {
                // Only frees room early: chunks of the old version are never
                // served again (their keys carry it), so for absurd lengths
                // the rest are left to eviction.
                for index in 0..self.chunk_count(old.len).min(MAX_CHUNKS_PER_READ) {
                    self.cache
                        .remove(&self.chunk_key(object, &old.version, index));
                }
            }
        }
        let meta = ObjectMeta {
            len,
            version: Arc::from(version),
        };
        self.cache
            .insert(Self::meta_key(object), Piece::Meta(meta))
            .map_err(too_heavy)
    }

    fn chunk_key(&self, object: &O, version: &Arc<str>, index: u64) -> PieceKey<O> {
        PieceKey {
            object: object.clone(),
            chunk: Some((Arc::clone(version), index)),
        }
    }

    /// Stores chunk `index` of `object` at `version`.
    ///
    /// # Errors
    ///
    /// [`ChunkError`] if the version is not the cached one, the index is
    /// past the end, the length is wrong for that chunk, or it is too heavy.
    pub fn put_chunk(
        &self,
        object: &O,
        version: &str,
        index: u64,
        data: Bytes,
    ) -> Result<(), ChunkError> {
        let meta = self.current_meta(object, version)?;
        self.store_chunk(object, &meta, index, data)
    }

    fn current_meta(&self, object: &O, version: &str) -> Result<ObjectMeta, ChunkError> {
        self.meta(object)
            .filter(|m| &*m.version == version)
            .ok_or(ChunkError::VersionMismatch)
    }

    fn store_chunk(
        &self,
        object: &O,
        meta: &ObjectMeta,
        index: u64,
        data: Bytes,
    ) -> Result<(), ChunkError> {
        let chunks = self.chunk_count(meta.len);
        if index >= chunks {
            return Err(ChunkError::OutOfRange { index, chunks });
        }
        let expected = self.chunk_len(meta.len, index);
        if data.len() as u64 != expected {
            return Err(ChunkError::WrongLength {
                index,
                expected,
                actual: data.len() as u64,
            });
        }
        self.cache
            .insert(
                self.chunk_key(object, &meta.version, index),
                Piece::Data(data),
            )
            .map_err(too_heavy)
    }

    /// Stores a whole object: its metadata and every chunk (slices of
    /// `data`, not copies).
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooHeavy`] if a piece does not fit, or
    /// [`ChunkError::VersionMismatch`] if the metadata was evicted before the
    /// chunks went in (a cache much smaller than the object).
    pub fn put_object(&self, object: O, version: &str, data: Bytes) -> Result<(), ChunkError> {
        let len = data.len() as u64;
        self.put_meta(&object, len, version)?;
        let meta = self.current_meta(&object, version)?;
        let size = self.chunk_size as usize;
        for index in 0..self.chunk_count(len) {
            let start = index as usize * size;
            let end = (start + size).min(data.len());
            self.store_chunk(&object, &meta, index, data.slice(start..end))?;
        }
        Ok(())
    }

    /// Removes chunk `index` of `object`'s cached version, if cached.
    pub fn remove_chunk(&self, object: &O, index: u64) {
        if let Some(meta) = self.meta(object) {
            self.cache
                .remove(&self.chunk_key(object, &meta.version, index));
        }
    }

    /// Reads `range` of `object`: the cached parts and what is missing.
    ///
    /// # Errors
    ///
    /// [`RangeError::UnknownObject`] without metadata,
    /// [`RangeError::Unsatisfiable`] for a range that selects nothing,
    /// [`RangeError::TooLarge`] for one that spans too many chunks.
    pub fn read_range(&self, object: &O, range: ByteRange) -> Result<RangeRead, RangeError> {
        let meta = self.meta(object).ok_or(RangeError::UnknownObject)?;
        let wanted = range.resolve(meta.len)?;
        let size = u64::from(self.chunk_size);
        let chunks = wanted.start / size..wanted.end.div_ceil(size);
        if chunks.end - chunks.start > MAX_CHUNKS_PER_READ {
            return Err(RangeError::TooLarge {
                chunks: chunks.end - chunks.start,
            });
        }
        let mut parts = Vec::new();
        let mut missing: Vec<Range<u64>> = Vec::new();
        for index in chunks {
            let chunk_start = index * size;
            let from = wanted.start.max(chunk_start);
            let to = wanted.end.min(chunk_start.saturating_add(size));
            match self
                .cache
                .get(&self.chunk_key(object, &meta.version, index))
            {
                Some(Piece::Data(bytes))
                    if bytes.len() as u64 == self.chunk_len(meta.len, index) =>
                {
                    let slice = (from - chunk_start) as usize..(to - chunk_start) as usize;
                    parts.push((from, bytes.slice(slice)));
                }
                _ => match missing.last_mut() {
                    Some(last) if last.end == from => last.end = to,
                    _ => missing.push(from..to),
                },
            }
        }
        Ok(RangeRead {
            range: wanted,
            meta,
            parts,
            missing,
        })
    }
}

fn too_heavy<K, V>(error: InsertError<K, V>) -> ChunkError {
    match error {
        InsertError::TooHeavy { weight, .. } => ChunkError::TooHeavy {
            weight: u64::from(weight),
        },
    }
}

impl<O, S> fmt::Debug for ChunkStore<O, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStore")
            .field("chunk_size", &self.chunk_size)
            .field("cache", &self.cache)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_http_says() {
        assert_eq!(ByteRange::FromTo(0, 499).resolve(1000), Ok(0..500));
        assert_eq!(ByteRange::FromTo(500, 5000).resolve(1000), Ok(500..1000));
        assert_eq!(ByteRange::From(900).resolve(1000), Ok(900..1000));
        assert_eq!(ByteRange::Suffix(100).resolve(1000), Ok(900..1000));
        assert_eq!(ByteRange::Suffix(5000).resolve(1000), Ok(0..1000));
        assert_eq!(
            ByteRange::FromTo(u64::MAX, u64::MAX).resolve(10),
            Err(RangeError::Unsatisfiable { len: 10 })
        );
        for bad in [
            ByteRange::FromTo(1000, 1001),
            ByteRange::FromTo(5, 4),
            ByteRange::From(1000),
            ByteRange::Suffix(0),
        ] {
            assert_eq!(
                bad.resolve(1000),
                Err(RangeError::Unsatisfiable { len: 1000 }),
                "{bad:?}"
            );
        }
        assert!(ByteRange::Suffix(1).resolve(0).is_err());
        assert_eq!(ByteRange::FromTo(0, u64::MAX).resolve(3), Ok(0..3));
    }

    #[test]
    fn absurd_lengths_give_errors_not_loops() {
        let store: ChunkStore<u8> =
            ChunkStore::new(1 << 20, 1024).unwrap_or_else(|e| panic!("{e}"));
        store
            .put_meta(&1, u64::MAX, "huge")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            store.read_range(&1, ByteRange::From(0)),
            Err(RangeError::TooLarge { .. })
        ));
        // The last chunk, near u64::MAX, reads as missing without overflow.
        let read = store
            .read_range(&1, ByteRange::Suffix(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.missing, vec![u64::MAX - 10..u64::MAX]);
        assert_eq!(
            store.put_chunk(&1, "huge", u64::MAX, Bytes::new()),
            Err(ChunkError::OutOfRange {
                index: u64::MAX,
                chunks: u64::MAX.div_ceil(1024)
            })
        );
        // A new version does not walk 2^54 old chunks.
        store
            .put_meta(&1, 10, "small")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.meta(&1).map(|m| m.len), Some(10));
    }
}
