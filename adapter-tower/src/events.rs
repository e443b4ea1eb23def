//! Structured cache-event logs: one JSON object per cache decision, for
//! dashboards and for training models on cache behaviour.
//!
//! ```json
//! {"timestamp_ms":1763900000000,"request_id":"4bf92f3577b34da6","operation":"hit",
//!  "tier":"memory","latency_us":42,"key":"example.com/api/users/7","tags":["users"],
//!  "status":200,"size":512}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `timestamp_ms` | Unix time of the decision, milliseconds |
//! | `request_id` | the request's `X-Request-ID` (printable ASCII, at most 128 characters), else one made here (16 hex digits) |
//! | `operation` | `hit`, `stale`, `miss`, `revalidated`, `partial`, `method`, `bypass`, `only_if_cached` or `error` |
//! | `tier` | where the answer came from: `memory` (the store, its spill tier or its chunk store), `origin`, or `none` (an error, `only-if-cached`) |
//! | `latency_us` | from the request entering the layer to its response head leaving it |
//! | `key` | the resource's key, or with `hash_keys` its XXH3-64 as 16 hex digits (`key_hash`) |
//! | `tags` | the tags the layer's tag extractor gives the response |
//! | `status` | the response status |
//! | `size` | the body's length when known (`Content-Length`), else `null` |
//!
//! No header value other than the sanitised request id is ever written:
//! not `Authorization`, not cookies, not the query's fields apart from the
//! key itself (use `hash_keys` when keys carry secrets).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// One cache decision; [`CacheEvent::to_json`] writes the documented line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEvent {
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
    /// The request id (see the module docs).
    pub request_id: String,
    /// What the layer did.
    pub operation: &'static str,
    /// Where the answer came from.
    pub tier: &'static str,
    /// Microseconds in the layer.
    pub latency_us: u64,
    /// The key, or its hash (`key_is_hash`).
    pub key: String,
    /// Whether `key` is a hash.
    pub key_is_hash: bool,
    /// The response's tags.
    pub tags: Vec<String>,
    /// The response status.
    pub status: u16,
    /// The body's length, if known.
    pub size: Option<u64>,
}

impl CacheEvent {
    /// The event as one line of JSON (no trailing newline).
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(192);
        let _ = write!(
            out,
            "{{\"timestamp_ms\":{},\"request_id\":",
            self.timestamp_ms
        );
        json_string(&mut out, &self.request_id);
        let _ = write!(
            out,
            ",\"operation\":\"{}\",\"tier\":\"{}\",\"latency_us\":{},",
            self.operation, self.tier, self.latency_us
        );
        out.push_str(if self.key_is_hash {
            "\"key_hash\":"
        } else {
            "\"key\":"
        });
        json_string(&mut out, &self.key);
        out.push_str(",\"tags\":[");
        for (i, tag) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(&mut out, tag);
        }
        let _ = write!(out, "],\"status\":{},\"size\":", self.status);
        match self.size {
            Some(size) => {
                let _ = write!(out, "{size}");
            }
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

type SinkFn = dyn Fn(&CacheEvent) + Send + Sync;

/// Where events go, with the sampling and key settings; see
/// [`CacheLayerBuilder::event_log`](crate::CacheLayerBuilder::event_log).
#[derive(Clone)]
pub struct EventLog {
    sink: Arc<SinkFn>,
    /// Keep one event in `every`.
    every: u64,
    hash_keys: bool,
    seen: Arc<AtomicU64>,
}

impl EventLog {
    /// Every event to `sink` (e.g. a closure writing
    /// [`CacheEvent::to_json`] to a file or a channel).
    pub fn new(sink: impl Fn(&CacheEvent) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
            every: 1,
            hash_keys: false,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events as `info` events of target `strata_tower::events` with the
    /// JSON line as the message (feature `tracing`).
    #[cfg(feature = "tracing")]
    #[must_use]
    pub fn tracing() -> Self {
        Self::new(|event| tracing::info!(target: "strata_tower::events", "{}", event.to_json()))
    }

    /// Keep about `rate` of the events (0.0 to 1.0; one in `round(1 /
    /// rate)`, counted, so the rate holds exactly over time). Default 1.0.
    #[must_use]
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.every = if rate.is_nan() || rate <= 0.0 {
            u64::MAX
        } else if rate >= 1.0 {
            1
        } else {
            (1.0 / rate).round().clamp(1.0, u64::MAX as f64) as u64
        };
        self
    }

    /// Write the XXH3-64 of each key instead of the key. Default false.
    #[must_use]
    pub fn hash_keys(mut self, yes: bool) -> Self {
        self.hash_keys = yes;
        self
    }

    /// Whether this request's event is kept (decided before any work).
    pub(crate) fn sampled(&self) -> bool {
        self.every != u64::MAX
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }

    /// Builds and emits one event.
    pub(crate) fn emit(
        &self,
        request_id: String,
        key: &str,
        took: Duration,
        response: &HeaderMap,
        status: u16,
        tags: Vec<String>,
    ) {
        let detail = response
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').find_map(|m| m.trim().strip_prefix("strata;")))
            .unwrap_or("")
            .trim();
        let operation = crate::telemetry::outcome(detail);
        let tier = match operation {
            "hit" | "stale" => "memory",
            "only_if_cached" | "error" => "none",
            _ => "origin",
        };
        let (key, key_is_hash) = if self.hash_keys {
            (
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes())),
                true,
            )
        } else {
            (key.to_owned(), false)
        };
        let event = CacheEvent {
            timestamp_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            request_id,
            operation,
            tier,
            latency_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            key,
            key_is_hash,
            tags,
            status,
            size: response
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        };
        (self.sink)(&event);
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("every", &self.every)
            .field("hash_keys", &self.hash_keys)
            .finish_non_exhaustive()
    }
}

/// The request's id: its `X-Request-ID` if printable ASCII of at most 128
/// characters, else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    if let Some(given) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        let given = given.trim();
        if !given.is_empty() && given.len() <= 128 && given.bytes().all(|b| b.is_ascii_graphic()) {
            return given.to_owned();
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64_with_seed(&n.to_le_bytes(), nanos)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> CacheEvent {
        CacheEvent {
            timestamp_ms: 1,
            request_id: "r\"1\\\n\u{1}".to_owned(),
            operation: "hit",
            tier: "memory",
            latency_us: 5,
            key: "example.com/a?b=\"c\"".to_owned(),
            key_is_hash: false,
            tags: vec!["t1".to_owned(), "t\"2".to_owned()],
            status: 200,
            size: None,
        }
    }

    #[test]
    fn lines_escape_every_string() {
        assert_eq!(
            event().to_json(),
            "{\"timestamp_ms\":1,\"request_id\":\"r\\\"1\\\\\\n\\u0001\",\"operation\":\"hit\",\
             \"tier\":\"memory\",\"latency_us\":5,\"key\":\"example.com/a?b=\\\"c\\\"\",\
             \"tags\":[\"t1\",\"t\\\"2\"],\"status\":200,\"size\":null}"
        );
    }

    #[test]
    fn request_ids_are_taken_only_when_harmless() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&headers), "abc-123");
        for bad in ["has space", "", &"x".repeat(129)] {
            headers.insert("x-request-id", bad.parse().unwrap());
            let id = request_id(&headers);
            assert_eq!(id.len(), 16, "{bad:?} replaced by a new id");
            assert_ne!(id, bad);
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn sampling_keeps_one_in_n() {
        let log = EventLog::new(|_| {}).sample_rate(0.25);
        let kept = (0..100).filter(|_| log.sampled()).count();
        assert_eq!(kept, 25);
        let none = EventLog::new(|_| {}).sample_rate(0.0);
        assert!((0..10).all(|_| !none.sampled()));
    }
}
