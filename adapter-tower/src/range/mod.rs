//! `Range` requests answered from a stored complete response (RFC 9110
//! §14): one byte range gets a 206 with `Content-Range`; a range past the
//! end gets a 416; anything else (several ranges, other units, garbage, an
//! `If-Range` that does not match) gets the whole 200, which a server may
//! always send instead.

use std::ops::Range;

use http::header::{self, HeaderMap};
use strata::chunks::ByteRange;

/// What to answer a request for part of a stored body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The whole body (no usable `Range`).
    Whole,
    /// 206 with these bytes.
    Part(Range<u64>),
    /// 416: the range selects nothing.
    Unsatisfiable,
}

/// Parses one `bytes=` range; `None` for anything else.
pub(crate) fn parse(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(number(last)?)),
        (false, true) => Some(ByteRange::From(number(first)?)),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(ByteRange::FromTo(first, last))
        }
        (true, true) => None,
    }
}

/// The answer to `request` for a stored 200 whose headers are `stored`
/// and body `len` bytes long.
pub(crate) fn answer(request: &HeaderMap, stored: &HeaderMap, len: u64) -> Answer {
    let Some(range) = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
    else {
        return Answer::Whole;
    };
    if let Some(if_range) = request.get(header::IF_RANGE) {
        // Strong comparison of entity tags; an exact date otherwise.
        let matches = if_range.to_str().ok().is_some_and(|cond| {
            let cond = cond.trim();
            if cond.starts_with('"') {
                stored
                    .get(header::ETAG)
                    .and_then(|e| e.to_str().ok())
                    .is_some_and(|e| e.trim() == cond)
            } else {
                stored
                    .get(header::LAST_MODIFIED)
                    .and_then(|m| m.to_str().ok())
                    .is_some_and(|m| m.trim() == cond)
            }
        });
        if !matches {
            return Answer::Whole;
        }
    }
    match range.resolve(len) {
        Ok(part) => Answer::Part(part),
        Err(_) => Answer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ask(range: &str, len: u64) -> Answer {
        let mut request = HeaderMap::new();
        request.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        answer(&request, &HeaderMap::new(), len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(ask("bytes=0-4", 10), Answer::Part(0..5));
        assert_eq!(ask("bytes=5-", 10), Answer::Part(5..10));
        assert_eq!(ask("bytes=-3", 10), Answer::Part(7..10));
        assert_eq!(ask("bytes=8-100", 10), Answer::Part(8..10));
        assert_eq!(ask("BYTES = 1-1", 10), Answer::Part(1..2));
        assert_eq!(ask("bytes=10-", 10), Answer::Unsatisfiable);
        assert_eq!(ask("bytes=-0", 10), Answer::Unsatisfiable);
    }

    #[test]
    fn everything_else_is_the_whole_body() {
        for odd in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=-",
            "bytes=a-b",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
        ] {
            assert!(
                matches!(ask(odd, 10), Answer::Whole | Answer::Unsatisfiable),
                "{odd}"
            );
        }
        assert_eq!(ask("bytes=0-1,3-4", 10), Answer::Whole);
    }

    #[test]
    fn if_range_must_match_strongly() {
        let mut request = HeaderMap::new();
        request.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        request.insert(header::IF_RANGE, HeaderValue::from_static("\"v1\""));
        let mut stored = HeaderMap::new();
        stored.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        assert_eq!(answer(&request, &stored, 10), Answer::Part(0..2));
        stored.insert(header::ETAG, HeaderValue::from_static("W/\"v1\""));
        assert_eq!(answer(&request, &stored, 10), Answer::Whole);
    }
}
