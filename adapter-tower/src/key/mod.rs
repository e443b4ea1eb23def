//! Cache keys: the primary key names a resource (authority and target),
//! the secondary key (from `Vary`) picks one of its stored responses.

use std::fmt;
use std::sync::Arc;

use http::header::{
    GetAll, HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, ACCEPT_LANGUAGE, CONTENT_LANGUAGE,
    HOST, VARY,
};
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

/// The request header values a response varies on, normalised so that
/// values meaning the same select the same variant: a field's lines and
/// list members are joined with ", " and runs of whitespace collapsed
/// (`a,b` and `a, b` match); `Accept-Language` and `Accept-Encoding` are
/// compared as preference lists (see [`preferences`]).
///
/// A response varying on `Accept-Language` that names its
/// `Content-Language` also serves any request whose most preferred
/// language is that one.
#[derive(Clone, Debug)]
pub(crate) struct VaryKey {
    fields: Vec<(HeaderName, Option<String>)>,
    /// The response's `Content-Language`, lower-cased, when it varies on
    /// `Accept-Language` and names a single language.
    language: Option<Box<str>>,
    /// Per field, the request's value as it came when it was one line: a
    /// request with the same line matches without normalising it (clients
    /// of one kind send identical lines). Not encoded; a decoded key
    /// always normalises.
    raw: Vec<Option<HeaderValue>>,
}

/// Two keys select the same requests: the language shortcut is derived
/// from the response and does not make a different variant.
impl PartialEq for VaryKey {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl Eq for VaryKey {}

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
        let language = if names.contains(&ACCEPT_LANGUAGE) {
            content_language(response)
        } else {
            None
        };
        // Copied, not cloned: a request's value may share its whole head's
        // buffer, which the store must not keep alive.
        let raw = names
            .iter()
            .map(|name| {
                one_line(request, name).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            })
            .collect();
        let fields = names
            .into_iter()
            .map(|name| {
                let value = normalised(request, &name);
                (name, value)
            })
            .collect();
        Self {
            fields,
            language,
            raw,
        }
    }

    /// The fields and the language shortcut (for encoding).
    pub(crate) fn parts(&self) -> (&[(HeaderName, Option<String>)], Option<&str>) {
        (&self.fields, self.language.as_deref())
    }

    /// A key from its parts, as [`VaryKey::parts`] gave them.
    pub(crate) fn from_parts(
        fields: Vec<(HeaderName, Option<String>)>,
        language: Option<Box<str>>,
    ) -> Self {
        Self {
            fields,
            language,
            raw: Vec::new(),
        }
    }

    /// Whether the response varies on `field`.
    pub(crate) fn varies_on(&self, field: &HeaderName) -> bool {
        self.fields.iter().any(|(name, _)| name == field)
    }

    /// Whether `request` carries the same values for these fields.
    pub(crate) fn matches(&self, request: &HeaderMap) -> bool {
        self.fields.iter().enumerate().all(|(i, (name, value))| {
            let same_line = self.raw.get(i).and_then(Option::as_ref).is_some_and(|raw| {
                one_line(request, name).is_some_and(|line| line.as_bytes() == raw.as_bytes())
            });
            same_line
                || normalised(request, name) == *value
                || (name == ACCEPT_LANGUAGE
                    && self
                        .language
                        .as_deref()
                        .is_some_and(|language| prefers(request, language)))
        })
    }
}

/// The field's value when the request carries it on exactly one line.
fn one_line<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

fn normalised(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    if name == ACCEPT_LANGUAGE || name == ACCEPT_ENCODING {
        if let Some(list) = preferences(headers.get_all(name)).map(|list| list.canonical()) {
            return Some(list);
        }
    }
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

/// The most members a preference list is read with; a longer one is
/// compared as written (it still matches itself), which bounds the work
/// per lookup.
const MAX_MEMBERS: usize = 32;

/// One member of a preference list: a token (language range, content
/// coding) and its weight in thousandths.
#[derive(Clone, Copy, Debug)]
struct Member<'a> {
    token: &'a str,
    q: u16,
}

/// A parsed `Accept-Language` / `Accept-Encoding` (RFC 9110 §12.5.3,
/// §12.5.4): `1#( token [ OWS ";" OWS "q=" qvalue ] )`.
#[derive(Debug)]
struct Preferences<'a>(Vec<Member<'a>>);

/// The members of a preference list over all of `values`' lines; `None`
/// when the text is not such a list (non-ASCII, other parameters, a bad
/// qvalue) or has more than [`MAX_MEMBERS`] members.
fn preferences<'a>(values: GetAll<'a, HeaderValue>) -> Option<Preferences<'a>> {
    let mut members = Vec::new();
    for value in values {
        let text = value.to_str().ok()?;
        for item in text.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or_default().trim_matches(OWS);
            if token.is_empty() {
                // An empty member (`a,,b`) is allowed and means nothing,
                // but a lone weight is not a member.
                if parts.next().is_some() {
                    return None;
                }
                continue;
            }
            if !token.bytes().all(is_tchar) || members.len() == MAX_MEMBERS {
                return None;
            }
            let mut q = None;
            for parameter in parts {
                let (name, value) = parameter.split_once('=')?;
                if q.is_some() || !name.trim_matches(OWS).eq_ignore_ascii_case("q") {
                    return None;
                }
                q = Some(qvalue(value.trim_matches(OWS))?);
            }
            members.push(Member {
                token,
                q: q.unwrap_or(1000),
            });
        }
    }
    Some(Preferences(members))
}

impl Preferences<'_> {
    /// The list in one spelling: lower-case tokens, by weight from the
    /// highest (tokens of equal weight sorted, since their order carries
    /// no preference), `q` only where it is not 1, in its shortest form.
    fn canonical(mut self) -> String {
        self.0.sort_unstable_by(|a, b| {
            b.q.cmp(&a.q).then_with(|| {
                let a = a.token.bytes().map(|c| c.to_ascii_lowercase());
                a.cmp(b.token.bytes().map(|c| c.to_ascii_lowercase()))
            })
        });
        let length: usize = self.0.iter().map(|m| m.token.len() + 10).sum();
        let mut out = String::with_capacity(length);
        for (i, member) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.extend(member.token.chars().map(|c| c.to_ascii_lowercase()));
            if member.q != 1000 {
                out.push_str(";q=0");
                let digits = [member.q / 100, member.q / 10 % 10, member.q % 10];
                let used = digits.iter().rposition(|&d| d != 0).map_or(0, |at| at + 1);
                if used > 0 {
                    out.push('.');
                }
                out.extend(
                    digits[..used]
                        .iter()
                        .filter_map(|&d| char::from_digit(u32::from(d), 10)),
                );
            }
        }
        out
    }
}

/// Whether `request`'s most preferred language (any of them, if tied) is
/// `language` (lower-case).
fn prefers(request: &HeaderMap, language: &str) -> bool {
    let Some(list) = preferences(request.get_all(ACCEPT_LANGUAGE)) else {
        return false;
    };
    let top = list.0.iter().map(|m| m.q).max().unwrap_or(0);
    top > 0
        && list
            .0
            .iter()
            .any(|m| m.q == top && m.token.eq_ignore_ascii_case(language))
}

/// Whether the request's `Accept-Encoding` takes `coding` (`gzip` also as
/// `x-gzip`; else `*`) with a nonzero weight no lower than the identity
/// coding's, when that is named (RFC 9110 §12.5.3). No field, or one that
/// does not parse, takes only the identity coding.
pub(crate) fn accepts_coding(request: &HeaderMap, coding: &str) -> bool {
    let Some(list) = preferences(request.get_all(ACCEPT_ENCODING)) else {
        return false;
    };
    let weight = |tokens: &[&str]| {
        list.0
            .iter()
            .filter(|m| tokens.iter().any(|t| m.token.eq_ignore_ascii_case(t)))
            .map(|m| m.q)
            .max()
    };
    let named = if coding == "gzip" {
        weight(&["gzip", "x-gzip"])
    } else {
        weight(&[coding])
    };
    let identity = weight(&["identity"]).unwrap_or(0);
    named
        .or_else(|| weight(&["*"]))
        .is_some_and(|q| q > 0 && q >= identity)
}

/// The response's `Content-Language` when it is one language tag,
/// lower-cased.
fn content_language(response: &HeaderMap) -> Option<Box<str>> {
    let mut values = response.get_all(CONTENT_LANGUAGE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let tag = value.to_str().ok()?.trim_matches(OWS);
    let valid = !tag.is_empty()
        && tag.len() <= 64
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| tag.to_ascii_lowercase().into_boxed_str())
}

/// Optional whitespace (RFC 9110 §5.6.3).
const OWS: [char; 2] = [' ', '\t'];

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths: `0`, `0.5`, `1.000`.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .zip([100, 10, 1])
        .map(|(b, scale)| u16::from(b - b'0') * scale)
        .sum::<u16>();
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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

        // The same line matches at once; other lines are normalised; a
        // decoded key (no lines kept) still matches by its values.
        let browser = field(ACCEPT_ENCODING, &["gzip, deflate, br, zstd"]);
        let vary = field(VARY, &["accept-encoding"]);
        let key = VaryKey::new(&vary, &browser);
        assert!(key.matches(&browser));
        assert!(key.matches(&field(ACCEPT_ENCODING, &["zstd, br, deflate, gzip"])));
        assert!(!key.matches(&field(ACCEPT_ENCODING, &["gzip, deflate, br"])));
        assert!(!key.matches(&HeaderMap::new()));
        let (fields, language) = key.parts();
        let decoded = VaryKey::from_parts(fields.to_vec(), language.map(Box::from));
        assert!(decoded.matches(&browser));
        assert_eq!(decoded, key);
    }

    fn field(name: HeaderName, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(name.clone(), HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn preference_lists_are_normalised() {
        for name in [ACCEPT_LANGUAGE, ACCEPT_ENCODING] {
            let canonical = |values: &[&str]| normalised(&field(name.clone(), values), &name);
            let reference = canonical(&["en, de;q=0.5, fr;q=0.5"]);
            assert_eq!(reference.as_deref(), Some("en, de;q=0.5, fr;q=0.5"));
            for same in [
                &["EN ,  fr;Q=0.500 ,de ; q=0.5"][..],
                &["fr;q=0.50, en;q=1, DE;q=0.5"],
                &[" en ", "Fr ;q=0.5,de;q=0.500"],
                &["de;q=0.5,,fr;q=0.5 , en;q=1.000"],
            ] {
                assert_eq!(canonical(same), reference, "{same:?}");
            }
            assert_ne!(canonical(&["en, de;q=0.4"]), canonical(&["en, de;q=0.5"]));
            assert_ne!(canonical(&["en;q=0.5, de"]), canonical(&["en, de;q=0.5"]));
            assert_eq!(canonical(&["de;q=0"]).as_deref(), Some("de;q=0"));
            assert_eq!(canonical(&["de;q=0.05"]).as_deref(), Some("de;q=0.05"));
        }
    }

    #[test]
    fn coding_acceptance() {
        let takes = |values: &[&str]| accepts_coding(&field(ACCEPT_ENCODING, values), "gzip");
        for yes in [
            &["gzip"][..],
            &["br, GZIP;q=0.5"],
            &["x-gzip"],
            &["*"],
            &["identity;q=0.5", "gzip"],
            &["gzip;q=0.5, identity;q=0.5"],
            &["*;q=0.3, br"],
        ] {
            assert!(takes(yes), "{yes:?}");
        }
        for no in [
            &[][..],
            &["br"],
            &["gzip;q=0"],
            &["gzip;q=0, *"],
            &["*;q=0"],
            &["identity, gzip;q=0.5"],
            &["gzip;q=2"],
            &["gzip;level=9"],
        ] {
            assert!(!takes(no), "{no:?}");
        }
        let zstd = |values: &[&str]| accepts_coding(&field(ACCEPT_ENCODING, values), "zstd");
        assert!(zstd(&["gzip, deflate, br, zstd"]));
        assert!(!zstd(&["gzip, x-gzip"]), "no alias");
        assert!(!zstd(&["zstd;q=0, *"]));
        assert!(zstd(&["*"]));
        let varying = |value: &str| VaryKey::new(&field(VARY, &[value]), &HeaderMap::new());
        assert!(varying("Origin,  ACCEPT-Encoding").varies_on(&ACCEPT_ENCODING));
        assert!(!varying("accept-encodings").varies_on(&ACCEPT_ENCODING));
        assert!(!varying("").varies_on(&ACCEPT_ENCODING));
    }

    #[test]
    fn garbage_preference_lists_fall_back_without_panicking() {
        let name = ACCEPT_LANGUAGE;
        let many = vec!["x"; MAX_MEMBERS + 1].join(",");
        for garbage in [
            "",
            ",",
            ";",
            ";q=1",
            "en;q=",
            "en;q=2",
            "en;q=1.5",
            "en;q=0.1234",
            "en;q=1;q=1",
            "en;level=1",
            "en;=",
            "e n",
            "en;q=0.5.5",
            "\"en\"",
            &many,
            "\u{e9}",
        ] {
            let Ok(value) = HeaderValue::from_bytes(garbage.as_bytes()) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(name.clone(), value);
            let key = VaryKey::new(&field(VARY, &["accept-language"]), &headers);
            assert!(key.matches(&headers), "{garbage:?} matches itself");
        }
        let lang = |v: &str| field(ACCEPT_LANGUAGE, &[v]);
        let mut response = field(VARY, &["Accept-Language"]);
        response.insert(CONTENT_LANGUAGE, HeaderValue::from_static("DE"));
        let key = VaryKey::new(&response, &lang("en, de"));
        assert!(key.matches(&lang("fr;q=0.5, de;q=1.0")), "de preferred");
        assert!(key.matches(&lang("de-ch;q=0.1, De")));
        assert!(!key.matches(&lang("fr, de;q=0.9")), "fr preferred");
        assert!(!key.matches(&lang("de;q=0")), "de refused");
        assert!(!key.matches(&HeaderMap::new()));
    }
}
