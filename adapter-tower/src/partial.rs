//! Partial objects (RFC 9111 §3.3, §3.4): `206` responses kept in the
//! engine's [`ChunkStore`], so that a range request is answered from the
//! chunks that are present and only the missing chunks are fetched from
//! upstream.
//!
//! ```text
//!   GET Range: bytes=A-B, nothing stored ──► upstream ──► 206 bytes a-b/len
//!        store the head (header fields, freshness) and every whole chunk in a..=b
//!   GET Range: bytes=C-D, head fresh ──► chunks present? ──► 206 from the store
//!        some missing ──► upstream Range: the missing chunks, If-Range: ETag
//!             206 for exactly that span, same ETag ──► store, answer from both
//!             anything else (a 200: the object changed) ──► forget the object
//! ```
//!
//! Chunks are fixed-size and aligned, so a stored 206 keeps only the whole
//! chunks it covers (and the object's short last chunk when it reaches the
//! end); pieces of two versions are never combined (chunk keys carry the
//! version: the strong `ETag`, or nothing when there is none, in which case
//! missing chunks are fetched without `If-Range` and their `ETag` must be
//! absent too). Responses that vary (`Vary`) are not kept in part.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use strata::chunks::{ByteRange, ChunkStore, RangeError};
use strata::{Cache, ConfigError};

use crate::body::{BoxError, CacheBody};
use crate::entry::Stored;
use crate::layer::Shared;
use crate::policy::Directives;
use crate::range;

/// The default chunk size of partial objects: 64 KiB.
pub(crate) const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;

/// The most bytes one fill from upstream asks for (it is collected in
/// memory before it is stored and served).
pub(crate) const MAX_FILL: u64 = 16 << 20;

pub(crate) struct Partials {
    chunks: ChunkStore<String>,
    /// The header fields and freshness of each object (an empty body).
    heads: Cache<String, Arc<Stored>>,
}

/// What the store can do for a range request.
pub(crate) enum Plan {
    /// Nothing usable is stored.
    Absent,
    /// The range selects nothing in an object of this length.
    Unsatisfiable(u64),
    /// Every byte is here: `(range, bytes, total length)`.
    Complete(Range<u64>, Bytes, u64),
    /// Some chunks are missing: ask upstream for `fetch` (chunk-aligned,
    /// covering every missing byte of `range`).
    Fill {
        range: Range<u64>,
        fetch: Range<u64>,
        len: u64,
        version: Arc<str>,
    },
}

impl Partials {
    pub(crate) fn new(capacity: u64, chunk_size: u32) -> Result<Self, ConfigError> {
        Ok(Self {
            chunks: ChunkStore::new(capacity, chunk_size)?,
            heads: Cache::builder().max_capacity(64 << 10).build()?,
        })
    }

    pub(crate) fn head(&self, key: &str) -> Option<Arc<Stored>> {
        self.heads.get(key)
    }

    pub(crate) fn remove(&self, key: &str) {
        self.heads.remove(key);
    }

    /// The chunk store's counters (metadata and chunks are its entries).
    #[cfg(feature = "admin")]
    pub(crate) fn stats(&self) -> strata::Stats {
        self.chunks.cache().stats()
    }

    /// Forgets the objects whose key `keep` refuses.
    pub(crate) fn retain_heads(&self, mut keep: impl FnMut(&str) -> bool) {
        self.heads.retain(|key, _| keep(key));
    }

    pub(crate) fn clear(&self) {
        self.heads.clear();
        self.chunks.cache().clear();
    }

    /// How to answer `range` of the object `key` (whose head the caller
    /// found fresh).
    pub(crate) fn plan(&self, key: &String, range: ByteRange) -> Plan {
        let read = match self.chunks.read_range(key, range) {
            Ok(read) => read,
            Err(RangeError::Unsatisfiable { len }) => return Plan::Unsatisfiable(len),
            Err(_) => return Plan::Absent,
        };
        if read.is_complete() {
            let bytes = read.to_bytes().unwrap_or_default();
            return Plan::Complete(read.range, bytes, read.meta.len);
        }
        let size = u64::from(self.chunks.chunk_size());
        let (Some(first), Some(last)) = (read.missing.first(), read.missing.last()) else {
            return Plan::Absent;
        };
        let start = first.start / size * size;
        let end = last
            .end
            .div_ceil(size)
            .saturating_mul(size)
            .min(read.meta.len);
        if end - start > MAX_FILL {
            return Plan::Absent;
        }
        Plan::Fill {
            range: read.range,
            fetch: start..end,
            len: read.meta.len,
            version: read.meta.version,
        }
    }

    /// Keeps a 206 for `range` of an object of `len` bytes: its head (when
    /// given: a new or updated object) and every whole chunk the body
    /// covers. Returns whether anything was kept.
    pub(crate) fn store(
        &self,
        key: &String,
        head: Option<Stored>,
        version: &str,
        range: Range<u64>,
        len: u64,
        body: &Bytes,
    ) -> bool {
        if body.len() as u64 != range.end - range.start || range.end > len {
            return false;
        }
        let current = self
            .chunks
            .meta(key)
            .is_some_and(|meta| meta.len == len && &*meta.version == version);
        if !current && self.chunks.put_meta(key, len, version).is_err() {
            return false;
        }
        if let Some(head) = head {
            let _ = self.heads.insert(key.clone(), Arc::new(head));
        }
        let size = u64::from(self.chunks.chunk_size());
        let mut index = range.start.div_ceil(size);
        let mut kept = false;
        loop {
            let start = index * size;
            let end = (start + size).min(len);
            if start >= range.end || end > range.end {
                break;
            }
            let slice = body.slice((start - range.start) as usize..(end - range.start) as usize);
            kept |= self.chunks.put_chunk(key, version, index, slice).is_ok();
            index += 1;
        }
        kept
    }

    /// `range` of the object, from the store and `fetched` (all the bytes
    /// of `fetch`, which the caller checked), if together they cover it.
    pub(crate) fn assemble(
        &self,
        key: &String,
        range: &Range<u64>,
        fetch: &Range<u64>,
        fetched: &Bytes,
    ) -> Option<Bytes> {
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        let mut at = range.start;
        while at < range.end {
            if fetch.contains(&at) {
                let to = range.end.min(fetch.end);
                out.extend_from_slice(
                    &fetched[(at - fetch.start) as usize..(to - fetch.start) as usize],
                );
                at = to;
                continue;
            }
            let to = if fetch.start > at {
                range.end.min(fetch.start)
            } else {
                range.end
            };
            let read = self
                .chunks
                .read_range(key, ByteRange::FromTo(at, to - 1))
                .ok()?;
            out.extend_from_slice(&read.to_bytes()?);
            at = to;
        }
        Some(out.freeze())
    }
}

/// What a range request gets from the partial store.
pub(crate) enum Lookup<B> {
    /// An answer made here (a 206 or a 416).
    Answer(Response<CacheBody<B>>),
    /// Some chunks must come from upstream first.
    Fill(Fill),
}

/// A fill of missing chunks in progress.
pub(crate) struct Fill {
    range: Range<u64>,
    fetch: Range<u64>,
    len: u64,
    version: Arc<str>,
    head: Arc<Stored>,
}

/// The partial store's answer to a GET of `key` with `request`'s single
/// `Range` (and no `If-Range`), if it holds a fresh head for it.
pub(crate) fn lookup<B>(
    shared: &Shared,
    key: &String,
    request: &HeaderMap,
    directives: &Directives,
    now: SystemTime,
) -> Option<Lookup<B>> {
    let partials = shared.partials.as_ref()?;
    if request.contains_key(header::IF_RANGE) {
        return None;
    }
    let range = request
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(range::parse)?;
    let head = partials.head(key)?;
    let age = head.age(now);
    let fresh = head.lifetime().is_some_and(|lifetime| age < lifetime)
        && !(shared.config.respect_cache_control && head.directives.no_cache)
        && directives.max_age.is_none_or(|max| age <= max);
    if !fresh {
        return None;
    }
    match partials.plan(key, range) {
        Plan::Absent => None,
        Plan::Unsatisfiable(len) => {
            let mut response = respond(&head, age, "hit", CacheBody::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            Some(Lookup::Answer(response))
        }
        Plan::Complete(range, bytes, len) => {
            Some(Lookup::Answer(part(&head, age, &range, bytes, len, "hit")))
        }
        Plan::Fill {
            range,
            fetch,
            len,
            version,
        } => Some(Lookup::Fill(Fill {
            range,
            fetch,
            len,
            version,
            head,
        })),
    }
}

impl Fill {
    /// Turns the request into one for the missing chunks of this version.
    pub(crate) fn prepare(&self, request: &mut HeaderMap) {
        set(
            request,
            header::RANGE,
            &format!("bytes={}-{}", self.fetch.start, self.fetch.end - 1),
        );
        if !self.version.is_empty() {
            set(request, header::IF_RANGE, &self.version);
        }
        request.remove(header::IF_NONE_MATCH);
        request.remove(header::IF_MODIFIED_SINCE);
    }

    /// Stores upstream's answer if it is exactly the chunks asked for, of
    /// the same version, and answers the client's range from the store and
    /// it. Anything else (a 200: the object changed) forgets the object
    /// and comes back for the usual handling.
    pub(crate) async fn complete<B>(
        self,
        shared: &Shared,
        key: &String,
        response: Response<B>,
    ) -> Result<Response<CacheBody<B>>, Response<B>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let Some(partials) = shared.partials.as_ref() else {
            return Err(response);
        };
        let exact = response.status() == StatusCode::PARTIAL_CONTENT
            && content_range(response.headers()) == Some((self.fetch.clone(), self.len))
            && version(response.headers()).as_deref() == Some(&*self.version);
        if !exact {
            partials.remove(key);
            return Err(response);
        }
        let limit = usize::try_from(self.fetch.end - self.fetch.start).unwrap_or(usize::MAX);
        let Ok(collected) = Limited::new(response.into_body(), limit).collect().await else {
            return Ok(failure(
                StatusCode::BAD_GATEWAY,
                "fwd=partial; detail=upstream-body",
            ));
        };
        let fetched = collected.to_bytes();
        if fetched.len() as u64 != self.fetch.end - self.fetch.start {
            // Fewer bytes than its Content-Range said: none of it is
            // trusted (and `assemble` needs the whole span).
            partials.remove(key);
            return Ok(failure(
                StatusCode::BAD_GATEWAY,
                "fwd=partial; detail=short-body",
            ));
        }
        partials.store(
            key,
            None,
            &self.version,
            self.fetch.clone(),
            self.len,
            &fetched,
        );
        let age = self.head.age(SystemTime::now());
        match partials.assemble(key, &self.range, &self.fetch, &fetched) {
            Some(bytes) => Ok(part(
                &self.head,
                age,
                &self.range,
                bytes,
                self.len,
                "fwd=partial; stored",
            )),
            None => {
                // Chunks evicted meanwhile: answer from what was fetched
                // when it covers the range.
                let inside =
                    self.fetch.start <= self.range.start && self.range.end <= self.fetch.end;
                if !inside {
                    return Ok(failure(StatusCode::SERVICE_UNAVAILABLE, "fwd=partial"));
                }
                let from = (self.range.start - self.fetch.start) as usize;
                let to = (self.range.end - self.fetch.start) as usize;
                Ok(part(
                    &self.head,
                    age,
                    &self.range,
                    fetched.slice(from..to),
                    self.len,
                    "fwd=partial",
                ))
            }
        }
    }
}

/// A 206 for `range` of a `len`-byte object.
fn part<B>(
    head: &Stored,
    age: u64,
    range: &Range<u64>,
    bytes: Bytes,
    len: u64,
    detail: &str,
) -> Response<CacheBody<B>> {
    let size = bytes.len();
    let mut response = respond(head, age, detail, CacheBody::full(bytes));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    set(
        response.headers_mut(),
        header::CONTENT_RANGE,
        &format!("bytes {}-{}/{len}", range.start, range.end - 1),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    response
}

fn respond<B>(head: &Stored, age: u64, detail: &str, body: CacheBody<B>) -> Response<CacheBody<B>> {
    let mut response = Response::new(body);
    *response.headers_mut() = head.headers.clone();
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(age));
    crate::service::set_cache_status(response.headers_mut(), detail);
    response
}

/// An error answer made here (no upstream fields).
fn failure<B>(status: StatusCode, detail: &str) -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::empty());
    *response.status_mut() = status;
    crate::service::set_cache_status(response.headers_mut(), detail);
    response
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The strong `ETag` of `headers`, or "" when there is none; `None` for a
/// weak one (which never lets pieces be combined).
pub(crate) fn version(headers: &HeaderMap) -> Option<String> {
    match headers.get(header::ETAG).map(|v| v.to_str().map(str::trim)) {
        None => Some(String::new()),
        Some(Ok(tag)) if tag.starts_with('"') => Some(tag.to_owned()),
        Some(_) => None,
    }
}

/// `Content-Range: bytes first-last/len` of a 206: the byte offsets and the
/// complete length (an unknown length, `*`, or anything else: `None`).
pub(crate) fn content_range(headers: &HeaderMap) -> Option<(Range<u64>, u64)> {
    let mut values = headers.get_all(header::CONTENT_RANGE).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, len) = rest.split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last, len) = (number(first)?, number(last)?, number(len)?);
    (first <= last && last < len).then_some((first..last + 1, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn range_of(value: &str) -> Option<(Range<u64>, u64)> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(value).unwrap());
        content_range(&headers)
    }

    #[test]
    fn content_ranges_are_read_strictly() {
        assert_eq!(range_of("bytes 0-4/10"), Some((0..5, 10)));
        assert_eq!(range_of(" bytes 9-9/10 "), Some((9..10, 10)));
        for bad in [
            "bytes 0-4/*",
            "bytes */10",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "items 0-4/10",
            "bytes 0-4",
            "bytes a-b/c",
            "bytes 0-99999999999999999999/99999999999999999999",
        ] {
            assert_eq!(range_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn stores_whole_chunks_and_plans_aligned_fills() {
        let partials = Partials::new(1 << 20, 4).unwrap();
        let key = "k".to_owned();
        let body = Bytes::from_static(b"0123456789");
        // Bytes 2..9 of a 10-byte object: only chunk 1 (4..8) is whole.
        assert!(partials.store(&key, None, "\"v\"", 2..9, 10, &body.slice(2..9)));
        match partials.plan(&key, ByteRange::FromTo(4, 7)) {
            Plan::Complete(range, bytes, len) => {
                assert_eq!((range, &bytes[..], len), (4..8, &b"4567"[..], 10));
            }
            _ => panic!("chunk 1 is stored"),
        }
        match partials.plan(&key, ByteRange::FromTo(3, 8)) {
            Plan::Fill {
                range, fetch, len, ..
            } => {
                assert_eq!((range, fetch, len), (3..9, 0..10, 10));
            }
            _ => panic!("chunks 0 and 2 are missing"),
        }
        assert!(matches!(
            partials.plan(&key, ByteRange::From(10)),
            Plan::Unsatisfiable(10)
        ));
        let filled = partials
            .assemble(&key, &(3..9), &(0..4), &body.slice(0..4))
            .is_none();
        assert!(filled, "chunk 2 is still missing");
        assert!(partials.store(&key, None, "\"v\"", 8..10, 10, &body.slice(8..10)));
        let joined = partials
            .assemble(&key, &(3..9), &(0..4), &body.slice(0..4))
            .unwrap();
        assert_eq!(&joined[..], b"345678");
        // A body that does not match its range is refused.
        assert!(!partials.store(&key, None, "\"v\"", 0..4, 10, &body.slice(0..3)));
    }
}
