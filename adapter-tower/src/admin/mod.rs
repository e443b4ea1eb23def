//! The admin API (feature `admin`): an axum [`Router`] to nest under any
//! path, behind a bearer token.
//!
//! | route | answer |
//! |---|---|
//! | `GET health` | `{"status":"ok"}` |
//! | `GET stats` | the store's counters (entries, bytes, hits, misses, evictions, ...; the spill tier's when there is one; the second tier's when there is one; partial objects) |
//! | `GET hot-keys?limit=N` | the `N` (default 20, at most 1,000) most used stored resources, by the admission sketch's recent counts |
//! | `GET tags` | every tag held, with its number of resources |
//! | `POST invalidate` | body `{"key": K}`, `{"tag": T}` or `{"prefix": P}`: drops those resources; `{"invalidated": n}` |
//!
//! Every route needs `Authorization: Bearer <token>`, compared in constant
//! time; anything else is a 401. A router cannot be built without a token.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::CacheLayer;

/// Why [`CacheLayer::admin_router`] refused to build a router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminError {
    /// The token was empty: an admin API without one would be open to
    /// anyone who can reach it.
    NoToken,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoToken => f.write_str("the admin API needs a non-empty token"),
        }
    }
}

impl std::error::Error for AdminError {}

struct Admin {
    layer: CacheLayer,
    token: Box<[u8]>,
}

/// The most keys `hot-keys` lists.
const MAX_HOT_KEYS: usize = 1000;

impl CacheLayer {
    /// The admin API of this layer's store, guarded by `token`; see the
    /// [module docs](crate::admin) for its routes. Nest it where it
    /// belongs, e.g. `Router::new().nest("/admin", layer.admin_router(t)?)`,
    /// preferably on a listener of its own.
    ///
    /// ```
    /// let layer = strata_tower::CacheLayer::new(64 << 20)?;
    /// let admin = layer.admin_router(std::env::var("ADMIN_TOKEN").unwrap_or("t0k".into()))?;
    /// let app: axum::Router = axum::Router::new().nest("/admin/cache", admin);
    /// # let _ = app;
    /// assert!(layer.admin_router("").is_err(), "no token, no admin API");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`AdminError::NoToken`] for an empty token.
    pub fn admin_router(&self, token: impl Into<String>) -> Result<Router, AdminError> {
        let token = token.into();
        if token.is_empty() {
            return Err(AdminError::NoToken);
        }
        let admin = Arc::new(Admin {
            layer: self.clone(),
            token: token.into_bytes().into_boxed_slice(),
        });
        Ok(Router::new()
            .route("/health", get(health))
            .route("/stats", get(stats))
            .route("/hot-keys", get(hot_keys))
            .route("/tags", get(tags))
            .route("/invalidate", post(invalidate))
            .route_layer(middleware::from_fn_with_state(
                Arc::clone(&admin),
                authorize,
            ))
            .with_state(admin))
    }
}

/// Equal byte strings, in time that depends only on their lengths.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut differ = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        differ |= usize::from(a ^ b);
    }
    std::hint::black_box(differ) == 0
}

async fn authorize(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if same(given, &admin.token) {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "a valid bearer token is required"})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn stats(State(admin): State<Arc<Admin>>) -> Json<Value> {
    let shared = &admin.layer.shared;
    let s = shared.store.stats();
    let spill = &s.spill;
    Json(json!({
        "entries": s.entries,
        "weighted_size": s.weighted_size,
        "capacity": shared.store.capacity(),
        "hits": s.hits,
        "misses": s.misses,
        "hit_ratio": s.hit_ratio(),
        "inserts": s.inserts,
        "updates": s.updates,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "removals": s.removals,
        "admissions_rejected": s.admissions_rejected,
        "rejected_too_heavy": s.rejected_too_heavy,
        "spill": {
            "hits": spill.hits,
            "misses": spill.misses,
            "writes": spill.writes,
            "write_errors": spill.write_errors,
            "corrupt": spill.corrupt,
            "entries": spill.entries,
            "disk_bytes": spill.disk_bytes,
        },
        "second_tier": admin.layer.second_tier_stats().map(|t| json!({
            "hits": t.hits,
            "misses": t.misses,
            "errors": t.errors,
            "corrupt": t.corrupt,
            "fills_dropped": t.fills_dropped,
            "skipped": t.skipped,
            "breaker_skipped": t.breaker_skipped,
            "breaker_open": t.breaker_open,
            "writes": t.writes,
            "write_errors": t.write_errors,
            "writes_dropped": t.writes_dropped,
            "purges": t.purges,
            "purge_errors": t.purge_errors,
            "invalidations_heard": t.invalidations_heard,
        })),
        "partial_objects": shared.partials.as_ref().map(|partials| {
            let pieces = partials.stats();
            json!({ "pieces": pieces.entries, "bytes": pieces.weighted_size })
        }),
    }))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn hot_keys(State(admin): State<Arc<Admin>>, Query(query): Query<Limit>) -> Json<Value> {
    let limit = query.limit.unwrap_or(20).min(MAX_HOT_KEYS);
    let keys: Vec<Value> = admin
        .layer
        .shared
        .store
        .hottest(limit)
        .into_iter()
        .map(|(key, frequency)| json!({"key": key, "frequency": frequency}))
        .collect();
    Json(json!({ "keys": keys }))
}

async fn tags(State(admin): State<Arc<Admin>>) -> Json<Value> {
    let tags: Vec<Value> = admin
        .layer
        .shared
        .store
        .tags()
        .into_iter()
        .map(|(tag, entries)| json!({"tag": tag, "entries": entries}))
        .collect();
    Json(json!({ "tags": tags }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    key: Option<String>,
    tag: Option<String>,
    prefix: Option<String>,
}

async fn invalidate(State(admin): State<Arc<Admin>>, body: Option<Json<Invalidate>>) -> Response {
    let bad = |why: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": why }))).into_response();
    let Some(Json(what)) = body else {
        return bad("send a JSON body with one of \"key\", \"tag\" or \"prefix\"");
    };
    let layer = &admin.layer;
    let invalidated = match (what.key, what.tag, what.prefix) {
        (Some(key), None, None) => usize::from(layer.invalidate(&key)),
        (None, Some(tag), None) => layer.invalidate_tag(&tag),
        (None, None, Some(prefix)) if !prefix.is_empty() => layer.invalidate_prefix(&prefix),
        (None, None, Some(_)) => {
            return bad("an empty prefix would drop everything; use a key or a tag")
        }
        _ => return bad("give exactly one of \"key\", \"tag\" or \"prefix\""),
    };
    Json(json!({ "invalidated": invalidated })).into_response()
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        for other in [&b""[..], b"secre", b"secret!", b"Secret", b"xxxxxx"] {
            assert!(!same(other, b"secret"), "{other:?}");
        }
    }
}
