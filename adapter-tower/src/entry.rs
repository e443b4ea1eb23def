//! What the cache stores per resource: its responses, one per variant.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::StatusCode;

use crate::key::VaryKey;
use crate::policy::freshness::{self, Timing};
use crate::policy::Directives;

/// One stored response.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) timing: Timing,
    pub(crate) vary: VaryKey,
    pub(crate) directives: Directives,
    /// Freshness (seconds) the layer gives this response when it has none
    /// of its own, or always when `Cache-Control` is not respected.
    pub(crate) fallback: Option<u64>,
    /// `Cache-Control` is not respected: `fallback` decides.
    pub(crate) override_cc: bool,
    /// Computed once from the headers when stored (a hit parses nothing).
    pub(crate) initial_age: Option<u64>,
    /// Likewise: the freshness lifetime, for the layer's `shared` setting.
    pub(crate) lifetime: Option<u64>,
    /// `body` is compressed (feature `compression`): how, and from how
    /// many bytes.
    pub(crate) packed: Option<crate::compress::Packed>,
}

impl Stored {
    /// Fills in the derived fields from the others.
    pub(crate) fn derive(mut self, shared: bool) -> Self {
        self.initial_age = freshness::initial_age(&self.headers, self.timing);
        self.lifetime = if self.override_cc {
            self.fallback
        } else {
            freshness::freshness_lifetime(
                self.status,
                &self.headers,
                &self.directives,
                self.timing,
                shared,
            )
            .or(self.fallback)
        };
        self
    }

    pub(crate) fn age(&self, now: SystemTime) -> u64 {
        match self.initial_age {
            Some(initial) => freshness::resident_age(initial, self.timing, now),
            None => u64::MAX,
        }
    }

    pub(crate) fn lifetime(&self) -> Option<u64> {
        self.lifetime
    }

    /// The length of the body as the origin sent it.
    pub(crate) fn body_len(&self) -> u64 {
        self.packed
            .map_or(self.body.len() as u64, |packed| packed.len)
    }

    /// The body as the origin sent it (decompressed if it is stored
    /// compressed); `None` if it does not decompress.
    pub(crate) fn plain_body(&self) -> Option<Bytes> {
        match self.packed {
            None => Some(self.body.clone()),
            Some(packed) => crate::compress::unpack(&self.body, packed),
        }
    }

    pub(crate) fn has_validator(&self) -> bool {
        self.headers.contains_key(header::ETAG) || self.headers.contains_key(header::LAST_MODIFIED)
    }

    /// Bytes this response costs, roughly (the weigher's input).
    pub(crate) fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + 128
    }

    /// What a `200` answer to a `HEAD` of this response's target says about
    /// it (RFC 9111 §4.3.5): any validator or `Content-Length` the `HEAD`
    /// answer carries must match. It is the same response if its strong
    /// `ETag` or its `Last-Modified` matches, or, without either, its
    /// `Content-Length` does; a weak `ETag` alone proves nothing.
    pub(crate) fn compare_head(&self, head: &HeaderMap) -> HeadCheck {
        if self.status != StatusCode::OK {
            return HeadCheck::Changed;
        }
        let length = match single(head, &header::CONTENT_LENGTH) {
            Single::Absent => None,
            Single::One(value) => match value.parse::<u64>() {
                Ok(length) if length == self.body_len() => Some(length),
                Ok(_) => return HeadCheck::Changed,
                Err(_) => return HeadCheck::Unknown,
            },
            Single::Unclear => return HeadCheck::Unknown,
        };
        let mut same = false;
        let etag = single(head, &header::ETAG);
        match etag {
            Single::Absent => {}
            Single::One(theirs) => match single(&self.headers, &header::ETAG) {
                Single::One(ours) if ours == theirs => same |= !theirs.starts_with("W/"),
                _ => return HeadCheck::Changed,
            },
            Single::Unclear => return HeadCheck::Unknown,
        }
        let modified = single(head, &header::LAST_MODIFIED);
        match modified {
            Single::Absent => {}
            Single::One(theirs) => match single(&self.headers, &header::LAST_MODIFIED) {
                Single::One(ours) if same_date(ours, theirs) => same = true,
                _ => return HeadCheck::Changed,
            },
            Single::Unclear => return HeadCheck::Unknown,
        }
        let no_validator = matches!((etag, modified), (Single::Absent, Single::Absent));
        if same || (no_validator && length.is_some()) {
            HeadCheck::Same
        } else {
            HeadCheck::Unknown
        }
    }

    /// This response with its headers updated by a 304 (RFC 9111 §4.3.4),
    /// or by a `200` to a `HEAD` that [`compare_head`](Self::compare_head)
    /// found the same (§4.3.5).
    pub(crate) fn refreshed(
        &self,
        update: &HeaderMap,
        timing: Timing,
        targeted: &[HeaderName],
        token: Option<&str>,
        shared: bool,
    ) -> Self {
        let mut headers = self.headers.clone();
        let mut replaced: Vec<HeaderName> = Vec::new();
        for (name, value) in update {
            // RFC 9111 §3.2: these describe the stored representation and
            // are not taken from an update.
            let kept = matches!(
                name.as_str(),
                "content-length" | "content-encoding" | "content-md5" | "content-range" | "etag"
            );
            if kept || is_hop_by_hop(name) || name == header::SET_COOKIE {
                continue;
            }
            if !replaced.contains(name) {
                headers.remove(name);
                replaced.push(name.clone());
            }
            headers.append(name.clone(), value.clone());
        }
        if !update.contains_key(header::AGE) {
            // The update arrived now with no age of its own: the stored
            // response, just validated, is as old as the update is.
            headers.remove(header::AGE);
        }
        let directives = Directives::for_response(&headers, targeted, token);
        Self {
            status: self.status,
            headers,
            body: self.body.clone(),
            timing,
            vary: self.vary.clone(),
            directives,
            fallback: self.fallback,
            override_cc: self.override_cc,
            initial_age: None,
            lifetime: None,
            packed: self.packed,
        }
        .derive(shared)
    }
}

/// What a `HEAD` answer says about a stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadCheck {
    /// The same representation: update the stored headers from it.
    Same,
    /// Another representation: the stored response is outdated.
    Changed,
    /// Nothing to compare with certainty: leave the stored response.
    Unknown,
}

/// A field that must occur once.
#[derive(Clone, Copy, Debug)]
enum Single<'a> {
    Absent,
    /// Its one value, trimmed.
    One(&'a str),
    /// Repeated, empty, or not visible ASCII.
    Unclear,
}

fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Single<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Single::Absent,
        (Some(value), None) => match value.to_str().map(str::trim) {
            Ok(text) if !text.is_empty() => Single::One(text),
            _ => Single::Unclear,
        },
        (Some(_), Some(_)) => Single::Unclear,
    }
}

/// Two `Last-Modified` values name the same instant (as written, or as
/// dates when their formats differ).
fn same_date(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (httpdate::parse_http_date(a), httpdate::parse_http_date(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// The responses stored for one resource (primary key), newest first;
/// cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub(crate) struct Variants(Arc<Vec<Arc<Stored>>>);

impl Variants {
    pub(crate) fn from_list(list: Vec<Arc<Stored>>) -> Self {
        Self(Arc::new(list))
    }
}

impl std::ops::Deref for Variants {
    type Target = [Arc<Stored>];

    fn deref(&self) -> &[Arc<Stored>] {
        &self.0
    }
}

/// The most variants kept per resource.
pub(crate) const MAX_VARIANTS: usize = 8;

/// `variants` with `new` in front and any older response for the same
/// secondary key dropped.
pub(crate) fn with_variant(variants: Option<&Variants>, new: Arc<Stored>) -> Variants {
    let mut list = Vec::with_capacity(variants.map_or(1, |v| v.len() + 1));
    if let Some(old) = variants {
        list.extend(old.iter().filter(|s| s.vary != new.vary).cloned());
    }
    list.insert(0, new);
    list.truncate(MAX_VARIANTS);
    Variants::from_list(list)
}

/// `variants` without the response for the secondary key `vary`; `None`
/// when none is left.
pub(crate) fn without_variant(variants: &Variants, vary: &VaryKey) -> Option<Variants> {
    let rest: Vec<Arc<Stored>> = variants
        .iter()
        .filter(|s| s.vary != *vary)
        .cloned()
        .collect();
    (!rest.is_empty()).then(|| Variants::from_list(rest))
}

/// Headers that describe one connection, never stored (RFC 9110 §7.6.1).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The response headers to store: without hop-by-hop fields, the fields
/// `Connection` names, and `Set-Cookie` (never replayed to another client);
/// with an allowlist, only its fields (and the ones caching needs).
pub(crate) fn storable_headers(
    headers: &HeaderMap,
    allowlist: Option<&[HeaderName]>,
    omit: &[String],
) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    let essential = [
        header::CACHE_CONTROL,
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::VARY,
        header::AGE,
    ];
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_hop_by_hop(name)
            || named.iter().any(|n| n == name.as_str())
            || omit.iter().any(|n| n == name.as_str())
            || name == header::SET_COOKIE
            || name.as_str() == "set-cookie2"
        {
            continue;
        }
        if let Some(allowed) = allowlist {
            if !allowed.contains(name) && !essential.contains(name) {
                continue;
            }
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}
