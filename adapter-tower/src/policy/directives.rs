//! `Cache-Control` (and `Pragma`) parsing: tolerant of case, spacing,
//! quoting, repeated and unknown directives, and of garbage, which is
//! ignored rather than rejected (RFC 9111 §4.2.1, §5.2).

use http::header::{HeaderMap, CACHE_CONTROL, PRAGMA};

/// The directives of one message that the cache acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `max-age=N` (seconds).
    pub max_age: Option<u64>,
    /// `s-maxage=N` (seconds).
    pub s_maxage: Option<u64>,
    /// `max-stale` (`Some(u64::MAX)` without a value).
    pub max_stale: Option<u64>,
    /// `min-fresh=N`.
    pub min_fresh: Option<u64>,
    /// `no-cache` without field names: every reuse is revalidated.
    pub no_cache: bool,
    /// `no-cache="a, b"`: these fields are not stored (the rest may be
    /// reused without revalidation).
    pub no_cache_fields: Vec<String>,
    /// `private="a, b"`: a shared cache does not store these fields.
    pub private_fields: Vec<String>,
    /// `no-store`.
    pub no_store: bool,
    /// `private` without field names.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `stale-while-revalidate=N` (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `must-understand`.
    pub must_understand: bool,
}

/// Delta-seconds: digits only; values past 2^31 saturate there, as RFC
/// 9111 §1.2.2 asks; anything else is invalid (`None`).
fn delta_seconds(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('"');
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

impl Directives {
    /// The directives of `headers`' `Cache-Control` fields (all of them,
    /// comma-joined); with `request`, a `Pragma: no-cache` counts as
    /// `no-cache` when there is no `Cache-Control` (RFC 9111 §5.4).
    pub fn from_headers(headers: &HeaderMap, request: bool) -> Self {
        Self::from_field(headers, &CACHE_CONTROL, request)
    }

    /// The directives of a response for a cache that obeys the targeted
    /// fields `targeted` (e.g. `CDN-Cache-Control`, RFC 9213, or
    /// `Surrogate-Control`): the first of them present replaces
    /// `Cache-Control`.
    pub fn for_response(
        headers: &HeaderMap,
        targeted: &[http::header::HeaderName],
        token: Option<&str>,
    ) -> Self {
        for name in targeted {
            if !headers.contains_key(name) {
                continue;
            }
            if name.as_str() != "surrogate-control" {
                return Self::from_field(headers, name, false);
            }
            // Surrogate-Control directives may end in `;device-token`:
            // those apply only to the surrogate with that token.
            let mut d = Self::default();
            for value in headers.get_all(name) {
                let Ok(text) = value.to_str() else { continue };
                let mine: Vec<&str> = split_directives(text)
                    .filter_map(|part| match part.rsplit_once(';') {
                        Some((directive, target)) => {
                            (Some(target.trim()) == token).then_some(directive)
                        }
                        None => Some(part),
                    })
                    .collect();
                d.parse(&mine.join(","));
            }
            return d;
        }
        Self::from_headers(headers, false)
    }

    fn from_field(headers: &HeaderMap, field: &http::header::HeaderName, request: bool) -> Self {
        let mut d = Self::default();
        let mut any = false;
        for value in headers.get_all(field) {
            // Fields that are not visible ASCII are ignored, not errors.
            let Ok(text) = value.to_str() else { continue };
            any = true;
            d.parse(text);
        }
        if request && !any {
            let pragma_no_cache = headers.get_all(PRAGMA).iter().any(|v| {
                v.to_str().is_ok_and(|t| {
                    t.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
                })
            });
            d.no_cache |= pragma_no_cache;
        }
        d
    }

    fn parse(&mut self, text: &str) {
        for part in split_directives(text) {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part.trim(), None),
            };
            let name = name.to_ascii_lowercase();
            // A directive given twice with conflicting values: the most
            // restrictive reading wins (the smaller age).
            let min = |old: Option<u64>, new: Option<u64>| match (old, new) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match name.as_str() {
                "max-age" => match value.and_then(delta_seconds) {
                    Some(v) => self.max_age = min(self.max_age, Some(v)),
                    // An invalid max-age makes the response stale (§4.2.1).
                    None => self.max_age = Some(0),
                },
                "s-maxage" => match value.and_then(delta_seconds) {
                    Some(v) => self.s_maxage = min(self.s_maxage, Some(v)),
                    None => self.s_maxage = Some(0),
                },
                "max-stale" => {
                    self.max_stale = Some(value.and_then(delta_seconds).unwrap_or(u64::MAX));
                }
                "min-fresh" => self.min_fresh = value.and_then(delta_seconds),
                "no-cache" => match field_names(value) {
                    Some(fields) => self.no_cache_fields.extend(fields),
                    None => self.no_cache = true,
                },
                "no-store" => self.no_store = true,
                "private" => match field_names(value) {
                    Some(fields) => self.private_fields.extend(fields),
                    None => self.private = true,
                },
                "public" => self.public = true,
                "must-revalidate" => self.must_revalidate = true,
                "proxy-revalidate" => self.proxy_revalidate = true,
                "only-if-cached" => self.only_if_cached = true,
                "no-transform" => self.no_transform = true,
                "must-understand" => self.must_understand = true,
                "stale-while-revalidate" => {
                    self.stale_while_revalidate = value.and_then(delta_seconds);
                }
                "stale-if-error" => self.stale_if_error = value.and_then(delta_seconds),
                _ => {}
            }
        }
    }
}

/// The field names of a qualified `no-cache` or `private`, lower-cased;
/// `None` when there are none (the unqualified directive).
fn field_names(value: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = value?
        .trim()
        .trim_matches('"')
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Splits a `Cache-Control` value at commas outside quoted strings.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(values: &[&str]) -> Directives {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        Directives::from_headers(&headers, false)
    }

    #[test]
    fn tolerant_parsing() {
        let d = parse(&["Max-Age = 60, PUBLIC", "s-maxage=\"30\", no-cache=\"a, b\""]);
        assert_eq!(
            (d.max_age, d.s_maxage, d.public, d.no_cache),
            (Some(60), Some(30), true, false)
        );
        assert_eq!(d.no_cache_fields, ["a", "b"], "qualified no-cache");
        assert!(parse(&["No-Cache"]).no_cache);
        let d = parse(&["max-age=abc"]);
        assert_eq!(d.max_age, Some(0), "invalid means stale");
        let d = parse(&["max-age=99999999999999999999999"]);
        assert_eq!(d.max_age, Some(1 << 31));
        let d = parse(&["max-age=10, max-age=5"]);
        assert_eq!(d.max_age, Some(5));
        let d = parse(&[",,, ,garbage;;=, =, max-stale"]);
        assert_eq!(d.max_stale, Some(u64::MAX));
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let mut headers = HeaderMap::new();
        headers.insert(PRAGMA, HeaderValue::from_static("No-Cache"));
        assert!(Directives::from_headers(&headers, true).no_cache);
        assert!(!Directives::from_headers(&headers, false).no_cache);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        assert!(!Directives::from_headers(&headers, true).no_cache);
    }
}
