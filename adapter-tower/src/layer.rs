//! [`CacheLayer`]: the settings and the shared store, cheap to clone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::Method;
use strata::tiered::CircuitBreaker;
use strata::{Cache, ConfigError};

use crate::entry::Variants;
use crate::key::KeyExtractor;
use crate::partial::Partials;
use crate::service::CacheService;

/// Settings of a [`CacheLayer`]; see [`CacheLayerBuilder`] for each one's
/// meaning and default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Bytes of responses (bodies and headers) held in memory.
    pub max_capacity: u64,
    /// Act as a shared cache (the default: `s-maxage`, `private` and
    /// `Authorization` rules apply) or as a private one.
    pub shared: bool,
    /// Larger bodies stream through without being stored.
    pub max_body_size: usize,
    /// Smaller bodies are not stored.
    pub min_body_size: usize,
    /// Freshness for responses that carry no explicit freshness of their
    /// own (instead of the heuristic); `None`: RFC 9111 heuristics only.
    pub ttl: Option<Duration>,
    /// Freshness for error responses (4xx/5xx) without explicit freshness.
    pub negative_ttl: Option<Duration>,
    /// Obey response `Cache-Control` (the default). When false, every
    /// storable response is kept for `ttl` whatever its directives say
    /// (but `no-store`, `private`, `Set-Cookie` rules still hold).
    pub respect_cache_control: bool,
    /// Store only these response headers (plus those caching itself
    /// needs); `None`: all but hop-by-hop fields and `Set-Cookie`.
    pub header_allowlist: Option<Vec<HeaderName>>,
    /// How resources are named.
    pub key: KeyExtractor,
    /// Store responses without a `Content-Length` (buffering them whole,
    /// up to `max_body_size`) instead of streaming them through.
    pub buffer_unsized: bool,
    /// Targeted cache-control fields this cache obeys instead of
    /// `Cache-Control` when present, first match wins: by default
    /// `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control`, as a CDN or
    /// reverse proxy does. Empty for a cache that is neither.
    pub targeted: Vec<HeaderName>,
    /// This cache's device token for `Surrogate-Control` targeting: sent
    /// upstream as `Surrogate-Capability: TOKEN="Surrogate/1.0"`, and
    /// directives targeted at `;TOKEN` apply. Default `strata`.
    pub surrogate_token: Option<String>,
    /// When revalidation fails (a 5xx, or no answer), serve the stale
    /// stored response unless it forbids that (`must-revalidate`,
    /// `proxy-revalidate`, `s-maxage`, `no-cache`), as RFC 9111 §4.2.4
    /// allows. Default false, as in nginx (`proxy_cache_use_stale off`).
    pub stale_on_error: bool,
    /// How long past its freshness a response may still be served at once
    /// while one background request revalidates it, when the response
    /// gives no `stale-while-revalidate` of its own (RFC 5861). Needs a
    /// [`Config::spawner`]. Default none.
    pub stale_while_revalidate: Option<Duration>,
    /// A fresh response with at most this much freshness left is served
    /// as a hit while one background request revalidates it, so that
    /// entries in use never expire. Needs a [`Config::spawner`]. Default
    /// none.
    pub refresh_before: Option<Duration>,
    /// Runs background revalidations (e.g. `tokio::spawn`); without one,
    /// stale responses are revalidated before answering.
    pub spawner: Option<Spawner>,
    /// Store only responses with these statuses (RFC 9111 rules still
    /// apply); `None`: every status those rules allow.
    pub cacheable_statuses: Option<Vec<http::StatusCode>>,
    /// Labels a stored response from its key and response headers, for
    /// [`CacheLayer::invalidate_tag`]; `None`: no tags.
    pub tags: Option<TagExtractor>,
    /// Which safe methods the layer caches (answers from the store and
    /// stores for); by default `GET` and `HEAD`, the only ones it can.
    pub methods: MethodPredicate,
    /// Keep `206` responses in part, in chunks of this many bytes, in a
    /// chunk store of a quarter of `max_capacity` (at least 1 MiB): range
    /// requests are then answered from the chunks present and only the
    /// missing chunks are fetched. `None`: 206 responses are not stored.
    /// Default 64 KiB.
    pub partial_chunk_size: Option<u32>,
    /// Media types never stored (they stream through): `type/subtype` or
    /// `type/*`, e.g. `video/*`. Default none.
    pub excluded_content_types: Vec<String>,
    /// Structured cache-event logs (see [`EventLog`](crate::EventLog)). Default none.
    pub event_log: Option<crate::EventLog>,
    /// Auto-refresh of hot responses (feature `auto-refresh`; started by
    /// [`CacheLayer::init_auto_refresh`]). Default none.
    #[cfg(feature = "auto-refresh")]
    pub auto_refresh: Option<crate::AutoRefresh>,
    /// Keep compressible bodies of at least this many bytes compressed in
    /// the store (feature `compression`). Default none.
    #[cfg(feature = "compression")]
    pub compress_above: Option<usize>,
    /// How: gzip, or zstd with feature `compression-zstd`. Default gzip.
    #[cfg(feature = "compression")]
    pub compression: crate::Compression,
}

type MethodFn = dyn Fn(&Method) -> bool + Send + Sync;

/// Decides which request methods the layer caches; see
/// [`CacheLayerBuilder::method_predicate`]. The default allows `GET` and
/// `HEAD`.
#[derive(Clone)]
pub struct MethodPredicate(Arc<MethodFn>);

impl MethodPredicate {
    /// A predicate from a closure.
    pub fn new(f: impl Fn(&Method) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Whether the layer caches requests with `method` (only `GET` and
    /// `HEAD` ever are, whatever the predicate says).
    pub fn caches(&self, method: &Method) -> bool {
        (method == Method::GET || method == Method::HEAD) && (self.0)(method)
    }
}

impl Default for MethodPredicate {
    fn default() -> Self {
        Self::new(|_| true)
    }
}

impl fmt::Debug for MethodPredicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MethodPredicate(..)")
    }
}

type TagFn = dyn Fn(&str, &http::HeaderMap) -> Vec<String> + Send + Sync;

/// Derives tags for a stored response; see [`CacheLayerBuilder::tags`].
#[derive(Clone)]
pub struct TagExtractor(pub(crate) Arc<TagFn>);

impl fmt::Debug for TagExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TagExtractor(..)")
    }
}

/// A future the layer runs in the background.
pub type BackgroundTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Runs the layer's background tasks; see [`CacheLayerBuilder::spawner`].
#[derive(Clone)]
pub struct Spawner(pub(crate) Arc<dyn Fn(BackgroundTask) + Send + Sync>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner(..)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_capacity: 64 << 20,
            shared: true,
            max_body_size: 8 << 20,
            min_body_size: 0,
            ttl: None,
            negative_ttl: None,
            respect_cache_control: true,
            header_allowlist: None,
            key: KeyExtractor::default(),
            buffer_unsized: false,
            targeted: vec![
                HeaderName::from_static("cdn-cache-control"),
                HeaderName::from_static("surrogate-control"),
            ],
            surrogate_token: Some("strata".to_owned()),
            stale_on_error: false,
            stale_while_revalidate: None,
            refresh_before: None,
            spawner: None,
            cacheable_statuses: None,
            tags: None,
            methods: MethodPredicate::default(),
            partial_chunk_size: Some(crate::partial::DEFAULT_CHUNK_SIZE),
            excluded_content_types: Vec::new(),
            event_log: None,
            #[cfg(feature = "auto-refresh")]
            auto_refresh: None,
            #[cfg(feature = "compression")]
            compress_above: None,
            #[cfg(feature = "compression")]
            compression: crate::Compression::Gzip,
        }
    }
}

/// A Tower layer that caches HTTP responses per RFC 9111 in a
/// [`strata::Cache`]. Clones share one store.
///
/// ```
/// use strata_tower::CacheLayer;
///
/// let layer = CacheLayer::builder().max_capacity(256 << 20).build()?;
/// let svc = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service(tower::service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
///     }));
/// # let _ = svc;
/// # Ok::<(), strata::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Cache<String, Variants>,
    /// Partial objects (206 responses) by chunk, unless turned off.
    pub(crate) partials: Option<Partials>,
    pub(crate) flights: Arc<crate::flight::Flights>,
    /// `Surrogate-Capability` to send upstream, made once.
    pub(crate) surrogate_capability: Option<http::HeaderValue>,
    /// The second tier, if any.
    pub(crate) tier: Option<crate::tier::Tier>,
    /// Hot keys, when auto-refresh is configured.
    #[cfg(feature = "auto-refresh")]
    pub(crate) refresher: Option<crate::refresh::Refresher>,
}

impl CacheLayer {
    /// A layer with default settings holding `max_capacity` bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a capacity of zero.
    pub fn new(max_capacity: u64) -> Result<Self, ConfigError> {
        Self::builder().max_capacity(max_capacity).build()
    }

    /// A builder for every setting.
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder {
            config: Config::default(),
            tier: None,
            #[cfg(feature = "spill")]
            spill: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The engine's counters (entries, weight in bytes, hits, evictions).
    pub fn stats(&self) -> strata::Stats {
        self.shared.store.stats()
    }

    /// What the layer did with its [second tier](CacheLayerBuilder::second_tier);
    /// `None` without one.
    #[must_use]
    pub fn second_tier_stats(&self) -> Option<crate::SecondTierStats> {
        self.shared.tier.as_ref().map(crate::tier::Tier::stats)
    }

    /// Writes what memory holds to the spill directory and saves the
    /// admission state (feature `spill`; the layer does this when its last
    /// clone is dropped too).
    ///
    /// # Errors
    ///
    /// The spill tier's I/O error.
    #[cfg(feature = "spill")]
    pub fn persist(&self) -> Result<(), strata::spill::SpillError> {
        self.shared.store.persist()
    }

    /// Drops every stored response from this layer's memory (a second
    /// tier keeps its copies; see [`invalidate_prefix`](Self::invalidate_prefix)).
    pub fn clear(&self) {
        self.shared.store.clear();
        if let Some(partials) = &self.shared.partials {
            partials.clear();
        }
    }

    /// Drops the stored responses of the resource `key` names (see
    /// [`KeyExtractor::key`](crate::KeyExtractor::key)); true if there were
    /// any in memory.
    ///
    /// With a [second tier](CacheLayerBuilder::second_tier), the key is
    /// deleted there too, in the background; until that is done, misses
    /// in memory do not read the tier, so the old response cannot come
    /// back from it. The same holds for tags and prefixes below.
    pub fn invalidate(&self, key: &str) -> bool {
        crate::tier::purge(&self.shared, crate::tier::Purge::Key(key.to_owned()));
        let partial = self
            .shared
            .partials
            .as_ref()
            .and_then(|p| p.head(key))
            .is_some();
        if let Some(partials) = &self.shared.partials {
            partials.remove(key);
        }
        self.shared.store.remove(key).is_some() || partial
    }

    /// Drops the stored responses of every resource whose key (see
    /// [`KeyExtractor::key`](crate::KeyExtractor::key)) starts with
    /// `prefix`, e.g. `example.com/api/`; returns how many resources were
    /// in memory. A second tier walks its keyspace for them in the
    /// background (for Redis, `SCAN` on every master).
    pub fn invalidate_prefix(&self, prefix: &str) -> usize {
        crate::tier::purge(&self.shared, crate::tier::Purge::Prefix(prefix.to_owned()));
        let mut dropped = 0;
        self.shared.store.retain(|key, _| {
            let keep = !key.starts_with(prefix);
            dropped += usize::from(!keep);
            keep
        });
        if let Some(partials) = &self.shared.partials {
            partials.retain_heads(|key| !key.starts_with(prefix));
        }
        dropped
    }

    /// Drops every stored response tagged `tag` (see
    /// [`CacheLayerBuilder::tags`]); returns how many resources were in
    /// memory. A second tier drops the keys stored with the tag.
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        crate::tier::purge(&self.shared, crate::tier::Purge::Tag(tag.to_owned()));
        self.shared.store.invalidate_tag(tag)
    }
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S> tower_layer::Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The builder's second tier (opaque in `Debug`) and its breaker's
/// settings: failures in a row, cool-down.
#[derive(Clone)]
struct TierHandle(Arc<dyn crate::tier::DynTier>, u32, Duration);

impl fmt::Debug for TierHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecondTier(..)")
    }
}

/// Builds a [`CacheLayer`].
#[must_use]
#[derive(Clone, Debug)]
pub struct CacheLayerBuilder {
    config: Config,
    tier: Option<TierHandle>,
    #[cfg(feature = "spill")]
    spill: Option<strata::spill::SpillConfig>,
}

impl CacheLayerBuilder {
    /// Bytes of responses held in memory. Default 64 MiB.
    pub fn max_capacity(mut self, bytes: u64) -> Self {
        self.config.max_capacity = bytes;
        self
    }

    /// Behave as a private (single-user) cache: `private` responses are
    /// stored, `s-maxage` is ignored. Default: shared.
    pub fn private(mut self) -> Self {
        self.config.shared = false;
        self
    }

    /// Bodies larger than this stream through unstored. Default 8 MiB
    /// (lowered to what one entry of the store may weigh).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config.max_body_size = bytes;
        self
    }

    /// Media types that are never stored and stream straight through
    /// (`type/subtype`, or `type/*` such as `video/*`; case-insensitive,
    /// parameters ignored), checked from `Content-Type` before any byte of
    /// the body is read. Default none.
    ///
    /// ```
    /// let layer = strata_tower::CacheLayer::builder()
    ///     .excluded_content_types(["video/*", "audio/*", "application/zip"])
    ///     .build()?;
    /// assert_eq!(layer.config().excluded_content_types.len(), 3);
    /// # Ok::<(), strata::ConfigError>(())
    /// ```
    pub fn excluded_content_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.config.excluded_content_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Revalidate responses read at least `config.min_hits_per_minute`
    /// times a minute in the background once they near expiry (feature
    /// `auto-refresh`); start it with [`CacheLayer::init_auto_refresh`].
    /// Default off.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    /// use strata_tower::{AutoRefresh, CacheLayer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let origin = tower::service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, Infallible>(http::Response::new(String::from("hi")))
    /// });
    /// let layer = CacheLayer::builder()
    ///     .auto_refresh(
    ///         AutoRefresh::default()
    ///             .min_hits_per_minute(30.0)
    ///             .check_interval(Duration::from_secs(5))
    ///             .max_concurrent(4),
    ///     )
    ///     .build()?;
    /// layer.init_auto_refresh(origin.clone())?;
    /// let service = tower::Layer::layer(&layer, origin);
    /// # let _ = service;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "auto-refresh")]
    pub fn auto_refresh(mut self, config: crate::AutoRefresh) -> Self {
        self.config.auto_refresh = Some(config);
        self
    }

    /// Keep bodies of at least `bytes` bytes compressed in the store (gzip
    /// unless [`compression`](Self::compression) says otherwise) when their
    /// media type is textual (`text/*`, JSON, XML, JavaScript, SVG), they
    /// carry no `Content-Encoding`, and compression saves at least an
    /// eighth (feature `compression`). Default off.
    ///
    /// A hit is sent compressed, with `Content-Encoding: gzip` (or `zstd`)
    /// and a weak `ETag`, when the client takes that coding and the
    /// response varies on `Accept-Encoding` (so no downstream cache can
    /// hand it to a client that does not); otherwise, and for ranges, it is
    /// decompressed and the client gets the body as the origin sent it.
    ///
    /// ```
    /// // JSON and HTML bodies of 1 KiB or more take about a seventh of the
    /// // memory (see benches/RESULTS.md); hits for clients that take gzip
    /// // send the stored bytes, others decompress them.
    /// let layer = strata_tower::CacheLayer::builder()
    ///     .max_capacity(256 << 20)
    ///     .compress_above(1024)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), strata::ConfigError>(())
    /// ```
    #[cfg(feature = "compression")]
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.config.compress_above = Some(bytes);
        self
    }

    /// How [`compress_above`](Self::compress_above) compresses: gzip (the
    /// default; every client takes it as such), or zstd (feature
    /// `compression-zstd`: smaller and faster to decompress, taken as such
    /// by current browsers; other clients' hits are decompressed).
    ///
    /// ```
    /// # #[cfg(feature = "compression-zstd")] {
    /// let layer = strata_tower::CacheLayer::builder()
    ///     .compress_above(1024)
    ///     .compression(strata_tower::Compression::Zstd)
    ///     .build()?;
    /// # let _ = layer;
    /// # }
    /// # Ok::<(), strata::ConfigError>(())
    /// ```
    #[cfg(feature = "compression")]
    pub fn compression(mut self, compression: crate::Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// A second tier under the store, e.g. `strata_redis::RedisTier`:
    /// resources missing from memory are looked up there before going
    /// upstream, stored responses are written there in the background,
    /// invalidations by this layer delete there, and writes by other
    /// instances (as the tier reports them) leave this layer's memory. The
    /// tier bounds its own calls; a failing tier is a miss. Needs a
    /// [`spawner`](Self::spawner) (without one, `build` returns
    /// [`ConfigError::NoSpawner`]). Tags go to the tier with each stored
    /// response; invalidation by key, tag or prefix reaches it. Default
    /// none.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = strata_redis::RedisTier::builder("redis://127.0.0.1:6379")
    ///     .namespace("http")
    ///     .connect_lazy()?;
    /// let layer = strata_tower::CacheLayer::builder()
    ///     .max_capacity(256 << 20)
    ///     .spawner(|task| { tokio::spawn(task); })
    ///     .second_tier(redis)
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn second_tier<T: strata::tiered::SecondTier>(mut self, tier: T) -> Self {
        self.tier = Some(TierHandle(Arc::new(tier), 5, Duration::from_secs(1)));
        self
    }

    /// The [second tier](Self::second_tier)'s circuit breaker: after
    /// `failures` reads, writes or invalidations in a row that timed out or
    /// found the tier unreachable, memory misses stop reading it for
    /// `cooldown` (then one probes), so a dead tier costs requests nothing.
    /// Writes and invalidations, in the background, are still tried.
    /// Default 5 failures, 1 s. Set it after `second_tier`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let redis = strata_redis::RedisTier::builder("redis://127.0.0.1:6379").connect_lazy()?;
    /// let layer = strata_tower::CacheLayer::builder()
    ///     .spawner(|task| { tokio::spawn(task); })
    ///     .second_tier(redis)
    ///     .second_tier_breaker(3, std::time::Duration::from_secs(5))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn second_tier_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        if let Some(handle) = &mut self.tier {
            handle.1 = failures;
            handle.2 = cooldown;
        }
        self
    }

    /// One structured event per cache decision (JSON schema in
    /// [`events`](crate::events)), sampled, to a sink of your choice.
    /// Default none.
    ///
    /// ```
    /// use strata_tower::{CacheLayer, EventLog};
    ///
    /// let layer = CacheLayer::builder()
    ///     .event_log(
    ///         EventLog::new(|event| println!("{}", event.to_json()))
    ///             .sample_rate(0.01)
    ///             .hash_keys(true),
    ///     )
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), strata::ConfigError>(())
    /// ```
    pub fn event_log(mut self, log: crate::EventLog) -> Self {
        self.config.event_log = Some(log);
        self
    }

    /// Bodies smaller than this are not stored. Default 0.
    pub fn min_body_size(mut self, bytes: usize) -> Self {
        self.config.min_body_size = bytes;
        self
    }

    /// Freshness for responses without explicit freshness. Default none.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// Freshness for 4xx/5xx responses without explicit freshness.
    /// Default none.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = Some(ttl);
        self
    }

    /// Whether response `Cache-Control` is obeyed. Default true.
    pub fn respect_cache_control(mut self, yes: bool) -> Self {
        self.config.respect_cache_control = yes;
        self
    }

    /// Store only these response headers (plus those caching needs).
    pub fn header_allowlist(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.config.header_allowlist = Some(names.into_iter().collect());
        self
    }

    /// How resources are named. Default [`KeyExtractor::PathAndQuery`].
    pub fn key(mut self, key: KeyExtractor) -> Self {
        self.config.key = key;
        self
    }

    /// Keep `206` responses in part, in chunks of `chunk_size` bytes
    /// (`None`: do not store them); see [`Config::partial_chunk_size`].
    /// Default 64 KiB.
    pub fn partial_content(mut self, chunk_size: Option<u32>) -> Self {
        self.config.partial_chunk_size = chunk_size;
        self
    }

    /// Store responses without a `Content-Length` too. Default false.
    pub fn buffer_unsized(mut self, yes: bool) -> Self {
        self.config.buffer_unsized = yes;
        self
    }

    /// The targeted cache-control fields obeyed before `Cache-Control`
    /// (see [`Config::targeted`]). Default `CDN-Cache-Control`,
    /// `Surrogate-Control`.
    pub fn targeted(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.config.targeted = names.into_iter().collect();
        self
    }

    /// Serve a stale response when revalidation fails (see
    /// [`Config::stale_on_error`]). Default false.
    pub fn stale_on_error(mut self, yes: bool) -> Self {
        self.config.stale_on_error = yes;
        self
    }

    /// Serve responses up to `window` past their freshness at once while
    /// one background request revalidates them (a response's own
    /// `stale-while-revalidate` wins). Needs a [`spawner`](Self::spawner).
    /// Default none.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = Some(window);
        self
    }

    /// Revalidate a fresh response in the background once it has at most
    /// `window` of freshness left, answering from it meanwhile. Needs a
    /// [`spawner`](Self::spawner). Default none.
    pub fn refresh_before(mut self, window: Duration) -> Self {
        self.config.refresh_before = Some(window);
        self
    }

    /// How to run background revalidations, e.g.
    /// `.spawner(|task| { tokio::spawn(task); })`. Without one, stale
    /// responses are revalidated before they are answered. Default none.
    pub fn spawner(mut self, spawn: impl Fn(BackgroundTask) + Send + Sync + 'static) -> Self {
        self.config.spawner = Some(Spawner(Arc::new(spawn)));
        self
    }

    /// Store only responses with these statuses. Default: any status RFC
    /// 9111 allows.
    pub fn cacheable_statuses(
        mut self,
        statuses: impl IntoIterator<Item = http::StatusCode>,
    ) -> Self {
        self.config.cacheable_statuses = Some(statuses.into_iter().collect());
        self
    }

    /// Cache only requests whose method `f` accepts; the others go
    /// upstream untouched, labelled `fwd=bypass`. It narrows the default
    /// (`GET` and `HEAD`): other methods are never cached, and unsafe ones
    /// (`POST`, `PUT`, `DELETE`, …) still invalidate what they may change
    /// whatever `f` says. Default: `GET` and `HEAD`.
    ///
    /// ```
    /// # use strata_tower::CacheLayer;
    /// // Answer HEAD upstream, never from the store.
    /// let layer = CacheLayer::builder()
    ///     .method_predicate(|method| method == http::Method::GET)
    ///     .build()?;
    /// assert!(!layer.config().methods.caches(&http::Method::HEAD));
    /// assert!(layer.config().methods.caches(&http::Method::GET));
    /// # Ok::<(), strata::ConfigError>(())
    /// ```
    pub fn method_predicate(mut self, f: impl Fn(&Method) -> bool + Send + Sync + 'static) -> Self {
        self.config.methods = MethodPredicate::new(f);
        self
    }

    /// Cache only requests with these methods (among `GET` and `HEAD`); a
    /// list form of [`method_predicate`](Self::method_predicate). Default:
    /// `GET` and `HEAD`.
    pub fn methods(self, methods: impl IntoIterator<Item = Method>) -> Self {
        let methods: Vec<Method> = methods.into_iter().collect();
        self.method_predicate(move |method| methods.contains(method))
    }

    /// Tags each stored response with `f(key, response_headers)`, so that
    /// [`CacheLayer::invalidate_tag`] can drop every response with a tag.
    /// Default none.
    pub fn tags(
        mut self,
        f: impl Fn(&str, &http::HeaderMap) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.config.tags = Some(TagExtractor(Arc::new(f)));
        self
    }

    /// Tags each stored response with the comma-separated values of its
    /// response header `name` (as CDNs read `Cache-Tag` or `Surrogate-Key`).
    pub fn tags_from_header(self, name: HeaderName) -> Self {
        self.tags(move |_key, headers| {
            headers
                .get_all(&name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split([',', ' ']))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// This cache's `Surrogate-Control` device token (see
    /// [`Config::surrogate_token`]); `None` to neither advertise nor obey
    /// targeted directives. Default `strata`.
    pub fn surrogate_token(mut self, token: Option<String>) -> Self {
        self.config.surrogate_token = token;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Keeps stored responses on local disk too (feature `spill`): every
    /// stored response is written through to memory-mapped segment files
    /// under `config.dir`, responses evicted from memory are read back
    /// from there, and a layer built again on the same directory (after a
    /// restart, or a crash) finds them, with their age counted from when
    /// they arrived. Responses stored with tags stay in memory only.
    /// Default: memory only.
    #[cfg(feature = "spill")]
    pub fn spill(mut self, config: strata::spill::SpillConfig) -> Self {
        self.spill = Some(config.write_on_insert(true));
        self
    }

    /// Builds the layer and its store.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a capacity of zero or beyond the engine's, or
    /// (feature `spill`) a spill directory that cannot be opened.
    pub fn build(self) -> Result<CacheLayer, ConfigError> {
        let mut config = self.config;
        let store = Cache::builder().max_capacity(config.max_capacity).weigher(
            |_key: &String, variants: &Variants| {
                let bytes: usize = variants.iter().map(|s| s.weight()).sum();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            },
        );
        #[cfg(feature = "metrics")]
        let store = store.eviction_listener(
            |_key: String, _value: Variants, cause: strata::RemovalCause| {
                if cause.was_evicted() {
                    crate::telemetry::evicted();
                }
            },
        );
        #[cfg(feature = "spill")]
        let store = match self.spill {
            Some(spill) => store.spill(spill),
            None => store,
        };
        let store: Cache<String, Variants> = store.build()?;
        let partials = match config.partial_chunk_size {
            Some(chunk) => Some(Partials::new(
                (config.max_capacity / 4).max(1 << 20),
                chunk,
            )?),
            None => None,
        };
        let per_entry = config.max_capacity / store.shard_count() as u64;
        config.max_body_size = config
            .max_body_size
            .min(usize::try_from(per_entry / 2).unwrap_or(usize::MAX));
        if self.tier.is_some() && config.spawner.is_none() {
            // Tier writes and deletes run in the background.
            return Err(ConfigError::NoSpawner);
        }
        let layer = CacheLayer {
            shared: Arc::new(Shared {
                surrogate_capability: config.surrogate_token.as_ref().and_then(|token| {
                    http::HeaderValue::from_str(&format!("{token}=\"Surrogate/1.0\"")).ok()
                }),
                partials,
                tier: self.tier.map(|TierHandle(tier, failures, cooldown)| {
                    crate::tier::Tier::new(tier, CircuitBreaker::new(failures, cooldown))
                }),
                #[cfg(feature = "auto-refresh")]
                refresher: match config.auto_refresh {
                    Some(auto) => Some(crate::refresh::Refresher::new(auto)?),
                    None => None,
                },
                config,
                store,
                flights: Arc::default(),
            }),
        };
        crate::tier::Tier::attach(&layer.shared);
        Ok(layer)
    }
}
