//! [`CacheService`]: the request path. Safe requests are answered from the
//! store when RFC 9111 allows, revalidated upstream with the stored
//! validators when it does not, and forwarded on a miss; unsafe requests
//! go through and invalidate what they may have changed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use crate::body::{BoxError, CacheBody, Sink};
use crate::entry::{self, HeadCheck, Stored};
use crate::events;
use crate::flight::{Guard, Joined, Wait};
use crate::key::{self, VaryKey};
use crate::layer::Shared;
use crate::partial;
use crate::policy::freshness::{Storable, Timing};
use crate::policy::Directives;
use crate::range;
use crate::telemetry;

/// Caches the responses of `S`; made by [`CacheLayer`](crate::CacheLayer).
pub struct CacheService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for CacheService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService").finish_non_exhaustive()
    }
}

impl<S> CacheService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The future of [`CacheService::call`].
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send + 'static>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for CacheService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let shared = Arc::clone(&self.shared);
        #[cfg(feature = "tracing")]
        let span = tracing::debug_span!(
            "strata_tower.request",
            method = %request.method(),
            path = request.uri().path(),
        );
        let logged = shared
            .config
            .event_log
            .as_ref()
            .filter(|log| log.sampled())
            .map(|log| {
                let key = shared.config.key.key(&request).unwrap_or_default();
                let id = events::request_id(request.headers());
                let tags = shared.config.tags.clone();
                (log.clone(), key, id, tags, std::time::Instant::now())
            });
        let future = handle(shared, inner, request);
        #[cfg(any(feature = "metrics", feature = "tracing"))]
        let future = async move {
            let result = future.await;
            if let Ok(response) = &result {
                telemetry::responded(response.headers());
            }
            result
        };
        #[cfg(feature = "tracing")]
        let future = tracing::Instrument::instrument(future, span);
        let Some((log, key, id, tags, started)) = logged else {
            return Box::pin(future);
        };
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                let tags = tags
                    .map(|extract| (extract.0)(&key, response.headers()))
                    .unwrap_or_default();
                let took = started.elapsed();
                let status = response.status().as_u16();
                log.emit(id, &key, took, response.headers(), status, tags);
            }
            result
        })
    }
}

const CONDITIONALS: [HeaderName; 2] = [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE];

async fn handle<S, ReqB, ResB>(
    shared: Arc<Shared>,
    mut inner: S,
    mut request: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let config = &shared.config;
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let authority = key::authority(request.uri(), request.headers());
        let target = config.key.key(&request);
        let response = fetch(&mut inner, upstream(&shared, request)).await?;
        let unsafe_method = !matches!(method, Method::OPTIONS | Method::TRACE);
        let status = response.status();
        if unsafe_method && (status.is_success() || status.is_redirection()) {
            invalidate(&shared, &authority, target, response.headers());
        }
        return Ok(forwarded(response, "fwd=method"));
    }
    let key = if config.methods.caches(&method) {
        config.key.key(&request)
    } else {
        None
    };
    let Some(key) = key else {
        let response = fetch(&mut inner, upstream(&shared, request)).await?;
        return Ok(forwarded(response, "fwd=bypass"));
    };
    let request_directives = Directives::from_headers(request.headers(), true);
    let now = SystemTime::now();
    let select = |variants: &Option<entry::Variants>, headers: &HeaderMap| {
        variants
            .as_ref()
            .and_then(|v| v.iter().find(|s| s.vary.matches(headers)).cloned())
    };
    let mut variants = shared.store.get(&key);
    if variants.is_none() && shared.tier.is_some() && !request_directives.no_store {
        variants = crate::tier::read(&shared, &key).await;
    }
    let mut stored = select(&variants, request.headers());
    let mut guard = None;
    let mut collapsed = "";
    if stored.is_none()
        && method == Method::GET
        && !request_directives.no_store
        && !request_directives.only_if_cached
    {
        // Concurrent misses of one resource make one upstream request.
        match shared.flights.join(&key) {
            Joined::Lead(lead) => guard = Some(lead),
            Joined::Wait(flight) => {
                Wait(flight).await;
                collapsed = "; collapsed";
                variants = shared.store.get(&key);
                stored = select(&variants, request.headers());
            }
        }
    }
    let reply = Reply {
        method: &method,
        // Whether a response stored compressed may go out as such.
        packed_ok: stored
            .as_ref()
            .and_then(|s| s.packed)
            .is_some_and(|packed| key::accepts_coding(request.headers(), packed.coding.token())),
    };
    let mut detail = match (&variants, &stored) {
        (None, _) => "fwd=uri-miss",
        (Some(_), None) => "fwd=vary-miss",
        (Some(_), Some(_)) => "fwd=stale",
    };
    if let Some(stored) = &stored {
        let age = stored.age(now);
        let lifetime = stored.lifetime();
        let remaining = lifetime.map_or(-1, |l| l as i128 - age as i128);
        let fresh = remaining > 0
            && request_directives.max_age.is_none_or(|max| age <= max)
            && request_directives
                .min_fresh
                .is_none_or(|min| remaining >= i128::from(min));
        let revalidate = request_directives.no_cache
            || (config.respect_cache_control && stored.directives.no_cache);
        if !revalidate && fresh {
            #[cfg(feature = "auto-refresh")]
            if let Some(refresher) = &shared.refresher {
                refresher.hit(&key, request.uri(), request.headers());
            }
            let status = format!("hit; ttl={remaining}{collapsed}");
            let due = config
                .refresh_before
                .is_some_and(|before| remaining <= i128::from(before.as_secs()));
            if let (true, Some(spawner), true) = (due, &config.spawner, method == Method::GET) {
                // Fresh, but about to expire: answer now and revalidate
                // once in the background, so hot entries never go stale.
                if let Some(revalidation) =
                    Revalidation::lead(&shared, stored, key, request_directives)
                {
                    let client_headers = revalidation.start(spawner, inner, request);
                    let status = format!("{status}; detail=refreshing");
                    return Ok(reply.serve(stored, age, &client_headers, &status));
                }
            }
            return Ok(reply.serve(stored, age, request.headers(), &status));
        }
        let may_serve_stale = !revalidate
            && lifetime.is_some()
            && !stored.directives.must_revalidate
            && !(config.shared
                && (stored.directives.proxy_revalidate || stored.directives.s_maxage.is_some()))
            && request_directives
                .max_stale
                .is_some_and(|max| -remaining <= i128::from(max));
        if may_serve_stale {
            return Ok(reply.serve(stored, age, request.headers(), "hit; stale"));
        }
        let window = stored
            .directives
            .stale_while_revalidate
            .or(config.stale_while_revalidate.map(|w| w.as_secs()));
        let in_window = !revalidate
            && method == Method::GET
            && lifetime.is_some()
            && !stored.directives.must_revalidate
            && window.is_some_and(|w| -remaining <= i128::from(w));
        if let (true, Some(spawner)) = (in_window, &config.spawner) {
            // Answer now; one background request revalidates (RFC 5861).
            if let Some(revalidation) = Revalidation::lead(&shared, stored, key, request_directives)
            {
                let client_headers = revalidation.start(spawner, inner, request);
                return Ok(reply.serve(
                    stored,
                    age,
                    &client_headers,
                    "hit; stale; detail=revalidating",
                ));
            }
            // One is running already.
            return Ok(reply.serve(stored, age, request.headers(), "hit; stale"));
        }
        if request_directives.no_cache {
            detail = "fwd=request";
        }
    }
    if request_directives.only_if_cached {
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        set_cache_status(response.headers_mut(), "fwd=miss; detail=only-if-cached");
        return Ok(response);
    }
    let request_headers = request.headers().clone();
    if stored.is_none() && method == Method::GET && !request_directives.no_cache {
        match partial::lookup(&shared, &key, &request_headers, &request_directives, now) {
            None => {}
            Some(partial::Lookup::Answer(response)) => return Ok(response),
            Some(partial::Lookup::Fill(fill)) => {
                fill.prepare(request.headers_mut());
                let request_time = SystemTime::now();
                let response = fetch(&mut inner, upstream(&shared, request)).await?;
                let timing = Timing {
                    request_time,
                    response_time: SystemTime::now(),
                };
                let response = match fill.complete(&shared, &key, response).await {
                    Ok(answer) => return Ok(answer),
                    Err(response) => response,
                };
                let outcome = Outcome {
                    key,
                    method: &method,
                    request: &request_headers,
                    request_directives: &request_directives,
                    timing,
                    detail: format!("{detail}; detail=partial-changed"),
                    guard,
                };
                return Ok(finish(&shared, outcome, response));
            }
        }
    }
    let mut client_conditionals = None;
    if let Some(stored) = stored.as_ref().filter(|s| s.has_validator()) {
        // Revalidate with our validators; the client's own conditionals are
        // answered here from whatever we end up serving.
        let headers = request.headers_mut();
        let mut saved = HeaderMap::new();
        for name in CONDITIONALS {
            if let Some(value) = headers.remove(&name) {
                saved.insert(name, value);
            }
        }
        client_conditionals = Some(saved);
        if let Some(etag) = stored.headers.get(header::ETAG) {
            headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = stored.headers.get(header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
        }
    }
    let request_time = SystemTime::now();
    let response = fetch(&mut inner, upstream(&shared, request)).await?;
    let timing = Timing {
        request_time,
        response_time: SystemTime::now(),
    };
    if let (Some(stored), StatusCode::NOT_MODIFIED, Some(conditionals)) =
        (&stored, response.status(), &client_conditionals)
    {
        let refreshed = refresh(&shared, key, stored, response.headers(), timing);
        let age = refreshed.age(SystemTime::now());
        return Ok(reply.serve(&refreshed, age, conditionals, "fwd=stale; fwd-status=304"));
    }
    if let (Some(stored), true) = (
        &stored,
        method == Method::HEAD && response.status() == StatusCode::OK,
    ) {
        // A HEAD's 200 updates the stored GET response it describes, or
        // shows it outdated (RFC 9111 §4.3.5); it is never stored itself.
        match stored.compare_head(response.headers()) {
            HeadCheck::Same => {
                let refreshed = refresh(&shared, key, stored, response.headers(), timing);
                let age = refreshed.age(SystemTime::now());
                let conditionals = client_conditionals.as_ref().unwrap_or(&request_headers);
                let detail = format!("{detail}; fwd-status=200");
                return Ok(reply.serve(&refreshed, age, conditionals, &detail));
            }
            HeadCheck::Changed => drop_variant(&shared, &key, &stored.vary),
            HeadCheck::Unknown => {}
        }
    }
    if let (Some(stored), true) = (&stored, response.status().is_server_error()) {
        // Upstream failed: a stale response may stand in (§4.2.4).
        let forbidden = stored.directives.must_revalidate
            || stored.directives.no_cache
            || (config.shared
                && (stored.directives.proxy_revalidate || stored.directives.s_maxage.is_some()));
        let was_fresh = stored.lifetime().is_some() && !stored.status.is_server_error();
        if config.stale_on_error && was_fresh && !forbidden && method == Method::GET {
            let age = stored.age(SystemTime::now());
            let conditionals = client_conditionals.as_ref().unwrap_or(&request_headers);
            let detail = format!("hit; stale; fwd-status={}", response.status().as_u16());
            return Ok(reply.serve(stored, age, conditionals, &detail));
        }
    }
    let detail = if client_conditionals.is_some() {
        format!("{detail}; fwd-status={}", response.status().as_u16())
    } else if detail == "fwd=stale" {
        "fwd=stale".to_owned()
    } else {
        detail.to_owned()
    };
    let outcome = Outcome {
        key,
        method: &method,
        request: &request_headers,
        request_directives: &request_directives,
        timing,
        detail,
        guard,
    };
    Ok(finish(&shared, outcome, response))
}

/// Sends `request` upstream: timed, and in a span under `tracing`.
async fn fetch<S, ReqB, ResB>(
    inner: &mut S,
    request: Request<ReqB>,
) -> Result<Response<ResB>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    let started = std::time::Instant::now();
    let call = inner.call(request);
    #[cfg(feature = "tracing")]
    let call = tracing::Instrument::instrument(call, tracing::debug_span!("strata_tower.upstream"));
    let result = call.await;
    telemetry::upstream("origin", started.elapsed(), result.is_ok());
    result
}

/// `request` as it goes upstream: with this cache's
/// `Surrogate-Capability` appended (only requests that leave the cache
/// carry it; a hit costs nothing).
fn upstream<B>(shared: &Shared, mut request: Request<B>) -> Request<B> {
    if let Some(capability) = &shared.surrogate_capability {
        request.headers_mut().append(
            HeaderName::from_static("surrogate-capability"),
            capability.clone(),
        );
    }
    request
}

/// Revalidates `stored` with `request` (the one that found it stale,
/// answered already): a 304 refreshes it, a new response replaces it.
/// A background revalidation of a stored response: at most one per
/// resource at a time (refresh-before, stale-while-revalidate and
/// auto-refresh share its flight).
pub(crate) struct Revalidation {
    shared: Arc<Shared>,
    stored: Arc<Stored>,
    key: String,
    directives: Directives,
    guard: Guard,
}

impl Revalidation {
    /// Leads the revalidation of `key`, unless one is running already.
    pub(crate) fn lead(
        shared: &Arc<Shared>,
        stored: &Arc<Stored>,
        key: String,
        directives: Directives,
    ) -> Option<Self> {
        let Joined::Lead(guard) = shared.flights.join(&format!("{key}\0revalidate")) else {
            return None;
        };
        Some(Self {
            shared: Arc::clone(shared),
            stored: Arc::clone(stored),
            key,
            directives,
            guard,
        })
    }

    /// Hands the revalidation to `spawner`; returns the client's request
    /// headers (the request itself goes upstream).
    fn start<S, ReqB, ResB>(
        self,
        spawner: &crate::layer::Spawner,
        inner: S,
        request: Request<ReqB>,
    ) -> HeaderMap
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        ReqB: Send + 'static,
        ResB: Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let client_headers = request.headers().clone();
        (spawner.0)(Box::pin(self.run(inner, request)));
        client_headers
    }

    /// Sends `request` upstream with the stored validators and stores the
    /// answer: a 304 refreshes the stored response, anything else replaces
    /// it (or not, as for any response).
    pub(crate) async fn run<S, ReqB, ResB>(self, mut inner: S, mut request: Request<ReqB>)
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        let Self {
            shared,
            stored,
            key,
            directives,
            guard,
        } = self;
        let _guard = guard;
        let headers = request.headers_mut();
        for name in CONDITIONALS {
            headers.remove(&name);
        }
        if let Some(etag) = stored.headers.get(header::ETAG) {
            headers.insert(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = stored.headers.get(header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
        }
        let request_headers = request.headers().clone();
        let request_time = SystemTime::now();
        let Ok(response) = fetch(&mut inner, upstream(&shared, request)).await else {
            telemetry::revalidated("failed");
            return;
        };
        let timing = Timing {
            request_time,
            response_time: SystemTime::now(),
        };
        if response.status() == StatusCode::NOT_MODIFIED {
            refresh(&shared, key, &stored, response.headers(), timing);
            telemetry::revalidated("not_modified");
            return;
        }
        telemetry::revalidated(if response.status().is_server_error() {
            "failed"
        } else {
            "replaced"
        });
        let outcome = Outcome {
            key,
            method: &Method::GET,
            request: &request_headers,
            request_directives: &directives,
            timing,
            detail: String::new(),
            guard: None,
        };
        // Reading the body to its end stores it (or not, as for any response).
        let _ = finish(&shared, outcome, response)
            .into_body()
            .collect()
            .await;
    }
}

/// What a forwarded GET/HEAD needs to decide whether to store.
struct Outcome<'a> {
    key: String,
    method: &'a Method,
    request: &'a HeaderMap,
    request_directives: &'a Directives,
    timing: Timing,
    detail: String,
    /// Leading a flight: dropped once the response is stored (or will not
    /// be), which lets the requests waiting on it go on.
    guard: Option<Guard>,
}

/// A forwarded response, streamed to the client as it arrives; if it may
/// be stored, a copy is kept on the way and stored once the body has
/// ended within `max_body_size` (never buffered before the client gets it).
fn finish<B>(
    shared: &Arc<Shared>,
    outcome: Outcome<'_>,
    response: Response<B>,
) -> Response<CacheBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let config = &shared.config;
    let status = response.status();
    let directives = Directives::for_response(
        response.headers(),
        &config.targeted,
        config.surrogate_token.as_deref(),
    );
    let negative = status.is_client_error() || status.is_server_error();
    let fallback = if negative {
        config.negative_ttl.or(config.ttl)
    } else {
        config.ttl
    }
    .map(|d| d.as_secs());
    let storable = Storable {
        method: outcome.method,
        request: outcome.request,
        request_directives: outcome.request_directives,
        status,
        response: response.headers(),
        response_directives: &directives,
        shared: config.shared,
        assume_fresh: fallback.is_some(),
    }
    .check();
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact());
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim_start().starts_with("text/event-stream")
                || excluded(&config.excluded_content_types, t)
        });
    let fits = match length {
        Some(len) => len <= config.max_body_size as u64 && len >= config.min_body_size as u64,
        None => config.buffer_unsized,
    };
    let status_allowed = config
        .cacheable_statuses
        .as_ref()
        .is_none_or(|allowed| allowed.contains(&status));
    if status == StatusCode::PARTIAL_CONTENT {
        return keep_partial(shared, outcome, response, directives, fallback);
    }
    if !storable || !fits || streamed || !status_allowed {
        return forwarded(response, &outcome.detail);
    }
    let tags = config
        .tags
        .as_ref()
        .map(|extract| (extract.0)(&outcome.key, response.headers()))
        .unwrap_or_default();
    let (parts, body) = response.into_parts();
    let template = Stored {
        status,
        headers: entry::storable_headers(
            &parts.headers,
            config.header_allowlist.as_deref(),
            &omitted(&directives, config.shared),
        ),
        body: Bytes::new(),
        timing: outcome.timing,
        vary: VaryKey::new(&parts.headers, outcome.request),
        directives,
        fallback,
        override_cc: !config.respect_cache_control,
        initial_age: None,
        lifetime: None,
        packed: None,
    };
    #[cfg(feature = "compression")]
    let compress_above = config.compress_above.filter(|_| {
        !parts.headers.contains_key(header::CONTENT_ENCODING)
            && crate::compress::compressible(
                parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
            )
    });
    #[cfg(feature = "compression")]
    let compression = config.compression;
    let key = outcome.key;
    let shared_mode = config.shared;
    let store = Arc::clone(shared);
    let min = config.min_body_size;
    let guard = outcome.guard;
    let sink: Sink = Box::new(move |bytes: Bytes| {
        // Waiters go on once this returns (the entry is in the store).
        let _guard = guard;
        if bytes.len() < min {
            return;
        }
        #[cfg(feature = "compression")]
        let (bytes, packed) = match compress_above
            .filter(|&above| bytes.len() >= above)
            .and_then(|_| crate::compress::pack(compression, &bytes))
        {
            Some((packed, meta)) => (packed, Some(meta)),
            None => (bytes, None),
        };
        #[cfg(not(feature = "compression"))]
        let packed = None;
        let stored = Stored {
            body: bytes,
            packed,
            ..template
        }
        .derive(shared_mode);
        let updated = entry::with_variant(store.store.peek(&key).as_ref(), Arc::new(stored));
        crate::tier::write(&store, &key, &updated, &tags);
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let _ = store.store.insert_with_tags(key, updated, &tags);
    });
    let body = if length == Some(0) {
        // Nothing to wait for (a 204, say, whose body nobody polls).
        sink(Bytes::new());
        CacheBody::stream(body)
    } else {
        CacheBody::tee(body, config.max_body_size, length, sink)
    };
    let mut response = Response::from_parts(parts, body);
    set_cache_status(
        response.headers_mut(),
        &format!("{}; stored", outcome.detail),
    );
    response
}

/// A 206 passes through to the client and, when it may be stored, its
/// whole chunks are kept in the partial store (see [`partial`]).
fn keep_partial<B>(
    shared: &Arc<Shared>,
    outcome: Outcome<'_>,
    response: Response<B>,
    directives: Directives,
    fallback: Option<u64>,
) -> Response<CacheBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let config = &shared.config;
    let headers = response.headers();
    // A 206 may be stored when the complete response could be (§3.3).
    let storable = Storable {
        method: outcome.method,
        request: outcome.request,
        request_directives: outcome.request_directives,
        status: StatusCode::OK,
        response: headers,
        response_directives: &directives,
        shared: config.shared,
        assume_fresh: fallback.is_some(),
    }
    .check();
    let excluded_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| excluded(&config.excluded_content_types, t));
    let (Some(_), Some((range, len)), Some(version), true, false) = (
        &shared.partials,
        partial::content_range(headers),
        partial::version(headers),
        storable,
        headers.contains_key(header::VARY) || excluded_type,
    ) else {
        return forwarded(response, &outcome.detail);
    };
    let mut head_fields = entry::storable_headers(
        headers,
        config.header_allowlist.as_deref(),
        &omitted(&directives, config.shared),
    );
    head_fields.remove(header::CONTENT_RANGE);
    head_fields.remove(header::CONTENT_LENGTH);
    let head = Stored {
        status: StatusCode::PARTIAL_CONTENT,
        headers: head_fields,
        body: Bytes::new(),
        timing: outcome.timing,
        vary: VaryKey::new(&HeaderMap::new(), outcome.request),
        directives,
        fallback,
        override_cc: !config.respect_cache_control,
        initial_age: None,
        lifetime: None,
        packed: None,
    }
    .derive(config.shared);
    let expected = range.end - range.start;
    let store = Arc::clone(shared);
    let key = outcome.key;
    let guard = outcome.guard;
    let sink: Sink = Box::new(move |bytes: Bytes| {
        let _guard = guard;
        if let Some(partials) = &store.partials {
            partials.store(&key, Some(head), &version, range, len, &bytes);
        }
    });
    // Bodies past the fill bound pass through unstored (the tee gives up).
    let limit = usize::try_from(expected.min(partial::MAX_FILL)).unwrap_or(usize::MAX);
    let (parts, body) = response.into_parts();
    let mut response =
        Response::from_parts(parts, CacheBody::tee(body, limit, Some(expected), sink));
    set_cache_status(
        response.headers_mut(),
        &format!("{}; stored; detail=partial", outcome.detail),
    );
    response
}

/// Whether the media type of `content_type` matches one of `patterns`
/// (`type/subtype`, or `type/*`; case-insensitive, parameters ignored).
fn excluded(patterns: &[String], content_type: &str) -> bool {
    if patterns.is_empty() {
        return false;
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, _)) = media.split_once('/') else {
        return false;
    };
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix("/*") {
            Some(prefix) => prefix.eq_ignore_ascii_case(kind),
            None => pattern.eq_ignore_ascii_case(media),
        })
}

/// Updates `stored` with the header fields of a 304, or of a `HEAD`'s 200
/// that describes it, and stores the result in its place (RFC 9111 §4.3.4,
/// §4.3.5); returns it.
fn refresh(
    shared: &Shared,
    key: String,
    stored: &Stored,
    update: &HeaderMap,
    timing: Timing,
) -> Arc<Stored> {
    let config = &shared.config;
    let refreshed = Arc::new(stored.refreshed(
        update,
        timing,
        &config.targeted,
        config.surrogate_token.as_deref(),
        config.shared,
    ));
    let updated = entry::with_variant(shared.store.peek(&key).as_ref(), Arc::clone(&refreshed));
    store_tagged(shared, key, updated, &refreshed.headers);
    refreshed
}

/// Drops the stored response of `key` for the secondary key `vary`; the
/// resource's other variants stay.
fn drop_variant(shared: &Shared, key: &str, vary: &VaryKey) {
    let Some(variants) = shared.store.peek(key) else {
        return;
    };
    match entry::without_variant(&variants, vary) {
        None => {
            shared.store.remove(key);
            crate::tier::purge(shared, crate::tier::Purge::Key(key.to_owned()));
        }
        Some(rest) => {
            let headers = rest.first().map(|s| s.headers.clone()).unwrap_or_default();
            store_tagged(shared, key.to_owned(), rest, &headers);
        }
    }
}

/// Stores `variants` under `key` with the tags the layer's extractor
/// gives `headers` (a 304 refresh keeps a response's tags).
fn store_tagged(shared: &Shared, key: String, variants: entry::Variants, headers: &HeaderMap) {
    let tags = tags_of(shared, &key, headers);
    crate::tier::write(shared, &key, &variants, &tags);
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let _ = shared.store.insert_with_tags(key, variants, &tags);
}

/// The tags the layer's tag extractor gives a response of `key`.
pub(crate) fn tags_of(shared: &Shared, key: &str, headers: &HeaderMap) -> Vec<String> {
    shared
        .config
        .tags
        .as_ref()
        .map(|extract| (extract.0)(key, headers))
        .unwrap_or_default()
}

/// Fields a response's `no-cache="…"` / `private="…"` keep out of the
/// store.
fn omitted(directives: &Directives, shared: bool) -> Vec<String> {
    let mut names = directives.no_cache_fields.clone();
    if shared {
        names.extend(directives.private_fields.iter().cloned());
    }
    names
}

/// A response passed through as it came, labelled.
fn forwarded<B>(response: Response<B>, detail: &str) -> Response<CacheBody<B>> {
    let mut response = response.map(CacheBody::stream);
    set_cache_status(response.headers_mut(), detail);
    response
}

/// How this request is answered from a stored response.
struct Reply<'a> {
    method: &'a Method,
    /// The client takes the coding of the stored body.
    packed_ok: bool,
}

impl Reply<'_> {
    /// `stored` for this request: a 304 if the client's conditionals match
    /// it, without a body for HEAD, with `Age`. A body kept compressed goes
    /// out as such when the client takes its coding and the response
    /// varies on `Accept-Encoding`; otherwise it is decompressed.
    fn serve<B>(
        &self,
        stored: &Stored,
        age: u64,
        conditionals: &HeaderMap,
        detail: &str,
    ) -> Response<CacheBody<B>> {
        let method = self.method;
        let packed = stored
            .packed
            .filter(|_| self.packed_ok && stored.vary.varies_on(&header::ACCEPT_ENCODING));
        let mut response = if not_modified(conditionals, stored) {
            let mut response = Response::new(CacheBody::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            for name in [
                header::CACHE_CONTROL,
                header::CONTENT_LOCATION,
                header::DATE,
                header::ETAG,
                header::EXPIRES,
                header::VARY,
                header::LAST_MODIFIED,
            ] {
                for value in stored.headers.get_all(&name) {
                    response.headers_mut().append(name.clone(), value.clone());
                }
            }
            if packed.is_some() {
                weaken_etag(response.headers_mut());
            }
            response
        } else {
            let len = stored.body_len();
            let answer = if method == Method::GET && stored.status == StatusCode::OK {
                range::answer(conditionals, &stored.headers, len)
            } else {
                range::Answer::Whole
            };
            let mut response = Response::new(CacheBody::empty());
            *response.headers_mut() = stored.headers.clone();
            match answer {
                range::Answer::Whole if packed.is_some() => {
                    // The compressed representation: its own length, a weak
                    // ETag (the bytes differ from the identity ones), no
                    // ranges of it.
                    let coding = packed.map_or("identity", |p| p.coding.token());
                    *response.status_mut() = stored.status;
                    let headers = response.headers_mut();
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.body.len()));
                    headers.remove(header::ACCEPT_RANGES);
                    headers.remove("content-md5");
                    headers.remove("repr-digest");
                    weaken_etag(headers);
                    if method != Method::HEAD {
                        *response.body_mut() = CacheBody::full(stored.body.clone());
                    }
                }
                range::Answer::Whole => {
                    *response.status_mut() = stored.status;
                    if method != Method::HEAD {
                        let Some(body) = stored.plain_body() else {
                            return undecodable();
                        };
                        *response.body_mut() = CacheBody::full(body);
                    }
                }
                range::Answer::Part(part) => {
                    // In bounds: `resolve` keeps a part within the body.
                    let Some(body) = stored.plain_body() else {
                        return undecodable();
                    };
                    let slice = body.slice(part.start as usize..part.end as usize);
                    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                    let content_range = format!("bytes {}-{}/{len}", part.start, part.end - 1);
                    if let Ok(value) = HeaderValue::from_str(&content_range) {
                        response.headers_mut().insert(header::CONTENT_RANGE, value);
                    }
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(slice.len()));
                    *response.body_mut() = CacheBody::full(slice);
                }
                range::Answer::Unsatisfiable => {
                    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        response.headers_mut().insert(header::CONTENT_RANGE, value);
                    }
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                }
            }
            response
        };
        response
            .headers_mut()
            .insert(header::AGE, HeaderValue::from(age));
        set_cache_status(response.headers_mut(), detail);
        response
    }
}

/// Makes a strong `ETag` weak (`"x"` becomes `W/"x"`): the layer's
/// compressed representation is not byte-for-byte the origin's, so it must not pass
/// a strong comparison (`If-Range`), while `If-None-Match` still matches.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(header::ETAG) else {
        return;
    };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    let mut weak = Vec::with_capacity(bytes.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(bytes);
    if let Ok(value) = HeaderValue::from_bytes(&weak) {
        headers.insert(header::ETAG, value);
    }
}

/// The answer when a stored body does not decompress (it was damaged on
/// disk past its checksum, or compression is off in this build).
fn undecodable<B>() -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    set_cache_status(response.headers_mut(), "hit; detail=undecodable-body");
    response
}

/// Whether the request's `If-None-Match` (or, without it,
/// `If-Modified-Since`) matches the stored response (RFC 9110 §13.1).
fn not_modified(conditionals: &HeaderMap, stored: &Stored) -> bool {
    if stored.status != StatusCode::OK {
        return false;
    }
    if conditionals.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored
            .headers
            .get(header::ETAG)
            .and_then(|e| e.to_str().ok())
        else {
            return conditionals
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.trim() == "*"));
        };
        let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let ours = weak(etag);
        return conditionals
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|candidate| candidate.trim() == "*" || weak(candidate) == ours);
    }
    let Some(Some(since)) =
        crate::policy::freshness::http_date(conditionals, header::IF_MODIFIED_SINCE)
    else {
        return false;
    };
    let modified = crate::policy::freshness::http_date(&stored.headers, header::LAST_MODIFIED)
        .flatten()
        .or_else(|| crate::policy::freshness::http_date(&stored.headers, header::DATE).flatten());
    modified.is_some_and(|m| m <= since)
}

/// Drops the stored responses of the target and of `Location` /
/// `Content-Location` on the same authority (RFC 9111 §4.4).
fn invalidate(shared: &Shared, authority: &str, target: Option<String>, headers: &HeaderMap) {
    if let Some(target) = target {
        shared.store.remove(&target);
        crate::tier::purge(shared, crate::tier::Purge::Key(target.clone()));
        if let Some(partials) = &shared.partials {
            partials.remove(&target);
        }
    }
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(uri) = headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<Uri>().ok())
        else {
            continue;
        };
        let same_authority = uri
            .authority()
            .is_none_or(|a| a.as_str().eq_ignore_ascii_case(authority));
        if same_authority && (uri.authority().is_some() || uri.path().starts_with('/')) {
            if let Some(key) = shared.config.key.key_of_uri(authority, &uri) {
                shared.store.remove(&key);
                crate::tier::purge(shared, crate::tier::Purge::Key(key.clone()));
                if let Some(partials) = &shared.partials {
                    partials.remove(&key);
                }
            }
        }
    }
}

/// Appends this cache's member to `Cache-Status` (RFC 9211: the cache
/// nearest the client comes last).
pub(crate) fn set_cache_status(headers: &mut HeaderMap, detail: &str) {
    let ours = format!("strata; {detail}");
    let value = match headers.get("cache-status").and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {ours}"),
        _ => ours,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static("cache-status"), value);
    }
}
