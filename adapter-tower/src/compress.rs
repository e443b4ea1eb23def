//! Compression of stored bodies (feature `compression`): a storable body of
//! a compressible media type, at least `compress_above` bytes long and not
//! already encoded, is kept gzip-compressed (when that saves at least an
//! eighth), so that the same memory holds more responses. A hit goes out
//! compressed as it is stored when the client takes gzip and the response
//! varies on `Accept-Encoding`; otherwise it is decompressed, so clients
//! always get a representation they asked for.

use bytes::Bytes;

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

/// `body` gzip-compressed, if that saves at least an eighth.
#[cfg(feature = "compression")]
pub(crate) fn gzip(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() <= body.len() - body.len() / 8).then(|| Bytes::from(packed))
}

/// The `len` bytes `data` was compressed from; `None` if it does not
/// decompress to exactly that many.
#[cfg(feature = "compression")]
pub(crate) fn gunzip(data: &[u8], len: u64) -> Option<Bytes> {
    use std::io::Read;
    let expected = usize::try_from(len).ok()?;
    let mut out = Vec::with_capacity(expected);
    let mut decoder = flate2::read::GzDecoder::new(data).take(len.saturating_add(1));
    decoder.read_to_end(&mut out).ok()?;
    (out.len() == expected).then(|| Bytes::from(out))
}

/// Without the feature nothing is ever stored compressed.
#[cfg(not(feature = "compression"))]
pub(crate) fn gunzip(_data: &[u8], _len: u64) -> Option<Bytes> {
    None
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
    #[test]
    fn round_trips_and_refuses_what_does_not_pay_or_does_not_fit() {
        let json = br#"{"id":1,"name":"Ada","tags":["a","b","c"]}"#.repeat(100);
        let packed = gzip(&json).unwrap();
        assert!(packed.len() < json.len() / 4);
        assert_eq!(gunzip(&packed, json.len() as u64).unwrap(), json);
        assert_eq!(gunzip(&packed, json.len() as u64 - 1), None, "too long");
        assert_eq!(gunzip(&packed, json.len() as u64 + 1), None, "too short");
        assert_eq!(gunzip(b"not gzip at all", 10), None);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        assert!(gzip(&noise).is_none(), "incompressible data is kept as is");
    }
}
