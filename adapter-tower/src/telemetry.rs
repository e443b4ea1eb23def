//! What the layer reports: `metrics` counters and histograms (feature
//! `metrics`) and `tracing` spans and events (feature `tracing`); the
//! names are tabled in the crate docs. Without the features these
//! functions are empty and compile away.

use std::time::Duration;

/// The outcome label of a `Cache-Status` detail this layer wrote.
pub(crate) fn outcome(detail: &str) -> &'static str {
    let first = detail.split(';').next().unwrap_or("").trim();
    match first {
        "hit" if detail.contains("stale") => "stale",
        "hit" => "hit",
        "fwd=uri-miss" | "fwd=vary-miss" | "fwd=request" => "miss",
        "fwd=stale" => "revalidated",
        "fwd=partial" => "partial",
        "fwd=method" => "method",
        "fwd=bypass" => "bypass",
        "fwd=miss" if detail.contains("only-if-cached") => "only_if_cached",
        _ => "error",
    }
}

/// A response leaves the layer: reports this layer's `Cache-Status`
/// member (the last one starting `strata;`).
#[cfg(any(feature = "metrics", feature = "tracing"))]
pub(crate) fn responded(headers: &http::HeaderMap) {
    let detail = headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').find_map(|m| m.trim().strip_prefix("strata;")))
        .unwrap_or("");
    response(detail.trim());
}

/// One response left the layer with this `Cache-Status` detail.
#[cfg(any(feature = "metrics", feature = "tracing"))]
fn response(detail: &str) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("strata_http_responses_total", "outcome" => outcome(detail)).increment(1);
        if detail.contains("stored") {
            metrics::counter!("strata_http_stores_total").increment(1);
        }
    }
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "strata_tower", cache_status = detail, "cache decision");
}

/// A call to `tier` (`origin`, or `l2` for the second tier) took `took`.
pub(crate) fn upstream(tier: &'static str, took: Duration, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        "strata_http_upstream_seconds",
        "tier" => tier,
        "result" => if ok { "ok" } else { "error" }
    )
    .record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (tier, took, ok);
}

/// A background revalidation ended: `not_modified`, `replaced` or `failed`.
pub(crate) fn revalidated(result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("strata_http_revalidations_total", "result" => result).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// A stored response left the store to make room.
#[cfg(feature = "metrics")]
pub(crate) fn evicted() {
    #[cfg(feature = "metrics")]
    metrics::counter!("strata_http_evictions_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::outcome;

    #[test]
    fn outcomes_of_every_detail_the_layer_writes() {
        for (detail, expected) in [
            ("hit; ttl=5", "hit"),
            ("hit; ttl=5; collapsed", "hit"),
            ("hit; stale; detail=revalidating", "stale"),
            ("fwd=uri-miss; stored", "miss"),
            ("fwd=vary-miss", "miss"),
            ("fwd=request; fwd-status=200", "miss"),
            ("fwd=stale; fwd-status=304", "revalidated"),
            ("fwd=partial; stored", "partial"),
            ("fwd=method", "method"),
            ("fwd=bypass", "bypass"),
            ("fwd=miss; detail=only-if-cached", "only_if_cached"),
            ("something else", "error"),
        ] {
            assert_eq!(outcome(detail), expected, "{detail}");
        }
    }
}
