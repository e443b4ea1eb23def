//! The binary codec: one versioned, checksummed record format for an entry
//! (key, value, expiry, tags), shared by the spill tier and remote tiers,
//! and the [`Codec`] trait that turns keys and values into bytes.
//!
//! The format is laid out in [`record`](self#the-record-format) terms below;
//! [`decode`] of any bytes returns a [`DecodeError`] rather than panicking,
//! never allocates, and never reads past its input.
//!
//! # The record format
//!
//! ```text
//! | magic "STRA" | ver | flags | 0 0 | key len | value len | tags len | 0 |
//! | expiry (Unix ms) | key | value | tags (u16 len + UTF-8)* | XXH3-64 |
//! ```
//!
//! Numbers are little-endian; the header is 32 bytes and the checksum
//! covers everything before it. See [`RecordWriter`] for writing a record
//! with the key and value encoded in place.
//!
//! # Key and value codecs
//!
//! [`Codec`] is implemented for `Bytes` (decoding is zero-copy: the value
//! is a slice of the record's buffer, e.g. of a memory-mapped spill
//! segment), `Vec<u8>`, `String`, `Box<str>`, the integer types (fixed
//! little-endian) and `()`; behind the `serde` feature, [`Serde`] wraps any
//! serde type (encoded with postcard).

mod record;
#[cfg(feature = "serde")]
mod serde;

pub use record::{
    decode, decode_unverified, encode, encode_tombstone, record_len, DecodeError, RecordMeta,
    RecordRef, RecordWriter, Tags, HEADER_LEN, MAGIC, MAX_KEY_LEN, MAX_TAGS_LEN, MAX_VALUE_LEN,
    TRAILER_LEN, VERSION,
};
#[cfg(feature = "serde")]
pub use serde::Serde;

use bytes::Bytes;

/// Turns a key or value into bytes and back.
///
/// `decode` gets the exact bytes `encode` wrote, as a [`Bytes`] that may
/// share its memory with a larger buffer (a memory-mapped segment, a
/// network frame): types that can keep a slice of it (like `Bytes`) decode
/// without copying. `decode` must return an error, not panic, on bytes it
/// did not write: spill files and remote tiers are outside the process's
/// control.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use strata::codec::{Codec, DecodeError};
///
/// #[derive(Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// impl Codec for Point {
///     fn encode(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(&self.x.to_le_bytes());
///         out.extend_from_slice(&self.y.to_le_bytes());
///     }
///     fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
///         let (x, y) = (i32::decode(bytes.slice(..4.min(bytes.len())))?, i32::decode(bytes.slice(4.min(bytes.len())..))?);
///         Ok(Point { x, y })
///     }
/// }
///
/// let mut buf = Vec::new();
/// Point { x: 1, y: -2 }.encode(&mut buf);
/// assert_eq!(Point::decode(Bytes::from(buf))?, Point { x: 1, y: -2 });
/// assert!(Point::decode(Bytes::from_static(b"short")).is_err());
/// # Ok::<(), DecodeError>(())
/// ```
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads a value back from exactly the bytes [`Codec::encode`] wrote.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Invalid`] (or another variant) for bytes that are not
    /// an encoding of `Self`.
    fn decode(bytes: Bytes) -> Result<Self, DecodeError>;

    /// The encoded length if known cheaply (a hint for buffer sizing).
    fn encoded_len_hint(&self) -> usize {
        0
    }
}

impl Codec for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        Ok(bytes)
    }

    fn encoded_len_hint(&self) -> usize {
        self.len()
    }
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }

    fn encoded_len_hint(&self) -> usize {
        self.len()
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| DecodeError::Invalid {
        what,
        reason: e.to_string(),
    })
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        utf8(&bytes, "String").map(str::to_owned)
    }

    fn encoded_len_hint(&self) -> usize {
        self.len()
    }
}

impl Codec for Box<str> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        utf8(&bytes, "Box<str>").map(Box::from)
    }

    fn encoded_len_hint(&self) -> usize {
        self.len()
    }
}

impl Codec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Invalid {
                what: "()",
                reason: format!("{} unexpected bytes", bytes.len()),
            })
        }
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
                let array = <[u8; std::mem::size_of::<$t>()]>::try_from(&bytes[..])
                    .map_err(|_| DecodeError::Invalid {
                        what: stringify!($t),
                        reason: format!(
                            "expected {} bytes, got {}",
                            std::mem::size_of::<$t>(),
                            bytes.len()
                        ),
                    })?;
                Ok(<$t>::from_le_bytes(array))
            }

            fn encoded_len_hint(&self) -> usize {
                std::mem::size_of::<$t>()
            }
        }
    )*};
}

int_codec!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(value: T) {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        assert_eq!(T::decode(Bytes::from(buf)).unwrap(), value);
    }

    #[test]
    fn built_in_codecs_round_trip() {
        round_trip(Bytes::from_static(b"bytes"));
        round_trip(b"vec".to_vec());
        round_trip("string é".to_string());
        round_trip(Box::<str>::from("boxed"));
        round_trip(());
        round_trip(u64::MAX);
        round_trip(-7i32);
        round_trip(u128::MAX - 1);
    }

    #[test]
    fn wrong_bytes_are_errors() {
        assert!(u64::decode(Bytes::from_static(b"1234567")).is_err());
        assert!(String::decode(Bytes::from_static(b"\xff\xfe")).is_err());
        assert!(<()>::decode(Bytes::from_static(b"x")).is_err());
    }

    #[test]
    fn bytes_decode_shares_the_buffer() {
        let buf = Bytes::from(b"0123456789".to_vec());
        let part = Bytes::decode(buf.slice(2..6)).unwrap();
        assert_eq!(part.as_ptr(), buf[2..].as_ptr());
    }
}
