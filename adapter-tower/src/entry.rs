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

    /// This response with its headers updated by a 304 (RFC 9111 §4.3.4).
    pub(crate) fn refreshed(
        &self,
        not_modified: &HeaderMap,
        timing: Timing,
        targeted: &[HeaderName],
        token: Option<&str>,
        shared: bool,
    ) -> Self {
        let mut headers = self.headers.clone();
        let mut replaced: Vec<HeaderName> = Vec::new();
        for (name, value) in not_modified {
            // RFC 9111 §3.2: these describe the stored representation and
            // are not taken from a 304.
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
        }
        .derive(shared)
    }
}

/// The responses stored for one resource (primary key), newest first.
pub(crate) type Variants = Arc<Vec<Arc<Stored>>>;

/// The most variants kept per resource.
pub(crate) const MAX_VARIANTS: usize = 8;

/// `variants` with `new` in front and any older response for the same
/// secondary key dropped.
pub(crate) fn with_variant(variants: Option<&Variants>, new: Stored) -> Variants {
    let vary = new.vary.clone();
    let mut list = vec![Arc::new(new)];
    if let Some(old) = variants {
        list.extend(old.iter().filter(|s| s.vary != vary).cloned());
    }
    list.truncate(MAX_VARIANTS);
    Arc::new(list)
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
