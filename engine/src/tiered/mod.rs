//! A second, remote tier behind the in-process cache: [`SecondTier`] is
//! what a remote store (Redis, Redis Cluster, anything reachable over a
//! network) implements; [`TieredCache`] composes a [`Cache`](crate::Cache)
//! (the L1) with one.
//!
//! ```text
//!   get ──► L1 hit? ──► value
//!             │ miss (one flight per key across both tiers)
//!             ▼
//!           breaker closed? ──► L2 get ──► record ok, not expired? ──► promote into L1 ──► value
//!             │ open / error / timeout / miss / corrupt
//!             ▼
//!           loader ──► L1 insert ──► L2 set (through or behind) ──► value
//! ```
//!
//! The tier stores each entry as one [codec](crate::codec) record (key,
//! value, expiry, tags, checksum), so what comes back from the network is
//! verified before it is decoded, and a record of another key, a truncated
//! one or garbage is a miss (counted in [`TierStats::l2_corrupt`]), never
//! an error or a wrong value.
//!
//! # Failure is a miss
//!
//! A tier call that fails or times out (the tier bounds its own calls; the
//! engine needs no runtime) is a miss for reads: the caller gets the
//! loader's value, not an error. After [`TieredBuilder::breaker`]
//! consecutive failures the tier is not called at all for a cool-down,
//! then one probe call decides whether it is back. Writes report tier
//! failures to the caller (the L1 part always happens), because a failed
//! delete may leave an old value for other instances.
//!
//! # Coherence between instances
//!
//! A tier that can hear about writes by other processes (Redis client
//! tracking, a pub/sub channel) reports them to an [`InvalidationSink`]
//! the tiered cache [attaches](SecondTier::attach) when it is built: keys
//! named there leave L1, and "all" (a flush, or a lost connection during
//! which invalidations may have been missed) clears it. A fill (an L2 read
//! or a load) that an invalidation of its key overtakes is not stored in
//! L1, nor written to L2: the engine's single flight marks it, as it does
//! for local writes.
//!
//! # Examples
//!
//! See the `strata-redis` crate for a Redis tier; [`TieredCache`] has the
//! API.

mod breaker;
mod builder;
mod cache;
mod stats;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::sync::PublicArc;

pub use breaker::CircuitBreaker;
pub use builder::{Promotion, TieredBuilder, WriteMode};
pub use cache::TieredCache;
pub use stats::TierStats;

/// A remote tier that stores encoded records under encoded keys.
///
/// Every method must return within a bounded time (a timeout of the
/// implementation's choosing) and report failure as an error; the tiered
/// cache turns read errors into misses. Keys are the [`Codec`]
/// encoding of the cache's keys; values are whole [codec](crate::codec)
/// records, which the tier stores and returns byte for byte.
///
/// [`Codec`]: crate::codec::Codec
pub trait SecondTier: Send + Sync + 'static {
    /// The record stored under `key`, if any.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>, TierError>> + Send;

    /// The records stored under `keys`, in order, in as few round trips as
    /// the tier can manage (a pipeline, a multi-key command).
    fn get_many(
        &self,
        keys: &[Vec<u8>],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, TierError>> + Send;

    /// Stores `record` under `key`, expiring after `ttl` (never if `None`),
    /// and adds the key to each of `tags`.
    fn set(
        &self,
        key: &[u8],
        record: Bytes,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> impl Future<Output = Result<(), TierError>> + Send;

    /// Removes `key`.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<(), TierError>> + Send;

    /// Removes every key stored with `tag`; returns how many there were.
    fn invalidate_tag(&self, tag: &str) -> impl Future<Output = Result<u64, TierError>> + Send;

    /// Removes every key that starts with `prefix` (both encoded); returns
    /// how many there were. This may walk the tier's whole keyspace and
    /// need many round trips, each bounded by the tier's timeout; it is
    /// meant for invalidation, not for the request path.
    fn invalidate_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Future<Output = Result<u64, TierError>> + Send;

    /// Tells the tier where to report invalidations it hears of (writes by
    /// other processes, flushes, lost connections). Called once by
    /// [`TieredBuilder::build`]. The default ignores it: a tier without
    /// notifications keeps L1 coherent only through L1's time-to-live.
    fn attach(&self, sink: InvalidationSink) {
        let _ = sink;
    }
}

/// What a tier tells the L1 caches attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation<'a> {
    /// These keys (encoded) changed elsewhere.
    Keys(&'a [&'a [u8]]),
    /// Anything may have changed (a flush, or notifications were lost).
    All,
}

type SinkFn = dyn Fn(Invalidation<'_>) + Send + Sync;

/// Where a [`SecondTier`] reports invalidations; cheap to clone.
#[derive(Clone)]
pub struct InvalidationSink {
    f: PublicArc<SinkFn>,
}

impl InvalidationSink {
    /// A sink calling `f`.
    pub fn new(f: impl Fn(Invalidation<'_>) + Send + Sync + 'static) -> Self {
        Self {
            f: PublicArc::new(f),
        }
    }

    /// Reports that `keys` changed.
    pub fn keys(&self, keys: &[&[u8]]) {
        if !keys.is_empty() {
            (self.f)(Invalidation::Keys(keys));
        }
    }

    /// Reports that anything may have changed.
    pub fn all(&self) {
        (self.f)(Invalidation::All);
    }
}

impl fmt::Debug for InvalidationSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvalidationSink")
    }
}

/// What went wrong in a tier call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierErrorKind {
    /// The call did not finish within the tier's timeout.
    Timeout,
    /// The tier could not be reached (connection refused or lost, the
    /// circuit breaker is open).
    Unavailable,
    /// The tier answered something that is not a valid reply.
    Protocol,
    /// The tier refused the call (an error reply).
    Refused,
}

/// A failed tier call: its kind and, where there is one, the cause.
#[derive(Debug)]
pub struct TierError {
    kind: TierErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TierError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: TierErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no further cause.
    #[must_use]
    pub fn of_kind(kind: TierErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> TierErrorKind {
        self.kind
    }
}

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TierErrorKind::Timeout => "the second tier did not answer in time",
            TierErrorKind::Unavailable => "the second tier is unavailable",
            TierErrorKind::Protocol => "the second tier sent an invalid reply",
            TierErrorKind::Refused => "the second tier refused the call",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for TierError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
