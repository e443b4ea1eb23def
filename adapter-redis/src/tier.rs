//! [`RedisTier`]: the second-tier trait on a Redis or Redis Cluster
//! connection.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisError, Value};
use strata::tiered::{InvalidationSink, SecondTier, TierError, TierErrorKind};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::Error;
use crate::tracking;

/// How many members one `SPOP` takes off a tag set.
const TAG_BATCH: usize = 512;

/// The `COUNT` hint of one `SCAN` page (prefix invalidation).
const SCAN_COUNT: usize = 1000;

/// The most `SCAN` pages read from one server (a billion keys at the
/// hint's size): a server whose cursor never comes back to 0 is an error,
/// not an endless walk.
const MAX_SCAN_PAGES: usize = 1 << 20;

/// The connection: one multiplexed, reconnecting connection to a single
/// Redis, or a cluster connection.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Self::Single(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    async fn query_pipe<T: redis::FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
    ) -> Result<T, RedisError> {
        match self {
            Self::Single(conn) => pipe.query_async(conn).await,
            Self::Cluster(conn) => pipe.query_async(conn).await,
        }
    }

    /// Sends `cmd` to the one server, or to every cluster master; the
    /// cluster's answer maps each master's address to its reply (error
    /// replies included, as values).
    pub(crate) async fn everywhere(&mut self, cmd: Cmd) -> Result<Value, RedisError> {
        match self {
            Self::Single(conn) => conn.req_packed_command(&cmd).await,
            Self::Cluster(conn) => {
                use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
                conn.route_command(
                    cmd,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                )
                .await
            }
        }
    }

    /// Deletes every key matching `pattern` on the one server, or on every
    /// cluster master, one `SCAN` page (about [`SCAN_COUNT`] keys) at a
    /// time, each round trip bounded by `timeout`; returns how many.
    async fn delete_matching(
        &mut self,
        pattern: &[u8],
        timeout: Duration,
    ) -> Result<u64, TierError> {
        let nodes: Vec<Option<(String, u16)>> = match self {
            Self::Single(_) => vec![None],
            Self::Cluster(_) => {
                let reply = bounded_by(timeout, self.everywhere(redis::cmd("PING"))).await?;
                let Value::Map(entries) = reply else {
                    return Err(TierError::of_kind(TierErrorKind::Protocol));
                };
                entries
                    .iter()
                    .map(|(address, _)| node_address(address).map(Some))
                    .collect::<Option<_>>()
                    .ok_or_else(|| TierError::of_kind(TierErrorKind::Protocol))?
            }
        };
        let mut deleted = 0;
        for node in nodes {
            let mut cursor = 0u64;
            for page in 0.. {
                if page == MAX_SCAN_PAGES {
                    return Err(TierError::new(
                        TierErrorKind::Protocol,
                        "SCAN did not finish its walk",
                    ));
                }
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let reply = match (&mut *self, &node) {
                    (Self::Cluster(conn), Some((host, port))) => {
                        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        bounded_by(timeout, conn.route_command(scan, route)).await?
                    }
                    (conn, _) => bounded_by(timeout, conn.query::<Value>(&scan)).await?,
                };
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)
                    .map_err(|error| TierError::new(TierErrorKind::Protocol, error))?;
                if !keys.is_empty() {
                    // A multi-key DEL: the cluster client splits it by slot.
                    let mut del = redis::cmd("DEL");
                    for key in &keys {
                        del.arg(key);
                    }
                    deleted += bounded_by(timeout, self.query::<u64>(&del)).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }
}

/// `host:port` from a cluster reply's node address.
fn node_address(address: &Value) -> Option<(String, u16)> {
    let text = match address {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?,
        Value::SimpleString(text) => text.as_str(),
        _ => return None,
    };
    let (host, port) = text.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// `call`, unless it takes longer than `timeout`.
async fn bounded_by<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, TierError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(tier_error(error)),
        Err(_) => Err(TierError::of_kind(TierErrorKind::Timeout)),
    }
}

/// `text` with Redis glob characters escaped, to match literally.
fn glob_escaped(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    for &byte in text {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out
}

/// Counters of the tier's invalidation machinery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTierStats {
    /// Invalidation messages received.
    pub invalidation_messages: u64,
    /// Keys named in them (for this namespace).
    pub invalidated_keys: u64,
    /// Flush-everything notices (a `FLUSHALL`, a lost connection, tracking
    /// found off) passed to L1.
    pub flushes: u64,
    /// Times tracking was turned back on after a lost connection.
    pub tracking_restored: u64,
    /// Whether tracking is known to be on now.
    pub tracking_up: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) keys: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) restored: AtomicU64,
    pub(crate) up: AtomicBool,
}

pub(crate) struct Inner {
    /// `None` until the first connection (see `connect_lazy`).
    pub(crate) conn: RwLock<Option<Conn>>,
    /// `ns:d:`: the prefix of every value key (and of tracking).
    pub(crate) data_prefix: Vec<u8>,
    /// `ns:t:`: the prefix of every tag set.
    tag_prefix: Vec<u8>,
    pub(crate) timeout: Duration,
    pub(crate) sinks: Mutex<Vec<InvalidationSink>>,
    pub(crate) counters: Counters,
}

impl Inner {
    /// Tells every attached L1 that anything may have changed.
    pub(crate) fn flush_all(&self) {
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        for sink in self.sinks.lock().iter() {
            sink.all();
        }
    }

    /// Tells every attached L1 that these Redis keys changed.
    pub(crate) fn invalidate(&self, redis_keys: &[&[u8]]) {
        let keys: Vec<&[u8]> = redis_keys
            .iter()
            .filter_map(|key| key.strip_prefix(self.data_prefix.as_slice()))
            .collect();
        self.counters
            .keys
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        for sink in self.sinks.lock().iter() {
            sink.keys(&keys);
        }
    }
}

/// A Redis or Redis Cluster second tier; cheap to clone. Build one with
/// [`RedisTier::builder`] or [`RedisTier::cluster_builder`].
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field(
                "namespace",
                &String::from_utf8_lossy(&self.inner.data_prefix),
            )
            .field("timeout", &self.inner.timeout)
            .field(
                "cluster",
                &matches!(*self.inner.conn.read(), Some(Conn::Cluster(_))),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// Settings for a [`RedisTier`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisTierBuilder {
    target: Target,
    namespace: String,
    timeout: Duration,
    connect_timeout: Duration,
    tracking: bool,
    check_interval: Duration,
}

impl RedisTier {
    /// Settings for a single Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisTierBuilder {
        RedisTierBuilder::new(Target::Single(url.into()))
    }

    /// Settings for a Redis Cluster reached through any of `nodes`.
    pub fn cluster_builder<I, S>(nodes: I) -> RedisTierBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisTierBuilder::new(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// The invalidation counters.
    #[must_use]
    pub fn stats(&self) -> RedisTierStats {
        let c = &self.inner.counters;
        RedisTierStats {
            invalidation_messages: c.messages.load(Ordering::Relaxed),
            invalidated_keys: c.keys.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            tracking_restored: c.restored.load(Ordering::Relaxed),
            tracking_up: c.up.load(Ordering::Relaxed),
        }
    }

    /// The Redis key of an encoded cache key.
    #[must_use]
    pub fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        [self.inner.data_prefix.as_slice(), key].concat()
    }

    fn tag_key(&self, tag: &str) -> Vec<u8> {
        [self.inner.tag_prefix.as_slice(), tag.as_bytes()].concat()
    }

    /// Runs `call` on a clone of the connection within the timeout.
    async fn bounded<T, F, Fut>(&self, call: F) -> Result<T, TierError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.inner.conn.read().clone() else {
            return Err(TierError::of_kind(TierErrorKind::Unavailable));
        };
        match tokio::time::timeout(self.inner.timeout, call(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(tier_error(error)),
            Err(_) => Err(TierError::of_kind(TierErrorKind::Timeout)),
        }
    }
}

/// A Redis error as the engine's tier error.
fn tier_error(error: RedisError) -> TierError {
    let kind = if error.is_timeout() {
        TierErrorKind::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
    {
        TierErrorKind::Unavailable
    } else if error.code().is_some() {
        TierErrorKind::Refused
    } else {
        TierErrorKind::Protocol
    };
    TierError::new(kind, error)
}

impl RedisTierBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            namespace: "strata".to_owned(),
            timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            tracking: true,
            check_interval: Duration::from_secs(1),
        }
    }

    /// The namespace every key lives under (`ns:d:…`, `ns:t:…`); caches of
    /// different key or value types need different namespaces. Default:
    /// `strata`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The bound on every call, including any wait for a reconnect.
    /// Default: 100 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bound on one connection attempt. Default: 1 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to track writes by others and invalidate L1 (RESP3 client
    /// tracking). Default: on. Off, instances stay coherent only through
    /// L1's time-to-live.
    pub fn tracking(mut self, on: bool) -> Self {
        self.tracking = on;
        self
    }

    /// How often to check that tracking is still on. Default: 1 s.
    pub fn tracking_check_interval(mut self, every: Duration) -> Self {
        self.check_interval = every;
        self
    }

    /// Connects, turns tracking on and starts listening for invalidations
    /// (on the current tokio runtime).
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`], [`Error::Address`] for a bad URL,
    /// [`Error::Connect`] / [`Error::ConnectTimeout`] when Redis cannot be
    /// reached, [`Error::Tracking`] when tracking cannot be enabled.
    pub async fn connect(self) -> Result<RedisTier, Error> {
        let inner = self.inner()?;
        let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel();
        let conn = self.open(push_tx).await?;
        *inner.conn.write() = Some(conn);
        if self.tracking {
            tracking::enable(&inner).await.map_err(Error::Tracking)?;
            inner.counters.up.store(true, Ordering::Relaxed);
            tracking::start(&inner, push_rx, self.check_interval);
        }
        Ok(RedisTier { inner })
    }

    /// A tier that connects in the background (on the current tokio
    /// runtime), so that a service starts whether or not Redis is up:
    /// until the first connection (retried with backoff up to 5 s), every
    /// call fails at once as [`TierErrorKind::Unavailable`] (a miss for
    /// the tiered cache); once connected and tracking, attached L1s are
    /// cleared, since they could not hear of writes until then.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] and [`Error::Address`] (settings that can never
    /// work) at once; connection failures only delay the tier.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisTier, Error> {
        let inner = self.inner()?;
        if let Target::Single(url) = &self.target {
            url.as_str()
                .into_connection_info()
                .map_err(|source| Error::Address {
                    address: url.clone(),
                    source,
                })?;
        }
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel();
            let mut backoff = Duration::from_millis(50);
            let conn = loop {
                if weak.strong_count() == 0 {
                    return;
                }
                match self.open(push_tx.clone()).await {
                    Ok(conn) => break conn,
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2).min(Duration::from_secs(5));
                    }
                }
            };
            let Some(inner) = weak.upgrade() else { return };
            *inner.conn.write() = Some(conn);
            if self.tracking {
                // Retried by the listener like any lost tracking.
                let on = tracking::enable(&inner).await.is_ok();
                inner.counters.up.store(on, Ordering::Relaxed);
                tracking::start(&inner, push_rx, self.check_interval);
            }
            inner.flush_all();
        });
        Ok(RedisTier { inner })
    }

    fn inner(&self) -> Result<Arc<Inner>, Error> {
        if self.namespace.is_empty() || self.namespace.contains(':') {
            return Err(Error::Namespace(self.namespace.clone()));
        }
        Ok(Arc::new(Inner {
            conn: RwLock::new(None),
            data_prefix: format!("{}:d:", self.namespace).into_bytes(),
            tag_prefix: format!("{}:t:", self.namespace).into_bytes(),
            timeout: self.timeout,
            sinks: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }))
    }

    /// One connection attempt, bounded by a few connect timeouts.
    async fn open(&self, push_tx: UnboundedSender<PushInfo>) -> Result<Conn, Error> {
        let connect =
            async {
                match &self.target {
                    Target::Single(url) => {
                        let info = url.as_str().into_connection_info().map_err(|source| {
                            Error::Address {
                                address: url.clone(),
                                source,
                            }
                        })?;
                        let settings = info
                            .redis_settings()
                            .clone()
                            .set_protocol(ProtocolVersion::RESP3);
                        let client = redis::Client::open(info.set_redis_settings(settings))
                            .map_err(|source| Error::Address {
                                address: url.clone(),
                                source,
                            })?;
                        let config = ConnectionManagerConfig::new()
                            .set_push_sender(push_tx)
                            .set_response_timeout(Some(self.timeout))
                            .set_connection_timeout(Some(self.connect_timeout))
                            .set_number_of_retries(3)
                            .set_max_delay(Duration::from_millis(500));
                        client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(Conn::Single)
                            .map_err(Error::Connect)
                    }
                    Target::Cluster(nodes) => {
                        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                            .use_protocol(ProtocolVersion::RESP3)
                            .push_sender(push_tx)
                            .response_timeout(self.timeout)
                            .connection_timeout(self.connect_timeout)
                            .retries(2)
                            .build()
                            .map_err(|source| Error::Address {
                                address: nodes.join(","),
                                source,
                            })?;
                        client
                            .get_async_connection()
                            .await
                            .map(Conn::Cluster)
                            .map_err(Error::Connect)
                    }
                }
            };
        tokio::time::timeout(self.connect_timeout.saturating_mul(4), connect)
            .await
            .map_err(|_| Error::ConnectTimeout(self.connect_timeout))?
    }
}

impl SecondTier for RedisTier {
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>, TierError>> + Send {
        let cmd = redis::cmd("GET").arg(self.redis_key(key)).clone();
        async move {
            self.bounded(|mut conn| async move { conn.query::<Option<Vec<u8>>>(&cmd).await })
                .await
                .map(|value| value.map(Bytes::from))
        }
    }

    fn get_many(
        &self,
        keys: &[Vec<u8>],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, TierError>> + Send {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.redis_key(key));
        }
        let empty = keys.is_empty();
        async move {
            if empty {
                return Ok(Vec::new());
            }
            let values = self
                .bounded(|mut conn| async move { conn.query::<Vec<Option<Vec<u8>>>>(&cmd).await })
                .await?;
            Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
        }
    }

    fn set(
        &self,
        key: &[u8],
        record: Bytes,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> impl Future<Output = Result<(), TierError>> + Send {
        let redis_key = self.redis_key(key);
        let ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let mut set = redis::cmd("SET");
        set.arg(&redis_key).arg(record.as_ref());
        if let Some(ms) = ms {
            set.arg("PX").arg(ms);
        }
        // One pipeline per tag: the set's slot may differ from the key's.
        let tag_pipes: Vec<Pipeline> = tags
            .iter()
            .map(|tag| {
                let tag_key = self.tag_key(tag);
                let mut pipe = redis::pipe();
                pipe.cmd("SADD").arg(&tag_key).arg(&redis_key).ignore();
                if let Some(ms) = ms {
                    // The set lives as long as its longest-lived member.
                    pipe.cmd("PEXPIRE").arg(&tag_key).arg(ms).arg("NX").ignore();
                    pipe.cmd("PEXPIRE").arg(&tag_key).arg(ms).arg("GT").ignore();
                }
                pipe
            })
            .collect();
        async move {
            self.bounded(|mut conn| async move {
                conn.query::<()>(&set).await?;
                for pipe in &tag_pipes {
                    conn.query_pipe::<()>(pipe).await?;
                }
                Ok(())
            })
            .await
        }
    }

    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<(), TierError>> + Send {
        let cmd = redis::cmd("DEL").arg(self.redis_key(key)).clone();
        async move {
            self.bounded(|mut conn| async move { conn.query::<()>(&cmd).await })
                .await
        }
    }

    fn invalidate_tag(&self, tag: &str) -> impl Future<Output = Result<u64, TierError>> + Send {
        let tag_key = self.tag_key(tag);
        async move {
            self.bounded(|mut conn| async move {
                // Members are popped atomically, so a key tagged while this
                // runs is either deleted here or stays in the set.
                let mut deleted = 0u64;
                loop {
                    let members: Vec<Vec<u8>> = conn
                        .query(redis::cmd("SPOP").arg(&tag_key).arg(TAG_BATCH))
                        .await?;
                    if members.is_empty() {
                        break;
                    }
                    let mut del = redis::cmd("DEL");
                    for member in &members {
                        del.arg(member);
                    }
                    deleted += conn.query::<u64>(&del).await?;
                    if members.len() < TAG_BATCH {
                        break;
                    }
                }
                Ok(deleted)
            })
            .await
        }
    }

    /// Walks the keyspace with `SCAN` (every master of a cluster), each
    /// round trip within the tier's timeout, and deletes the matching keys
    /// page by page: the walk takes as long as the keyspace needs, which
    /// is why it is for invalidations, not for the request path.
    fn invalidate_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Future<Output = Result<u64, TierError>> + Send {
        let mut pattern = glob_escaped(&self.redis_key(prefix));
        pattern.push(b'*');
        let timeout = self.inner.timeout;
        let conn = self.inner.conn.read().clone();
        async move {
            let Some(mut conn) = conn else {
                return Err(TierError::of_kind(TierErrorKind::Unavailable));
            };
            conn.delete_matching(&pattern, timeout).await
        }
    }

    fn attach(&self, sink: InvalidationSink) {
        self.inner.sinks.lock().push(sink);
    }
}
