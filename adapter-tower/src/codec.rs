//! Stored responses as bytes, for the engine's spill tier (and any tier
//! that keeps [`strata::codec`] records): a resource's variants, each with
//! its status, stored header fields, body, arrival times, secondary key,
//! directives and derived freshness.
//!
//! ```text
//! | version 3 | variant count (u8) | variant* |
//! variant: status u16 | request ms u64 | response ms u64 | fallback? | override u8
//!          | initial age? | lifetime? | vary | directives | fields | body
//!          | coding u8 (0 none, 1 gzip, 2 zstd) | length before u64 (0 if none)
//! ```
//!
//! Version 2 (still read) ended with `gzip of?` instead. A body compressed
//! in a way this build cannot decompress is a decoding error (a miss), not
//! a stored response that cannot be served.
//!
//! Numbers are little-endian; `?` is a presence byte then a `u64`; strings
//! and byte strings carry a `u32` length. Decoding checks every length
//! against the input, validates status codes, field names and values, and
//! allocates in proportion to the input; the body is a slice of it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use strata::codec::{Codec, DecodeError};

use crate::compress::{Compression, Packed};
use crate::entry::{Stored, Variants, MAX_VARIANTS};
use crate::key::VaryKey;
use crate::policy::freshness::Timing;
use crate::policy::Directives;

const VERSION: u8 = 3;
/// The version before zstd, still read.
const GZIP_ONLY: u8 = 2;
const WHAT: &str = "stored HTTP responses";

fn invalid(reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        what: WHAT,
        reason: reason.into(),
    }
}

impl Codec for Variants {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        let count = self.len().min(MAX_VARIANTS);
        out.push(u8::try_from(count).unwrap_or(u8::MAX));
        for stored in self.iter().take(count) {
            encode_stored(stored, out);
        }
    }

    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        let mut input = Reader { bytes, at: 0 };
        let version = input.u8()?;
        if version != VERSION && version != GZIP_ONLY {
            return Err(invalid("unknown version"));
        }
        let count = usize::from(input.u8()?);
        if count == 0 || count > MAX_VARIANTS {
            return Err(invalid(format!("{count} variants")));
        }
        let mut list = Vec::with_capacity(count);
        for _ in 0..count {
            list.push(Arc::new(decode_stored(&mut input, version)?));
        }
        if input.at != input.bytes.len() {
            return Err(invalid("bytes after the last variant"));
        }
        Ok(Variants::from_list(list))
    }

    fn encoded_len_hint(&self) -> usize {
        self.iter().map(|stored| stored.weight()).sum()
    }
}

fn encode_stored(stored: &Stored, out: &mut Vec<u8>) {
    out.extend_from_slice(&stored.status.as_u16().to_le_bytes());
    put_u64(out, unix_ms(stored.timing.request_time));
    put_u64(out, unix_ms(stored.timing.response_time));
    put_opt(out, stored.fallback);
    out.push(u8::from(stored.override_cc));
    put_opt(out, stored.initial_age);
    put_opt(out, stored.lifetime);

    let (fields, language) = stored.vary.parts();
    put_len(out, fields.len());
    for (name, value) in fields {
        put_bytes(out, name.as_str().as_bytes());
        put_opt_bytes(out, value.as_deref().map(str::as_bytes));
    }
    put_opt_bytes(out, language.map(str::as_bytes));

    let d = &stored.directives;
    for value in [
        d.max_age,
        d.s_maxage,
        d.max_stale,
        d.min_fresh,
        d.stale_while_revalidate,
        d.stale_if_error,
    ] {
        put_opt(out, value);
    }
    let flags = [
        d.no_cache,
        d.no_store,
        d.private,
        d.public,
        d.must_revalidate,
        d.proxy_revalidate,
        d.only_if_cached,
        d.no_transform,
        d.must_understand,
    ]
    .iter()
    .enumerate()
    .fold(0u16, |bits, (i, &on)| bits | (u16::from(on) << i));
    out.extend_from_slice(&flags.to_le_bytes());
    for list in [&d.no_cache_fields, &d.private_fields] {
        put_len(out, list.len());
        for field in list {
            put_bytes(out, field.as_bytes());
        }
    }

    put_len(out, stored.headers.len());
    for (name, value) in &stored.headers {
        put_bytes(out, name.as_str().as_bytes());
        put_bytes(out, value.as_bytes());
    }
    put_bytes(out, &stored.body);
    match stored.packed {
        None => out.extend_from_slice(&[0; 9]),
        Some(packed) => {
            out.push(packed.coding.tag());
            out.extend_from_slice(&packed.len.to_le_bytes());
        }
    }
}

fn decode_stored(input: &mut Reader, version: u8) -> Result<Stored, DecodeError> {
    let status = StatusCode::from_u16(input.u16()?).map_err(|e| invalid(e.to_string()))?;
    let timing = Timing {
        request_time: from_unix_ms(input.u64()?),
        response_time: from_unix_ms(input.u64()?),
    };
    let fallback = input.opt()?;
    let override_cc = input.flag()?;
    let initial_age = input.opt()?;
    let lifetime = input.opt()?;

    let count = input.len(5)?;
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let name = header_name(&input.bytes()?)?;
        let value = input.opt_bytes()?.map(utf8).transpose()?;
        fields.push((name, value));
    }
    let language = input
        .opt_bytes()?
        .map(utf8)
        .transpose()?
        .map(String::into_boxed_str);
    let vary = VaryKey::from_parts(fields, language);

    let mut directives = Directives {
        max_age: input.opt()?,
        s_maxage: input.opt()?,
        max_stale: input.opt()?,
        min_fresh: input.opt()?,
        stale_while_revalidate: input.opt()?,
        stale_if_error: input.opt()?,
        ..Directives::default()
    };
    let flags = input.u16()?;
    if flags >> 9 != 0 {
        return Err(invalid("unknown directive flags"));
    }
    let on = |i: u16| flags & (1 << i) != 0;
    directives.no_cache = on(0);
    directives.no_store = on(1);
    directives.private = on(2);
    directives.public = on(3);
    directives.must_revalidate = on(4);
    directives.proxy_revalidate = on(5);
    directives.only_if_cached = on(6);
    directives.no_transform = on(7);
    directives.must_understand = on(8);
    for list in [
        &mut directives.no_cache_fields,
        &mut directives.private_fields,
    ] {
        let count = input.len(4)?;
        for _ in 0..count {
            list.push(utf8(input.bytes()?)?);
        }
    }

    let count = input.len(8)?;
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let name = header_name(&input.bytes()?)?;
        let value =
            HeaderValue::from_maybe_shared(input.bytes()?).map_err(|e| invalid(e.to_string()))?;
        headers.append(name, value);
    }
    let body = input.bytes()?;
    let (tag, len) = if version == GZIP_ONLY {
        input.opt()?.map_or((0, 0), |len| (1, len))
    } else {
        (input.u8()?, input.u64()?)
    };
    let packed = match tag {
        0 if len == 0 => None,
        0 => return Err(invalid("a length behind no coding")),
        tag => {
            let coding = Compression::from_tag(tag)
                .ok_or_else(|| invalid(format!("body coding {tag}, not built in")))?;
            Some(Packed { coding, len })
        }
    };
    Ok(Stored {
        status,
        headers,
        body,
        timing,
        vary,
        directives,
        fallback,
        override_cc,
        initial_age,
        lifetime,
        packed,
    })
}

fn header_name(bytes: &[u8]) -> Result<HeaderName, DecodeError> {
    HeaderName::from_bytes(bytes).map_err(|e| invalid(e.to_string()))
}

fn utf8(bytes: Bytes) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| invalid(e.to_string()))
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_opt(out: &mut Vec<u8>, value: Option<u64>) {
    out.push(u8::from(value.is_some()));
    put_u64(out, value.unwrap_or(0));
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_opt_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    out.push(u8::from(bytes.is_some()));
    put_bytes(out, bytes.unwrap_or_default());
}

/// A cursor over the input; every read is checked against its end.
struct Reader {
    bytes: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                needed: (self.at as u64).saturating_add(n as u64),
                available: self.bytes.len(),
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_le_bytes)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(invalid(format!("flag byte {other}"))),
        }
    }

    fn opt(&mut self) -> Result<Option<u64>, DecodeError> {
        let present = self.flag()?;
        let value = self.u64()?;
        match (present, value) {
            (true, value) => Ok(Some(value)),
            (false, 0) => Ok(None),
            (false, _) => Err(invalid("a value behind an absent flag")),
        }
    }

    /// A count of items that take at least `min_item` bytes each: never
    /// more than the rest of the input could hold.
    fn len(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let count = usize::try_from(u32::from_le_bytes(self.array()?)).unwrap_or(usize::MAX);
        let room = (self.bytes.len() - self.at) / min_item.max(1);
        if count > room {
            return Err(invalid(format!(
                "{count} items in {room} items' worth of bytes"
            )));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.len(1)?;
        let start = self.at;
        self.take(len)?;
        Ok(self.bytes.slice(start..start + len))
    }

    fn opt_bytes(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let present = self.flag()?;
        let bytes = self.bytes()?;
        match (present, bytes.is_empty()) {
            (true, _) => Ok(Some(bytes)),
            (false, true) => Ok(None),
            (false, false) => Err(invalid("bytes behind an absent flag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Variants {
        let mut headers = HeaderMap::new();
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let mut request = HeaderMap::new();
        request.insert("accept-language", HeaderValue::from_static("en, de;q=0.5"));
        let mut response = HeaderMap::new();
        response.insert(
            "vary",
            HeaderValue::from_static("Accept-Language, X-Absent"),
        );
        response.insert("content-language", HeaderValue::from_static("en"));
        let stored = Stored {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"hello world"),
            timing: Timing {
                request_time: from_unix_ms(1_700_000_000_000),
                response_time: from_unix_ms(1_700_000_000_250),
            },
            vary: VaryKey::new(&response, &request),
            directives: Directives {
                max_age: Some(60),
                must_revalidate: true,
                no_cache_fields: vec!["x-secret".to_owned()],
                ..Directives::default()
            },
            fallback: Some(5),
            override_cc: false,
            initial_age: Some(3),
            lifetime: Some(60),
            packed: None,
        };
        let mut other = stored.clone();
        other.status = StatusCode::NOT_FOUND;
        other.body = Bytes::new();
        other.packed = Some(Packed {
            coding: Compression::Gzip,
            len: 123,
        });
        Variants::from_list(vec![Arc::new(stored), Arc::new(other)])
    }

    fn encoded(variants: &Variants) -> Vec<u8> {
        let mut out = Vec::new();
        variants.encode(&mut out);
        out
    }

    #[test]
    fn round_trips_every_field() {
        let variants = sample();
        let bytes = encoded(&variants);
        let back = Variants::decode(Bytes::from(bytes.clone())).expect("decodes");
        assert_eq!(back.len(), 2);
        for (a, b) in variants.iter().zip(back.iter()) {
            assert_eq!(a.status, b.status);
            assert_eq!(a.headers, b.headers);
            assert_eq!(a.body, b.body);
            assert_eq!(a.timing.request_time, b.timing.request_time);
            assert_eq!(a.timing.response_time, b.timing.response_time);
            assert_eq!(a.vary, b.vary);
            assert_eq!(a.vary.parts(), b.vary.parts());
            assert_eq!(a.directives, b.directives);
            assert_eq!(
                (
                    a.fallback,
                    a.override_cc,
                    a.initial_age,
                    a.lifetime,
                    a.packed
                ),
                (
                    b.fallback,
                    b.override_cc,
                    b.initial_age,
                    b.lifetime,
                    b.packed
                )
            );
        }
        assert_eq!(encoded(&back), bytes, "one encoding per value");
    }

    #[test]
    fn every_truncation_and_many_bit_flips_are_errors_not_panics() {
        let bytes = encoded(&sample());
        for len in 0..bytes.len() {
            assert!(Variants::decode(Bytes::copy_from_slice(&bytes[..len])).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Variants::decode(Bytes::from(longer)).is_err());
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut flipped = bytes.clone();
                flipped[i] ^= bit;
                // Either an error or some other valid value; never a panic.
                let _ = Variants::decode(Bytes::from(flipped));
            }
        }
        let huge_count = [VERSION, 1, 200, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(Variants::decode(Bytes::copy_from_slice(&huge_count)).is_err());
    }

    /// The offset of the first variant's coding byte in `encoded(&sample())`.
    fn coding_at(bytes: &[u8]) -> usize {
        // The first variant's body ("hello world") ends right before it.
        let body = bytes
            .windows(15)
            .position(|w| w == b"\x0b\0\0\0hello world")
            .expect("the body");
        body + 15
    }

    #[test]
    fn codings_this_build_lacks_and_the_gzip_only_version() {
        let bytes = encoded(&sample());
        let at = coding_at(&bytes);
        assert_eq!(&bytes[at..at + 9], &[0; 9], "stored plain");
        let mut unknown = bytes.clone();
        unknown[at] = 9;
        unknown[at + 1] = 1;
        assert!(Variants::decode(Bytes::from(unknown)).is_err());
        let mut zstd = bytes.clone();
        zstd[at] = 2;
        zstd[at + 1] = 1;
        assert_eq!(
            Variants::decode(Bytes::from(zstd)).is_ok(),
            cfg!(feature = "compression-zstd")
        );
        let mut stray_length = bytes.clone();
        stray_length[at + 1] = 1;
        assert!(Variants::decode(Bytes::from(stray_length)).is_err());

        // Version 2: `gzip of?` (a presence flag and a u64) in its place.
        let mut old = bytes.clone();
        old[0] = GZIP_ONLY;
        old[at] = 1;
        old[at + 1] = 42;
        let back = Variants::decode(Bytes::from(old)).expect("version 2 decodes");
        assert_eq!(
            back.iter().next().and_then(|s| s.packed),
            Some(Packed {
                coding: Compression::Gzip,
                len: 42
            })
        );
    }
}
