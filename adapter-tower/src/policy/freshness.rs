//! Freshness and age (RFC 9111 §4.2) and what may be stored (§3).

use std::time::SystemTime;

use http::header::{HeaderMap, AGE, AUTHORIZATION, DATE, EXPIRES, LAST_MODIFIED, VARY};
use http::{Method, StatusCode};

use super::Directives;

/// The most a heuristic freshness lifetime may be (a day, as common
/// practice caps it).
const MAX_HEURISTIC: u64 = 24 * 60 * 60;

/// Statuses whose responses are heuristically cacheable (RFC 9110 §15.1).
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses whose caching semantics this cache implements.
pub(crate) fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
            | 500..=508 | 510 | 511
    )
}

/// A header parsed as an HTTP date; an invalid date is `Some(None)`.
pub(crate) fn http_date(
    headers: &HeaderMap,
    name: http::header::HeaderName,
) -> Option<Option<SystemTime>> {
    let value = headers.get(name)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok()),
    )
}

fn secs_between(later: SystemTime, earlier: SystemTime) -> u64 {
    later.duration_since(earlier).map_or(0, |d| d.as_secs())
}

/// The inputs of the age calculation, taken when a response arrived.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// When the request that fetched it was sent.
    pub(crate) request_time: SystemTime,
    /// When the response arrived.
    pub(crate) response_time: SystemTime,
}

/// The `Age` field's value: 0 when absent; `None` (unknown, so stale)
/// unless it is exactly one line of digits. `Age` is a singleton: a list
/// or a repeated line means something rewrote it, and guessing the
/// younger member would serve stale content as fresh.
fn age_header(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(AGE).iter();
    let Some(value) = values.next() else {
        return Some(0);
    };
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// The corrected initial age (§4.2.3) of a response when it arrived;
/// `None` if its `Age` cannot be read.
pub(crate) fn initial_age(headers: &HeaderMap, timing: Timing) -> Option<u64> {
    let date = http_date(headers, DATE)
        .flatten()
        .unwrap_or(timing.response_time);
    let apparent_age = secs_between(timing.response_time, date);
    let age_value = age_header(headers)?;
    let response_delay = secs_between(timing.response_time, timing.request_time);
    let corrected_age_value = age_value.saturating_add(response_delay);
    Some(apparent_age.max(corrected_age_value))
}

/// The current age at `now` from the corrected initial age.
pub(crate) fn resident_age(initial: u64, timing: Timing, now: SystemTime) -> u64 {
    initial.saturating_add(secs_between(now, timing.response_time))
}

/// The freshness lifetime in seconds (§4.2.1), or `None` when the response
/// gives none and no heuristic applies. `shared` reads `s-maxage`.
pub(crate) fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    directives: &Directives,
    timing: Timing,
    shared: bool,
) -> Option<u64> {
    if shared {
        if let Some(s) = directives.s_maxage {
            return Some(s);
        }
    }
    if let Some(max_age) = directives.max_age {
        return Some(max_age);
    }
    if let Some(expires) = http_date(headers, EXPIRES) {
        // An invalid Expires (e.g. "0") means already expired.
        let Some(expires) = expires else {
            return Some(0);
        };
        let date = http_date(headers, DATE)
            .flatten()
            .unwrap_or(timing.response_time);
        return Some(secs_between(expires, date));
    }
    if heuristically_cacheable(status) || directives.public {
        if let Some(Some(modified)) = http_date(headers, LAST_MODIFIED) {
            let date = http_date(headers, DATE)
                .flatten()
                .unwrap_or(timing.response_time);
            return Some((secs_between(date, modified) / 10).min(MAX_HEURISTIC));
        }
    }
    None
}

/// Whether a response may be stored at all (§3, §3.5), and reused later
/// only with revalidation if it has no freshness (it must then at least
/// have a validator).
pub(crate) struct Storable<'a> {
    pub(crate) method: &'a Method,
    pub(crate) request: &'a HeaderMap,
    pub(crate) request_directives: &'a Directives,
    pub(crate) status: StatusCode,
    pub(crate) response: &'a HeaderMap,
    pub(crate) response_directives: &'a Directives,
    pub(crate) shared: bool,
    /// The layer gives a freshness to responses without their own.
    pub(crate) assume_fresh: bool,
}

impl Storable<'_> {
    pub(crate) fn check(&self) -> bool {
        let d = self.response_directives;
        // must-understand: store only statuses this cache implements, and
        // then regardless of no-store (RFC 9111 §5.2.2.3).
        let no_store = if d.must_understand {
            !understood(self.status)
        } else {
            d.no_store
        };
        if self.method != Method::GET
            || self.request_directives.no_store
            || no_store
            || (self.shared && d.private)
        {
            return false;
        }
        // Only final statuses; 206 needs range support, 304 updates.
        let status = self.status.as_u16();
        if !(200..600).contains(&status) || status == 206 || status == 304 {
            return false;
        }
        if self.response.get_all(VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|f| f.trim() == "*"))
        }) {
            return false;
        }
        // §3.5: a shared cache stores a response to an authorized request
        // only if the response says it may.
        if self.shared
            && self.request.contains_key(AUTHORIZATION)
            && !(d.public || d.must_revalidate || d.s_maxage.is_some())
        {
            return false;
        }
        let explicit = d.max_age.is_some()
            || (self.shared && d.s_maxage.is_some())
            || self.response.contains_key(EXPIRES)
            || d.public
            || self.assume_fresh;
        // Without freshness, a validator still lets it be revalidated
        // (heuristic freshness also needs Last-Modified, a validator).
        let validator = self.response.contains_key(http::header::ETAG)
            || self.response.contains_key(LAST_MODIFIED);
        explicit || validator
    }
}
