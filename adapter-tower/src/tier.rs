//! A second tier under the layer's store (L1 memory, optional spill, then
//! any [`SecondTier`], e.g. `strata_redis::RedisTier`): a resource missing
//! from memory is looked up there before going upstream, stored responses
//! are written there in the background, invalidations delete there, and
//! invalidations the tier hears of (other instances' writes) leave memory.
//!
//! ```text
//!   L1 miss ──► breaker closed? ──► tier get (bounded by the tier's timeout) ──► record ok? ──► into L1, answer as usual
//!   stored  ──► L1 ──► tier set (on the spawner), TTL = remaining freshness + SWR window
//!   invalidated here  ──► L1 remove, tier delete ──► other instances' L1 drop it
//!   (a key, a tag, a prefix)
//! ```
//!
//! A tier read that an invalidation overtakes is not put into memory: every
//! invalidation, heard from the tier or made here, bumps an epoch, and a
//! read stores its result only if the epoch did not move while it ran.
//! While an invalidation made here is still running on the tier, memory
//! misses do not read the tier at all: they could find what is being
//! deleted, and the tier does not tell an instance of its own deletes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use strata::codec::{self, Codec, RecordMeta};
use strata::tiered::{CircuitBreaker, Invalidation, InvalidationSink, SecondTier, TierError};

use crate::entry::Variants;
use crate::layer::Shared;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SecondTier`] behind a pointer (its methods are async, so it cannot be
/// a trait object itself).
pub(crate) trait DynTier: Send + Sync {
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<Bytes>, TierError>>;
    fn set<'a>(
        &'a self,
        key: &'a [u8],
        record: Bytes,
        ttl: Option<Duration>,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<(), TierError>>;
    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), TierError>>;
    fn invalidate_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<u64, TierError>>;
    fn invalidate_prefix<'a>(&'a self, prefix: &'a [u8]) -> BoxFuture<'a, Result<u64, TierError>>;
    fn attach(&self, sink: InvalidationSink);
}

impl<T: SecondTier> DynTier for T {
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Option<Bytes>, TierError>> {
        Box::pin(SecondTier::get(self, key))
    }

    fn set<'a>(
        &'a self,
        key: &'a [u8],
        record: Bytes,
        ttl: Option<Duration>,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<(), TierError>> {
        Box::pin(async move {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            SecondTier::set(self, key, record, ttl, &tags).await
        })
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), TierError>> {
        Box::pin(SecondTier::delete(self, key))
    }

    fn invalidate_tag<'a>(&'a self, tag: &'a str) -> BoxFuture<'a, Result<u64, TierError>> {
        Box::pin(SecondTier::invalidate_tag(self, tag))
    }

    fn invalidate_prefix<'a>(&'a self, prefix: &'a [u8]) -> BoxFuture<'a, Result<u64, TierError>> {
        Box::pin(SecondTier::invalidate_prefix(self, prefix))
    }

    fn attach(&self, sink: InvalidationSink) {
        SecondTier::attach(self, sink);
    }
}

/// The layer's second tier and its invalidation epoch.
pub(crate) struct Tier {
    pub(crate) inner: Arc<dyn DynTier>,
    epoch: AtomicU64,
    /// Invalidations made here that are still running on the tier.
    purging: Arc<AtomicUsize>,
    /// Invalidations made here so far: a write queued before one of them
    /// is not sent after it (it could put back what it deleted).
    purges_started: Arc<AtomicU64>,
    /// Skips reads while the tier is down; every call's outcome feeds it.
    breaker: Arc<CircuitBreaker>,
    counters: Arc<Counters>,
}

/// What the layer did with its second tier; see [`SecondTierStats`].
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    fills_dropped: AtomicU64,
    skipped: AtomicU64,
    breaker_skipped: AtomicU64,
    writes: AtomicU64,
    write_errors: AtomicU64,
    writes_dropped: AtomicU64,
    purges: AtomicU64,
    purge_errors: AtomicU64,
    invalidations_heard: AtomicU64,
}

/// The layer's calls to its second tier
/// ([`CacheLayer::second_tier_stats`](crate::CacheLayer::second_tier_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecondTierStats {
    /// Memory misses the tier answered with a stored resource.
    pub hits: u64,
    /// Memory misses the tier did not have.
    pub misses: u64,
    /// Reads that failed (timeout, unreachable, error reply): misses too.
    pub errors: u64,
    /// Records that did not decode, or were for another key: misses too.
    pub corrupt: u64,
    /// Reads an invalidation overtook: served, not put into memory.
    pub fills_dropped: u64,
    /// Memory misses that did not read the tier because an invalidation
    /// made here was still running there.
    pub skipped: u64,
    /// Memory misses that did not read the tier because its circuit
    /// breaker was open.
    pub breaker_skipped: u64,
    /// Whether the breaker is open now (the tier looked down).
    pub breaker_open: bool,
    /// Stored responses written to the tier.
    pub writes: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Writes not sent because an invalidation made here started after
    /// the response was stored.
    pub writes_dropped: u64,
    /// Invalidations (by key, tag or prefix) made here and done there.
    pub purges: u64,
    /// Invalidations that failed there (the copies stay until their TTL).
    pub purge_errors: u64,
    /// Invalidation notices heard from the tier (other instances' writes).
    pub invalidations_heard: u64,
}

impl Tier {
    pub(crate) fn new(inner: Arc<dyn DynTier>, breaker: CircuitBreaker) -> Self {
        Self {
            inner,
            breaker: Arc::new(breaker),
            epoch: AtomicU64::new(0),
            purging: Arc::new(AtomicUsize::new(0)),
            purges_started: Arc::default(),
            counters: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> SecondTierStats {
        let c = &*self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SecondTierStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            errors: get(&c.errors),
            corrupt: get(&c.corrupt),
            fills_dropped: get(&c.fills_dropped),
            skipped: get(&c.skipped),
            breaker_skipped: get(&c.breaker_skipped),
            breaker_open: self.breaker.is_open(),
            writes: get(&c.writes),
            write_errors: get(&c.write_errors),
            writes_dropped: get(&c.writes_dropped),
            purges: get(&c.purges),
            purge_errors: get(&c.purge_errors),
            invalidations_heard: get(&c.invalidations_heard),
        }
    }

    /// Points the tier's invalidations at `shared`'s store.
    pub(crate) fn attach(shared: &Arc<Shared>) {
        let Some(tier) = &shared.tier else { return };
        let weak: Weak<Shared> = Arc::downgrade(shared);
        tier.inner.attach(InvalidationSink::new(move |event| {
            let Some(shared) = weak.upgrade() else { return };
            let Some(tier) = &shared.tier else { return };
            tier.epoch.fetch_add(1, Ordering::SeqCst);
            count(&tier.counters.invalidations_heard);
            match event {
                Invalidation::Keys(keys) => {
                    for key in keys {
                        if let Ok(key) = std::str::from_utf8(key) {
                            shared.store.remove(key);
                        }
                    }
                }
                Invalidation::All => shared.store.clear(),
            }
        }));
    }
}

/// The resource `key` from the tier, put into memory unless an
/// invalidation overtook the read; `None` on a miss or any failure.
pub(crate) async fn read(shared: &Shared, key: &str) -> Option<Variants> {
    let tier = shared.tier.as_ref()?;
    let counters = &tier.counters;
    if tier.purging.load(Ordering::SeqCst) > 0 {
        count(&counters.skipped);
        return None;
    }
    if !tier.breaker.allow() {
        count(&counters.breaker_skipped);
        return None;
    }
    let epoch = tier.epoch.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let call = tier.inner.get(key.as_bytes());
    #[cfg(feature = "tracing")]
    let call = tracing::Instrument::instrument(call, tracing::debug_span!("strata_tower.tier"));
    let reply = call.await;
    tier.breaker.record(&reply);
    crate::telemetry::upstream("l2", started.elapsed(), reply.is_ok());
    let raw = match reply {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            count(&counters.misses);
            return None;
        }
        Err(_) => {
            count(&counters.errors);
            return None;
        }
    };
    let Some(variants) = decode(&raw, key) else {
        count(&counters.corrupt);
        return None;
    };
    count(&counters.hits);
    if tier.epoch.load(Ordering::SeqCst) == epoch {
        let tags = variants
            .first()
            .map(|s| crate::service::tags_of(shared, key, &s.headers))
            .unwrap_or_default();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let _ = shared
            .store
            .insert_with_tags(key.to_owned(), variants.clone(), &tags);
    } else {
        count(&counters.fills_dropped);
    }
    Some(variants)
}

/// The resource in a record read from the tier for `key`.
fn decode(raw: &Bytes, key: &str) -> Option<Variants> {
    let (record, used) = codec::decode(raw).ok()?;
    if used != raw.len() || record.key != key.as_bytes() || record.tombstone {
        return None;
    }
    let start = record.value_offset();
    Variants::decode(raw.slice(start..start + record.value.len())).ok()
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Writes the resource `key` to the tier in the background (on the
/// layer's spawner), to live as long as its freshest response may be used,
/// with its tags.
pub(crate) fn write(shared: &Shared, key: &str, variants: &Variants, tags: &[String]) {
    let (Some(tier), Some(spawner)) = (&shared.tier, &shared.config.spawner) else {
        return;
    };
    let now = SystemTime::now();
    let window = shared
        .config
        .stale_while_revalidate
        .map_or(0, |w| w.as_secs());
    let ttl = variants
        .iter()
        .map(|stored| match stored.lifetime() {
            // Usable while fresh, then while it may be served stale; with
            // validators, an hour more to revalidate it.
            Some(lifetime) => {
                let left = lifetime.saturating_sub(stored.age(now)) + window;
                left + if stored.has_validator() { 3600 } else { 0 }
            }
            None => 3600,
        })
        .max()
        .unwrap_or(0);
    if ttl == 0 {
        return;
    }
    let mut buf = Vec::new();
    let mut writer = codec::RecordWriter::new(&mut buf);
    writer.buf().extend_from_slice(key.as_bytes());
    writer.end_key();
    variants.encode(writer.buf());
    if writer.finish(RecordMeta::default(), false).is_err() {
        return;
    }
    let record = Bytes::from(buf);
    let inner = Arc::clone(&tier.inner);
    let key = key.to_owned();
    let tags = tags.to_vec();
    let counters = Arc::clone(&tier.counters);
    let purges_started = Arc::clone(&tier.purges_started);
    let purges_before = purges_started.load(Ordering::SeqCst);
    let breaker = Arc::clone(&tier.breaker);
    (spawner.0)(Box::pin(async move {
        if purges_started.load(Ordering::SeqCst) != purges_before {
            // Maybe an invalidation of this very response, whose delete
            // may already be done: sending it now could undo that.
            count(&counters.writes_dropped);
            return;
        }
        // A failed write costs other instances an upstream request.
        let written = inner
            .set(
                key.as_bytes(),
                record,
                Some(Duration::from_secs(ttl)),
                &tags,
            )
            .await;
        breaker.record(&written);
        count(if written.is_ok() {
            &counters.writes
        } else {
            &counters.write_errors
        });
    }));
}

/// What an invalidation made here removes from the tier.
pub(crate) enum Purge {
    Key(String),
    Tag(String),
    Prefix(String),
}

/// Removes `what` from the tier in the background. Until that ends,
/// memory misses skip the tier, and reads already running do not fill
/// memory (see the module docs).
pub(crate) fn purge(shared: &Shared, what: Purge) {
    let (Some(tier), Some(spawner)) = (&shared.tier, &shared.config.spawner) else {
        return;
    };
    tier.epoch.fetch_add(1, Ordering::SeqCst);
    tier.purges_started.fetch_add(1, Ordering::SeqCst);
    let running = Running::start(&tier.purging);
    let inner = Arc::clone(&tier.inner);
    let counters = Arc::clone(&tier.counters);
    let breaker = Arc::clone(&tier.breaker);
    (spawner.0)(Box::pin(async move {
        let _running = running;
        let done = match &what {
            Purge::Key(key) => inner.delete(key.as_bytes()).await.map(|()| 1),
            Purge::Tag(tag) => inner.invalidate_tag(tag).await,
            Purge::Prefix(prefix) => inner.invalidate_prefix(prefix.as_bytes()).await,
        };
        breaker.record(&done);
        // A failure leaves copies in the tier until their TTL ends.
        count(if done.is_ok() {
            &counters.purges
        } else {
            &counters.purge_errors
        });
        // The name is not logged: keys may carry query strings.
        #[cfg(feature = "tracing")]
        if let Err(error) = done {
            let kind = match &what {
                Purge::Key(_) => "key",
                Purge::Tag(_) => "tag",
                Purge::Prefix(_) => "prefix",
            };
            tracing::warn!(
                kind,
                error = ?error.kind(),
                "strata_tower: a second-tier invalidation failed"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = done;
    }));
}

/// One running purge, counted until dropped (also if its task is).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
