//! Compression of stored bodies (feature `compression`, and
//! `compression-zstd` for zstd): a storable body of a compressible media
//! type, at least `compress_above` bytes long and not already encoded, is
//! kept compressed (when that saves at least an eighth), so that the same
//! memory holds more responses. A hit goes out compressed as it is stored
//! when the client takes that coding and the response varies on
//! `Accept-Encoding`; otherwise it is decompressed, so clients always get a
//! representation they asked for.

use bytes::Bytes;

/// How stored bodies are compressed (feature `compression`); chosen with
/// [`CacheLayerBuilder::compression`](crate::CacheLayerBuilder::compression).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(not(feature = "compression"), allow(unreachable_pub))]
pub enum Compression {
    /// gzip (fast level): every HTTP client takes it.
    #[default]
    Gzip,
    /// zstd (level 1; feature `compression-zstd`): on a JSON corpus half
    /// the size of gzip's and twice as fast to decompress (see
    /// benches/RESULTS.md), taken as such by current browsers.
    #[cfg(feature = "compression-zstd")]
    Zstd,
}

impl Compression {
    /// Its `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            #[cfg(feature = "compression-zstd")]
            Self::Zstd => "zstd",
        }
    }

    /// Its tag in the stored-response codec.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Self::Gzip => 1,
            #[cfg(feature = "compression-zstd")]
            Self::Zstd => 2,
        }
    }

    /// The coding of a codec tag this build can decompress.
    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 if cfg!(feature = "compression") => Some(Self::Gzip),
            #[cfg(feature = "compression-zstd")]
            2 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// A body stored compressed: how, and its length before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) coding: Compression,
    pub(crate) len: u64,
}

/// Whether a body of this `Content-Type` is worth compressing: text, and
/// the structured formats that travel as text.
#[cfg(feature = "compression")]
pub(crate) fn compressible(content_type: Option<&str>) -> bool {
    let Some(media) = content_type.and_then(|t| t.split(';').next()) else {
        return false;
    };
    let media = media.trim().to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "image/svg+xml"
        )
}

/// `body` compressed with `coding`, if that saves at least an eighth.
#[cfg(feature = "compression")]
pub(crate) fn pack(coding: Compression, body: &[u8]) -> Option<(Bytes, Packed)> {
    let packed = match coding {
        Compression::Gzip => gzip(body)?,
        #[cfg(feature = "compression-zstd")]
        Compression::Zstd => zstd::compress(body)?,
    };
    (packed.len() <= body.len() - body.len() / 8).then(|| {
        let len = body.len() as u64;
        (Bytes::from(packed), Packed { coding, len })
    })
}

#[cfg(feature = "compression")]
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// The bytes `data` was compressed from; `None` if it does not decompress
/// to exactly `packed.len` bytes.
pub(crate) fn unpack(data: &[u8], packed: Packed) -> Option<Bytes> {
    let expected = usize::try_from(packed.len).ok()?;
    let out = match packed.coding {
        Compression::Gzip => gunzip(data, packed.len)?,
        #[cfg(feature = "compression-zstd")]
        Compression::Zstd => zstd::decompress(data, expected)?,
    };
    (out.len() == expected).then(|| Bytes::from(out))
}

#[cfg(feature = "compression")]
fn gunzip(data: &[u8], len: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(usize::try_from(len).ok()?);
    let mut decoder = flate2::read::GzDecoder::new(data).take(len.saturating_add(1));
    decoder.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Without the feature nothing is stored compressed (the codec refuses
/// such records).
#[cfg(not(feature = "compression"))]
fn gunzip(_data: &[u8], _len: u64) -> Option<Vec<u8>> {
    None
}

/// zstd through a compression and a decompression context kept per thread
/// (creating a context costs about as much as decompressing 20 KB).
#[cfg(feature = "compression-zstd")]
mod zstd {
    use std::cell::RefCell;

    /// The level: on the JSON corpus of benches/RESULTS.md, level 1 is both
    /// faster and smaller than the default 3.
    const LEVEL: i32 = 1;

    thread_local! {
        static COMPRESSOR: RefCell<Option<::zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
        static DECOMPRESSOR: RefCell<Option<::zstd::bulk::Decompressor<'static>>> =
            const { RefCell::new(None) };
    }

    pub(super) fn compress(body: &[u8]) -> Option<Vec<u8>> {
        COMPRESSOR.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.is_none() {
                *slot = Some(::zstd::bulk::Compressor::new(LEVEL).ok()?);
            }
            slot.as_mut()?.compress(body).ok()
        })
    }

    /// Refuses (an error, not a bigger buffer) a frame that would
    /// decompress to more than `len` bytes.
    pub(super) fn decompress(data: &[u8], len: usize) -> Option<Vec<u8>> {
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.is_none() {
                *slot = Some(::zstd::bulk::Decompressor::new().ok()?);
            }
            slot.as_mut()?.decompress(data, len).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "compression")]
    #[test]
    fn compressible_media_types() {
        for yes in [
            "text/html",
            "application/json; charset=utf-8",
            "application/ld+json",
            "IMAGE/SVG+XML",
        ] {
            assert!(compressible(Some(yes)), "{yes}");
        }
        for no in [
            "image/png",
            "video/mp4",
            "application/octet-stream",
            "application/zip",
            "",
        ] {
            assert!(!compressible(Some(no)), "{no}");
        }
        assert!(!compressible(None));
    }

    #[cfg(feature = "compression")]
    fn compressions() -> Vec<Compression> {
        vec![
            Compression::Gzip,
            #[cfg(feature = "compression-zstd")]
            Compression::Zstd,
        ]
    }

    #[cfg(feature = "compression")]
    #[test]
    fn round_trips_and_refuses_what_does_not_pay_or_does_not_fit() {
        let json = br#"{"id":1,"name":"Ada","tags":["a","b","c"]}"#.repeat(100);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        for coding in compressions() {
            let (packed, meta) = pack(coding, &json).unwrap();
            assert_eq!(meta.coding, coding);
            assert!(packed.len() < json.len() / 4, "{coding:?}");
            assert_eq!(unpack(&packed, meta).unwrap(), json, "{coding:?}");
            let shorter = Packed {
                len: meta.len - 1,
                ..meta
            };
            let longer = Packed {
                len: meta.len + 1,
                ..meta
            };
            assert_eq!(unpack(&packed, shorter), None, "{coding:?}: too long");
            assert_eq!(unpack(&packed, longer), None, "{coding:?}: too short");
            assert_eq!(unpack(b"not compressed at all", meta), None);
            for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
                assert_eq!(unpack(&packed[..cut], meta), None, "{coding:?} cut {cut}");
            }
            assert!(pack(coding, &noise).is_none(), "{coding:?}: kept as is");
            assert_eq!(Compression::from_tag(coding.tag()), Some(coding));
        }
        assert_eq!(Compression::from_tag(0), None);
        assert_eq!(Compression::from_tag(3), None);
    }
}
