//! strata-tower: an HTTP caching layer for [Tower](https://docs.rs/tower)
//! services, following RFC 9111, on the [`strata`] engine.
//!
//! [`CacheLayer`] wraps any `Service<http::Request<B>>` returning
//! `http::Response<ResB>` (an `http-body` 1.x body of `Bytes`):
//!
//! - responses are stored when RFC 9111 allows (shared-cache rules by
//!   default: `s-maxage`, `private`, `Authorization`), keyed by authority
//!   and target, with `Vary` selecting among a resource's responses
//!   (`Accept-Language` and `Accept-Encoding` compared as preference
//!   lists, whatever their case, spacing and order of equal weights);
//! - a fresh stored response answers `GET` and `HEAD` (or those the
//!   [`method_predicate`](CacheLayerBuilder::method_predicate) keeps) with
//!   an `Age`; a stale one is revalidated with its `ETag` /
//!   `Last-Modified` and refreshed by a 304, or by a `HEAD`'s 200 with
//!   matching validators (a mismatch invalidates it); `no-cache`,
//!   `max-age`, `max-stale`, `min-fresh`,
//!   `only-if-cached`, `must-revalidate`, `proxy-revalidate` and `Pragma:
//!   no-cache` are honoured; `If-None-Match` / `If-Modified-Since` are
//!   answered with 304 from the store;
//! - `POST`, `PUT`, `DELETE`, `PATCH` and unknown methods invalidate the
//!   target and its `Location` / `Content-Location` on the same authority;
//! - `Set-Cookie` and hop-by-hop fields are never stored;
//! - a storable response streams to the client as it arrives and is stored
//!   once its body has ended (within `max_body_size`); bodies without a
//!   `Content-Length` (unless `buffer_unsized`), larger bodies and
//!   `text/event-stream` stream through without being stored;
//! - concurrent misses of one resource make one upstream request; the
//!   others wait for its response to be stored and are answered from it;
//! - with a [`spawner`](CacheLayerBuilder::spawner), a response inside its
//!   `stale-while-revalidate` window (RFC 5861, or the layer's default) is
//!   answered at once and revalidated by one background request;
//! - with [`refresh_before`](CacheLayerBuilder::refresh_before), a fresh
//!   response about to expire is answered and revalidated in the
//!   background;
//! - `206` responses are kept in part, in the engine's
//!   [`ChunkStore`](strata::chunks::ChunkStore): a later range is answered
//!   from the chunks present, only missing chunks are fetched (with
//!   `If-Range`), and pieces of two versions are never combined
//!   ([`partial_content`](CacheLayerBuilder::partial_content));
//! - every response says what happened in `Cache-Status` (RFC 9211), and,
//!   with an [`EventLog`], one sampled JSON event per decision goes to a
//!   sink of your choice (schema in [`events`]);
//! - with a [`second_tier`](CacheLayerBuilder::second_tier) (e.g.
//!   `strata_redis::RedisTier`), several instances share stored responses
//!   and hear each other's invalidations;
//! - media types listed in
//!   [`excluded_content_types`](CacheLayerBuilder::excluded_content_types)
//!   (`video/*`, ...) stream through unstored.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `spill` | [`CacheLayerBuilder::spill`]: stored responses written through to memory-mapped files, read back when memory evicted them, found again after a restart or a crash |
//! | `admin` | [`CacheLayer::admin_router`]: an axum router with `health`, `stats`, `hot-keys`, `tags` and `invalidate` (by key, tag or prefix) behind a bearer token; see [`admin`] |
//! | `auto-refresh` | [`CacheLayerBuilder::auto_refresh`] and [`CacheLayer::init_auto_refresh`]: responses read often are revalidated in the background before they expire (a tokio task) |
//! | `compression` | [`CacheLayerBuilder::compress_above`]: textual bodies kept gzip-compressed in the store, sent as they are to clients that take gzip when the response varies on `Accept-Encoding`, decompressed for the others |
//! | `compression-zstd` | [`Compression::Zstd`] for [`CacheLayerBuilder::compression`]: zstd instead of gzip (libzstd, a C library built by `zstd-sys`) |
//! | `metrics` | counters and histograms through the [`metrics`](https://docs.rs/metrics) facade: responses by outcome, stores, revalidations, evictions, upstream latency (names below) |
//! | `tracing` | [`tracing`](https://docs.rs/tracing) spans around each request and upstream call, and an event per cache decision |
//!
//! Metrics (feature `metrics`), all under the recorder the application
//! installs:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `strata_http_responses_total` | counter | `outcome`: `hit`, `stale`, `miss`, `revalidated`, `partial`, `method`, `bypass`, `only_if_cached`, `error` |
//! | `strata_http_stores_total` | counter | |
//! | `strata_http_revalidations_total` | counter | `result`: `not_modified`, `replaced`, `failed` (background revalidations) |
//! | `strata_http_evictions_total` | counter | |
//! | `strata_http_upstream_seconds` | histogram | `tier`: `origin`, `l2` (the [second tier](CacheLayerBuilder::second_tier)); `result`: `ok`, `error` |
//!
//! Spans (feature `tracing`): `strata_tower.request` (fields `method`,
//! `path`; never header values), `strata_tower.upstream` and
//! `strata_tower.tier` (a second-tier read); a `debug`
//! event with field `cache_status` per response.
//!
//! Both go wherever the application sends metrics and traces; nothing is
//! configured on the layer:
//!
//! ```
//! // e.g. metrics_exporter_prometheus::PrometheusBuilder::new().install()?;
//! // e.g. tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).init();
//! let layer = strata_tower::CacheLayer::new(64 << 20)?;
//! // ... every request through `layer` now counts in
//! // strata_http_responses_total{outcome=...} and opens a span.
//! # let _ = layer;
//! # Ok::<(), strata::ConfigError>(())
//! ```
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use strata_tower::CacheLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # type Error = Box<dyn std::error::Error + Send + Sync>;
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let origin = tower::service_fn(|_req: Request<()>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("cache-control", "max-age=60")
//!             .header("content-length", "5")
//!             .body(Full::new(Bytes::from_static(b"hello")))
//!             .unwrap(),
//!     )
//! });
//! let mut svc = ServiceBuilder::new().layer(CacheLayer::new(64 << 20)?).service(origin);
//! let get = || Request::get("http://example.com/a").body(()).unwrap();
//! let first = svc.ready().await?.call(get()).await?;
//! assert!(first.headers()["cache-status"].to_str()?.contains("stored"));
//! // The body streams to the caller; the entry is stored when it ends.
//! first.into_body().collect().await?;
//! let second = svc.ready().await?.call(get()).await?;
//! assert!(second.headers()["cache-status"].to_str()?.contains("hit"));
//! assert_eq!(second.into_body().collect().await?.to_bytes(), "hello");
//! # Ok::<(), Error>(())
//! # })?;
//! # Ok::<(), Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

#[cfg(feature = "admin")]
pub mod admin;
mod body;
mod codec;
mod compress;
mod entry;
pub mod events;
mod flight;
pub mod key;
mod layer;
mod partial;
pub mod policy;
mod range;
#[cfg(feature = "auto-refresh")]
mod refresh;
mod service;
mod telemetry;
mod tier;

pub use body::{BoxError, CacheBody};
#[cfg(feature = "compression")]
pub use compress::Compression;
pub use events::{CacheEvent, EventLog};
pub use key::KeyExtractor;
pub use layer::{
    BackgroundTask, CacheLayer, CacheLayerBuilder, Config, MethodPredicate, Spawner, TagExtractor,
};
#[cfg(feature = "auto-refresh")]
pub use refresh::{AutoRefresh, AutoRefreshError};
pub use service::{CacheService, ResponseFuture};
pub use tier::SecondTierStats;
