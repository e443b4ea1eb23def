//! The record format: one self-checking frame per entry.
//!
//! ```text
//!  offset  size  field
//!   0      4     magic  b"STRA"
//!   4      1     version (1)
//!   5      1     flags: bit 0 tombstone, bit 1 has expiry, bit 2 has tags;
//!                other bits must be 0
//!   6      2     reserved, 0
//!   8      4     key length (u32, little-endian, like every number here)
//!  12      4     value length
//!  16      4     tags length: bytes of the tag section
//!  20      4     reserved, 0
//!  24      8     expiry: Unix time in milliseconds (0 without the flag)
//!  32      k     key
//!  32+k    v     value
//!  ...     t     tags: each a u16 length and that many UTF-8 bytes
//!  end-8   8     XXH3-64 of every byte before it
//! ```
//!
//! A tombstone carries a key and no value: it records that the key was
//! removed or replaced, so that an older record of it never comes back.
//! Decoding checks the lengths against the input before it reads anything
//! they cover and borrows every field from the input, so it allocates
//! nothing and reads nothing past the input whatever the bytes are.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64;

/// The four bytes every record starts with.
pub const MAGIC: [u8; 4] = *b"STRA";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the key.
pub const HEADER_LEN: usize = 32;
/// Bytes after the tags (the checksum).
pub const TRAILER_LEN: usize = 8;
/// The longest key a record may hold (1 MiB).
pub const MAX_KEY_LEN: usize = 1 << 20;
/// The longest tag section a record may hold (64 KiB).
pub const MAX_TAGS_LEN: usize = 1 << 16;
/// The longest value a record may hold (just under 4 GiB: lengths are u32).
pub const MAX_VALUE_LEN: usize = u32::MAX as usize - HEADER_LEN - TRAILER_LEN;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_EXPIRES: u8 = 1 << 1;
const FLAG_TAGS: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_EXPIRES | FLAG_TAGS;

/// Why bytes are not a valid record (or a valid key or value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the record does.
    #[error("record truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the record claims (or the header, if shorter).
        needed: u64,
        /// Bytes given.
        available: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    #[error("not a strata record (bad magic)")]
    BadMagic,
    /// A format version this code does not read.
    #[error("unsupported record version {0}; this build reads version 1")]
    UnsupportedVersion(u8),
    /// Flag bits this version does not define, or nonzero reserved bytes.
    #[error("record header has unknown flags {0:#04x} or nonzero reserved bytes")]
    UnknownFlags(u8),
    /// A length beyond the format's limits.
    #[error("record {field} length {len} exceeds the limit {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The length given.
        len: u64,
        /// The most allowed.
        max: u64,
    },
    /// The checksum does not match the bytes: the record is corrupt or torn.
    #[error("record checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    BadChecksum {
        /// The checksum in the record.
        stored: u64,
        /// The checksum of the bytes.
        computed: u64,
    },
    /// The tag section is malformed (a length past its end, or not UTF-8).
    #[error("record tag section is malformed")]
    BadTags,
    /// A key or value codec refused the bytes.
    #[error("cannot decode {what}: {reason}")]
    Invalid {
        /// What was being decoded (a type name).
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

/// A record decoded in place: every field borrows from the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The encoded key.
    pub key: &'a [u8],
    /// The encoded value (empty for a tombstone).
    pub value: &'a [u8],
    /// The expiry as Unix time in milliseconds, if any.
    pub expires_at_ms: Option<u64>,
    /// Whether this is a tombstone.
    pub tombstone: bool,
    tags: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record's tags, in stored order.
    pub fn tags(&self) -> Tags<'a> {
        Tags { rest: self.tags }
    }

    /// Where the value starts, counted from the record's first byte.
    #[must_use]
    pub fn value_offset(&self) -> usize {
        HEADER_LEN + self.key.len()
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRef")
            .field("key_len", &self.key.len())
            .field("value_len", &self.value.len())
            .field("expires_at_ms", &self.expires_at_ms)
            .field("tombstone", &self.tombstone)
            .field("tags", &self.tags().collect::<Vec<_>>())
            .finish()
    }
}

/// Iterator over a record's tags (validated when the record was decoded).
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (tag, rest) = split_tag(self.rest).ok()??;
        self.rest = rest;
        Some(tag)
    }
}

/// One tag off the front of `section`: `Ok(None)` at its end.
fn split_tag(section: &[u8]) -> Result<Option<(&str, &[u8])>, DecodeError> {
    let Some((len, rest)) = section.split_first_chunk::<2>() else {
        return if section.is_empty() {
            Ok(None)
        } else {
            Err(DecodeError::BadTags)
        };
    };
    let len = usize::from(u16::from_le_bytes(*len));
    let (tag, rest) = rest.split_at_checked(len).ok_or(DecodeError::BadTags)?;
    let tag = std::str::from_utf8(tag).map_err(|_| DecodeError::BadTags)?;
    Ok(Some((tag, rest)))
}

/// What a record says besides its key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta<'t> {
    /// Expiry as Unix time in milliseconds.
    pub expires_at_ms: Option<u64>,
    /// Tags (duplicates are kept as given; tags over 65,535 bytes are
    /// rejected by [`RecordWriter::finish`]).
    pub tags: &'t [&'t str],
}

/// Builds one record at the end of a buffer: the header first, then the key
/// and value written straight into the buffer by their codecs (no
/// intermediate copies), then the tags and checksum.
#[derive(Debug)]
pub struct RecordWriter<'b> {
    out: &'b mut Vec<u8>,
    start: usize,
    key_end: Option<usize>,
}

impl<'b> RecordWriter<'b> {
    /// Starts a record at the end of `out`.
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        Self {
            out,
            start,
            key_end: None,
        }
    }

    /// The buffer to encode the key into; then call [`RecordWriter::end_key`].
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Marks the end of the key: what is written next is the value.
    pub fn end_key(&mut self) {
        self.key_end = Some(self.out.len());
    }

    /// Completes the record: fills in the header, appends the tags and the
    /// checksum, and returns the record's length. On error the buffer is
    /// restored to its length before [`RecordWriter::new`].
    ///
    /// # Errors
    ///
    /// [`DecodeError::TooLong`] if the key, value or tag section exceeds the
    /// format's limits (the record could not be read back).
    pub fn finish(self, meta: RecordMeta<'_>, tombstone: bool) -> Result<usize, DecodeError> {
        let Self {
            out,
            start,
            key_end,
        } = self;
        let key_start = start + HEADER_LEN;
        let key_end = key_end.unwrap_or(out.len());
        let key_len = key_end - key_start;
        let value_len = out.len() - key_end;
        let tags_start = out.len();
        let fail = |out: &mut Vec<u8>, field, len: usize, max: usize| {
            out.truncate(start);
            Err(DecodeError::TooLong {
                field,
                len: len as u64,
                max: max as u64,
            })
        };
        if key_len > MAX_KEY_LEN {
            return fail(out, "key", key_len, MAX_KEY_LEN);
        }
        if value_len > MAX_VALUE_LEN {
            return fail(out, "value", value_len, MAX_VALUE_LEN);
        }
        for tag in meta.tags {
            let Ok(len) = u16::try_from(tag.len()) else {
                return fail(out, "tag", tag.len(), usize::from(u16::MAX));
            };
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(tag.as_bytes());
        }
        let tags_len = out.len() - tags_start;
        if tags_len > MAX_TAGS_LEN {
            return fail(out, "tags", tags_len, MAX_TAGS_LEN);
        }
        let mut flags = 0;
        if tombstone {
            flags |= FLAG_TOMBSTONE;
        }
        if meta.expires_at_ms.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if tags_len > 0 {
            flags |= FLAG_TAGS;
        }
        // The limits above keep every length within u32.
        let header = &mut out[start..key_start];
        header[0..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        header[5] = flags;
        header[8..12].copy_from_slice(&(key_len as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(value_len as u32).to_le_bytes());
        header[16..20].copy_from_slice(&(tags_len as u32).to_le_bytes());
        header[24..32].copy_from_slice(&meta.expires_at_ms.unwrap_or(0).to_le_bytes());
        let checksum = xxh3_64(&out[start..]);
        out.extend_from_slice(&checksum.to_le_bytes());
        Ok(out.len() - start)
    }
}

/// Appends a record of raw key and value bytes to `out`; returns its length.
///
/// # Errors
///
/// As [`RecordWriter::finish`].
///
/// # Examples
///
/// ```
/// use strata::codec::{decode, encode, RecordMeta};
///
/// let mut buf = Vec::new();
/// let meta = RecordMeta { expires_at_ms: Some(1_700_000_000_000), tags: &["user:7"] };
/// let len = encode(b"key", b"value", meta, &mut buf)?;
/// let (record, used) = decode(&buf)?;
/// assert_eq!((record.key, record.value, used), (&b"key"[..], &b"value"[..], len));
/// assert_eq!(record.tags().collect::<Vec<_>>(), ["user:7"]);
///
/// buf[40] ^= 1; // one flipped bit
/// assert!(decode(&buf).is_err());
/// # Ok::<(), strata::codec::DecodeError>(())
/// ```
pub fn encode(
    key: &[u8],
    value: &[u8],
    meta: RecordMeta<'_>,
    out: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let mut writer = RecordWriter::new(out);
    writer.buf().extend_from_slice(key);
    writer.end_key();
    writer.buf().extend_from_slice(value);
    writer.finish(meta, false)
}

/// Appends a tombstone for `key` to `out`; returns its length.
///
/// # Errors
///
/// As [`RecordWriter::finish`].
pub fn encode_tombstone(key: &[u8], out: &mut Vec<u8>) -> Result<usize, DecodeError> {
    let mut writer = RecordWriter::new(out);
    writer.buf().extend_from_slice(key);
    writer.end_key();
    writer.finish(RecordMeta::default(), true)
}

/// The length of the record at the start of `input`, from its header
/// alone (no checksum check): what a scan needs to step over a record.
///
/// # Errors
///
/// Any header error of [`decode`]; [`DecodeError::Truncated`] if `input`
/// is shorter than the header or the record.
pub fn record_len(input: &[u8]) -> Result<usize, DecodeError> {
    let header: &[u8; HEADER_LEN] = input.first_chunk().ok_or(DecodeError::Truncated {
        needed: HEADER_LEN as u64,
        available: input.len(),
    })?;
    if header[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if header[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(header[4]));
    }
    let flags = header[5];
    // Bytes a field does not use must be zero, so that every record has
    // exactly one encoding (an expiry without its flag included: found by
    // the codec_decode fuzz target).
    let stray_expiry = flags & FLAG_EXPIRES == 0 && header[24..32] != [0; 8];
    if flags & !KNOWN_FLAGS != 0
        || header[6..8] != [0, 0]
        || header[20..24] != [0; 4]
        || stray_expiry
    {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let field = |at: usize| {
        u64::from(u32::from_le_bytes([
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ]))
    };
    let (key_len, value_len, tags_len) = (field(8), field(12), field(16));
    for (name, len, max) in [
        ("key", key_len, MAX_KEY_LEN),
        ("value", value_len, MAX_VALUE_LEN),
        ("tags", tags_len, MAX_TAGS_LEN),
    ] {
        if len > max as u64 {
            return Err(DecodeError::TooLong {
                field: name,
                len,
                max: max as u64,
            });
        }
    }
    // At most 32 + 2^20 + 2^32 + 2^16 + 8: no overflow in u64.
    let total = HEADER_LEN as u64 + key_len + value_len + tags_len + TRAILER_LEN as u64;
    if total > input.len() as u64 {
        return Err(DecodeError::Truncated {
            needed: total,
            available: input.len(),
        });
    }
    Ok(total as usize)
}

/// Decodes the record at the start of `input`; returns it and the bytes it
/// used. Bytes after the record are ignored.
///
/// # Errors
///
/// A [`DecodeError`] saying what is wrong; never a panic, whatever `input`.
pub fn decode(input: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    let total = record_len(input)?;
    let body_end = total - TRAILER_LEN;
    let mut stored = [0; TRAILER_LEN];
    stored.copy_from_slice(&input[body_end..total]);
    let stored = u64::from_le_bytes(stored);
    let computed = xxh3_64(&input[..body_end]);
    if stored != computed {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    parse(input, total)
}

/// Like [`decode`] without the checksum: every length and the tag section
/// are still checked, so no input makes it panic or read out of bounds,
/// but damaged key or value bytes go unnoticed. For records already
/// verified once (the spill tier checks each at open or wrote it itself).
///
/// # Errors
///
/// As [`decode`], except [`DecodeError::BadChecksum`].
pub fn decode_unverified(input: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    let total = record_len(input)?;
    parse(input, total)
}

/// The fields of a record whose header `record_len` accepted.
fn parse(input: &[u8], total: usize) -> Result<(RecordRef<'_>, usize), DecodeError> {
    let body_end = total - TRAILER_LEN;
    let u32_at = |at: usize| {
        u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]) as usize
    };
    let (key_len, value_len) = (u32_at(8), u32_at(12));
    let flags = input[5];
    let key_end = HEADER_LEN + key_len;
    let value_end = key_end + value_len;
    let tags = &input[value_end..body_end];
    let mut rest = tags;
    while let Some((_, after)) = split_tag(rest)? {
        rest = after;
    }
    if (flags & FLAG_TAGS != 0) == tags.is_empty() {
        return Err(DecodeError::BadTags);
    }
    let tombstone = flags & FLAG_TOMBSTONE != 0;
    // A tombstone is a key alone: a value, an expiry or tags on it would
    // be a second encoding of the same record (found by the codec_decode
    // fuzz target).
    if tombstone && (value_len != 0 || flags & (FLAG_EXPIRES | FLAG_TAGS) != 0) {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let mut expiry = [0; 8];
    expiry.copy_from_slice(&input[24..32]);
    let expires_at_ms = (flags & FLAG_EXPIRES != 0).then(|| u64::from_le_bytes(expiry));
    Ok((
        RecordRef {
            key: &input[HEADER_LEN..key_end],
            value: &input[key_end..value_end],
            expires_at_ms,
            tombstone,
            tags,
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut buf = Vec::new();
        let meta = RecordMeta {
            expires_at_ms: Some(42),
            tags: &["a", "bé"],
        };
        encode(b"k1", b"v-one", meta, &mut buf).unwrap();
        buf
    }

    #[test]
    fn round_trip_and_layout() {
        let buf = sample();
        assert_eq!(
            buf.len(),
            HEADER_LEN + 2 + 5 + (2 + 1) + (2 + 3) + TRAILER_LEN
        );
        let (rec, used) = decode(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(rec.key, b"k1");
        assert_eq!(rec.value, b"v-one");
        assert_eq!(rec.expires_at_ms, Some(42));
        assert!(!rec.tombstone);
        assert_eq!(rec.tags().collect::<Vec<_>>(), ["a", "bé"]);
        assert_eq!(rec.value_offset(), HEADER_LEN + 2);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_an_error() {
        let buf = sample();
        for len in 0..buf.len() {
            assert!(decode(&buf[..len]).is_err(), "prefix {len}");
        }
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn absurd_lengths_are_rejected_before_reading() {
        let mut buf = sample();
        buf[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&buf),
            Err(DecodeError::TooLong { field: "value", .. })
        ));
        let mut buf = sample();
        buf[12..16].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(matches!(decode(&buf), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn tombstones_carry_no_value() {
        let mut buf = Vec::new();
        encode_tombstone(b"gone", &mut buf).unwrap();
        let (rec, _) = decode(&buf).unwrap();
        assert!(rec.tombstone);
        assert_eq!(
            (rec.key, rec.value, rec.expires_at_ms),
            (&b"gone"[..], &b""[..], None)
        );
    }

    #[test]
    fn over_long_fields_are_refused_and_the_buffer_restored() {
        let mut buf = b"prefix".to_vec();
        let key = vec![0; MAX_KEY_LEN + 1];
        assert!(encode(&key, b"", RecordMeta::default(), &mut buf).is_err());
        let long_tag = "x".repeat(70_000);
        let meta = RecordMeta {
            expires_at_ms: None,
            tags: &[&long_tag],
        };
        assert!(encode(b"k", b"", meta, &mut buf).is_err());
        assert_eq!(buf, b"prefix");
    }
}
