//! Cache keys: the primary key names a resource (authority and target),
//! the secondary key (from `Vary`) picks one of its stored responses.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HOST, VARY};
use http::{Request, Uri};

/// A custom key function (see [`KeyExtractor::Custom`]).
pub type KeyFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// How the layer names a resource. The authority (`Host`) is always part
/// of the key, so two virtual hosts never share entries.
#[derive(Clone, Default)]
pub enum KeyExtractor {
    /// Path and query (the default): `/a?x=1` and `/a?x=2` differ.
    #[default]
    PathAndQuery,
    /// The path only: the query is ignored.
    Path,
    /// A function of the request's method, URI and headers; return `None`
    /// to not cache the request at all.
    Custom(KeyFn),
}

impl fmt::Debug for KeyExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PathAndQuery => f.write_str("PathAndQuery"),
            Self::Path => f.write_str("Path"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl KeyExtractor {
    /// A key from a closure (see [`KeyExtractor::Custom`]).
    pub fn custom(
        f: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// The primary key of `request` (authority, then the extractor's part),
    /// or `None` when a custom extractor bypasses the cache for it.
    pub fn key<B>(&self, request: &Request<B>) -> Option<String> {
        let target = match self {
            Self::PathAndQuery => request.uri().path_and_query().map_or("/", |p| p.as_str()),
            Self::Path => request.uri().path(),
            Self::Custom(_) => "",
        };
        if !matches!(self, Self::Custom(_)) {
            // One allocation: the lower-cased authority, then the target.
            let raw = raw_authority(request.uri(), request.headers());
            let raw = raw.trim();
            let mut key = String::with_capacity(raw.len() + target.len());
            key.extend(raw.chars().map(|c| c.to_ascii_lowercase()));
            key.push_str(target);
            return Some(key);
        }
        let authority = authority(request.uri(), request.headers());
        match self {
            Self::PathAndQuery | Self::Path => None,
            Self::Custom(f) => {
                // The closure sees the parts without the body.
                let mut parts = Request::new(()).into_parts().0;
                parts.method = request.method().clone();
                parts.uri = request.uri().clone();
                parts.version = request.version();
                parts.headers = request.headers().clone();
                f(&parts).map(|k| format!("{authority}{k}"))
            }
        }
    }

    /// The key `uri` would have on `authority` (for invalidation of
    /// `Location` and `Content-Location`), with the default extractors.
    pub(crate) fn key_of_uri(&self, authority: &str, uri: &Uri) -> Option<String> {
        match self {
            Self::PathAndQuery => Some(format!(
                "{authority}{}",
                uri.path_and_query().map_or("/", |p| p.as_str())
            )),
            Self::Path => Some(format!("{authority}{}", uri.path())),
            Self::Custom(_) => None,
        }
    }
}

/// The lower-cased authority of a request: the URI's, else `Host`.
pub(crate) fn authority(uri: &Uri, headers: &HeaderMap) -> String {
    raw_authority(uri, headers).trim().to_ascii_lowercase()
}

fn raw_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default()
}

/// The request header values a response varies on, normalised: the
/// field's values joined with ", " and runs of whitespace collapsed, so
/// that `a,b` and `a, b` select the same variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VaryKey(Vec<(HeaderName, Option<String>)>);

impl VaryKey {
    /// The fields named by `response`'s `Vary` with `request`'s values.
    pub(crate) fn new(response: &HeaderMap, request: &HeaderMap) -> Self {
        let mut names: Vec<HeaderName> = Vec::new();
        for value in response.get_all(VARY) {
            let Ok(text) = value.to_str() else { continue };
            for field in text.split(',') {
                if let Ok(name) = HeaderName::from_bytes(field.trim().as_bytes()) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Self(
            names
                .into_iter()
                .map(|name| {
                    let value = normalised(request, &name);
                    (name, value)
                })
                .collect(),
        )
    }

    /// Whether `request` carries the same values for these fields.
    pub(crate) fn matches(&self, request: &HeaderMap) -> bool {
        self.0
            .iter()
            .all(|(name, value)| normalised(request, name) == *value)
    }
}

fn normalised(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let joined: Vec<String> = values
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    Some(joined.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_include_the_authority() {
        let a = Request::get("/x?y=1")
            .header(HOST, "A.example")
            .body(())
            .unwrap();
        let b = Request::get("/x?y=1")
            .header(HOST, "b.example")
            .body(())
            .unwrap();
        let k = KeyExtractor::default();
        assert_eq!(k.key(&a).unwrap(), "a.example/x?y=1");
        assert_ne!(k.key(&a), k.key(&b));
        assert_eq!(KeyExtractor::Path.key(&a).unwrap(), "a.example/x");
    }

    #[test]
    fn vary_values_are_normalised() {
        let mut response = HeaderMap::new();
        response.insert(VARY, HeaderValue::from_static("Accept-Encoding, foo"));
        let mut r1 = HeaderMap::new();
        r1.insert("accept-encoding", HeaderValue::from_static("gzip,  br"));
        let key = VaryKey::new(&response, &r1);
        let mut r2 = HeaderMap::new();
        r2.append("accept-encoding", HeaderValue::from_static("gzip"));
        r2.append("accept-encoding", HeaderValue::from_static("br"));
        assert!(key.matches(&r2));
        r2.insert("foo", HeaderValue::from_static("1"));
        assert!(!key.matches(&r2), "a field absent then present differs");
    }
}
