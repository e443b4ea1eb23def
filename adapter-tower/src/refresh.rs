//! Auto-refresh (feature `auto-refresh`): stored responses read often are
//! revalidated in the background shortly before they expire, so that hot
//! resources never go stale and never cost a client a wait.
//!
//! ```text
//!   hit ──► hot[key].hits += 1 (the first hit of a key keeps its request line
//!           and header fields, to revalidate it the way clients asked for it)
//!   every check_interval:
//!     for each key hot enough (hits per minute, over the last full minute
//!     or the current one so far, ≥ min_hits_per_minute):
//!       its response expires within the refresh window? ──► one background
//!       revalidation (conditional GET) through the service given, at most
//!       max_concurrent at a time
//! ```
//!
//! The loop holds the layer weakly: it ends once every clone of the layer
//! and every service built from it are gone.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::Body;
use strata::Cache;
use tower_service::Service;

use crate::body::BoxError;
use crate::layer::Shared;
use crate::policy::Directives;
use crate::service::Revalidation;
use crate::CacheLayer;

/// Auto-refresh settings; see [`CacheLayerBuilder::auto_refresh`](crate::CacheLayerBuilder::auto_refresh).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct AutoRefresh {
    /// Keys read at least this often (per minute) are refreshed. Default 10.
    pub min_hits_per_minute: f64,
    /// How often to look for keys to refresh. Default 5 s.
    pub check_interval: Duration,
    /// The most refreshes running at once. Default 8.
    pub max_concurrent: usize,
    /// Refresh a response once it has this much freshness left, or less
    /// (at least two check intervals, so that none slips through). Default
    /// 30 s.
    pub window: Duration,
}

impl Default for AutoRefresh {
    fn default() -> Self {
        Self {
            min_hits_per_minute: 10.0,
            check_interval: Duration::from_secs(5),
            max_concurrent: 8,
            window: Duration::from_secs(30),
        }
    }
}

impl AutoRefresh {
    /// Keys read at least `hits` times a minute are refreshed.
    #[must_use]
    pub fn min_hits_per_minute(mut self, hits: f64) -> Self {
        self.min_hits_per_minute = hits;
        self
    }

    /// How often to look for keys to refresh.
    #[must_use]
    pub fn check_interval(mut self, every: Duration) -> Self {
        self.check_interval = every;
        self
    }

    /// The most refreshes at once.
    #[must_use]
    pub fn max_concurrent(mut self, refreshes: usize) -> Self {
        self.max_concurrent = refreshes;
        self
    }

    /// Refresh responses with at most this much freshness left.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

/// Why [`CacheLayer::init_auto_refresh`] did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoRefreshError {
    /// The layer was built without [`auto_refresh`](crate::CacheLayerBuilder::auto_refresh).
    NotConfigured,
    /// It is already running for this layer.
    AlreadyRunning,
    /// Not inside a tokio runtime.
    NoRuntime,
}

impl std::fmt::Display for AutoRefreshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotConfigured => "auto-refresh was not configured on the layer's builder",
            Self::AlreadyRunning => "auto-refresh is already running for this layer",
            Self::NoRuntime => "auto-refresh needs a tokio runtime; call it from inside one",
        })
    }
}

impl std::error::Error for AutoRefreshError {}

/// A key's recent reads, and how to ask for it again.
pub(crate) struct Hot {
    /// Hits in the current minute.
    hits: AtomicU32,
    /// Hits in the last full minute.
    previous: AtomicU32,
    uri: Uri,
    headers: HeaderMap,
}

/// The layer's side: which keys are hot.
pub(crate) struct Refresher {
    pub(crate) config: AutoRefresh,
    /// When the current minute of hit counts began.
    minute: parking_lot::Mutex<std::time::Instant>,
    hot: Cache<String, Arc<Hot>>,
    running: std::sync::atomic::AtomicBool,
    in_flight: Arc<AtomicUsize>,
}

impl Refresher {
    pub(crate) fn new(config: AutoRefresh) -> Result<Self, strata::ConfigError> {
        Ok(Self {
            config,
            minute: parking_lot::Mutex::new(std::time::Instant::now()),
            hot: Cache::builder().max_capacity(10_000).build()?,
            running: std::sync::atomic::AtomicBool::new(false),
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Counts a hit of `key` for `request`.
    pub(crate) fn hit(&self, key: &str, uri: &Uri, headers: &HeaderMap) {
        if let Some(hot) = self.hot.get(key) {
            hot.hits.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut kept = HeaderMap::new();
        for (name, value) in headers {
            // What selects a variant, never credentials or cookies (a
            // shared cache did not store what depends on them).
            if name != http::header::AUTHORIZATION && name != http::header::COOKIE {
                kept.append(name.clone(), value.clone());
            }
        }
        let hot = Arc::new(Hot {
            hits: AtomicU32::new(1),
            previous: AtomicU32::new(0),
            uri: uri.clone(),
            headers: kept,
        });
        let _ = self.hot.insert(key.to_owned(), hot);
    }
}

impl CacheLayer {
    /// Starts auto-refresh for this layer on the current tokio runtime,
    /// revalidating through `service` (usually the same inner service the
    /// layer wraps). It stops when the layer and its services are dropped.
    ///
    /// # Errors
    ///
    /// [`AutoRefreshError`]: not configured, already running, or no tokio
    /// runtime.
    pub fn init_auto_refresh<S, ReqB, ResB>(&self, service: S) -> Result<(), AutoRefreshError>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqB: Default + Send + 'static,
        ResB: Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let Some(refresher) = &self.shared.refresher else {
            return Err(AutoRefreshError::NotConfigured);
        };
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| AutoRefreshError::NoRuntime)?;
        if refresher.running.swap(true, Ordering::AcqRel) {
            return Err(AutoRefreshError::AlreadyRunning);
        }
        let weak = Arc::downgrade(&self.shared);
        let every = refresher
            .config
            .check_interval
            .max(Duration::from_millis(10));
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if !round(&weak, &service, every) {
                    return;
                }
            }
        });
        Ok(())
    }
}

/// One pass over the hot keys; false once the layer is gone.
fn round<S, ReqB, ResB>(weak: &Weak<Shared>, service: &S, every: Duration) -> bool
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Default + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let Some(shared) = weak.upgrade() else {
        return false;
    };
    let Some(refresher) = &shared.refresher else {
        return false;
    };
    let config = refresher.config;
    let window = config.window.max(every * 2).as_secs();
    let now = SystemTime::now();
    // Rates per minute: the last full minute's, or the current one's so
    // far, whichever is higher.
    let (elapsed, rollover) = {
        let mut minute = refresher.minute.lock();
        let elapsed = minute.elapsed();
        let rollover = elapsed >= Duration::from_secs(60);
        if rollover {
            *minute = std::time::Instant::now();
        }
        (elapsed.max(every).as_secs_f64() / 60.0, rollover)
    };
    for (key, hot) in refresher.hot.iter() {
        let current = if rollover {
            let hits = hot.hits.swap(0, Ordering::Relaxed);
            hot.previous.store(hits, Ordering::Relaxed);
            hits
        } else {
            hot.hits.load(Ordering::Relaxed)
        };
        let rate =
            (f64::from(current) / elapsed).max(f64::from(hot.previous.load(Ordering::Relaxed)));
        if rate < config.min_hits_per_minute {
            continue;
        }
        if refresher.in_flight.load(Ordering::Acquire) >= config.max_concurrent {
            break;
        }
        let Some(variants) = shared.store.peek(&key) else {
            continue;
        };
        let Some(stored) = variants
            .iter()
            .find(|s| s.vary.matches(&hot.headers))
            .cloned()
        else {
            continue;
        };
        let Some(lifetime) = stored.lifetime() else {
            continue;
        };
        let remaining = lifetime.saturating_sub(stored.age(now));
        if remaining > window {
            continue;
        }
        let Some(revalidation) = Revalidation::lead(&shared, &stored, key, Directives::default())
        else {
            continue;
        };
        let mut request = Request::new(ReqB::default());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = hot.uri.clone();
        *request.headers_mut() = hot.headers.clone();
        let in_flight = Arc::clone(&refresher.in_flight);
        in_flight.fetch_add(1, Ordering::AcqRel);
        let task = revalidation.run(service.clone(), request);
        tokio::spawn(async move {
            task.await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
    true
}
