//! A second tier under the layer's store (L1 memory, optional spill, then
//! any [`SecondTier`], e.g. `strata_redis::RedisTier`): a resource missing
//! from memory is looked up there before going upstream, stored responses
//! are written there in the background, invalidations delete there, and
//! invalidations the tier hears of (other instances' writes) leave memory.
//!
//! ```text
//!   L1 miss ──► tier get (bounded by the tier's timeout) ──► record ok? ──► into L1, answer as usual
//!   stored  ──► L1 ──► tier set (on the spawner), TTL = remaining freshness + SWR window
//!   invalidated here  ──► L1 remove, tier delete ──► other instances' L1 drop it
//! ```
//!
//! A tier read that an invalidation overtakes is not put into memory: every
//! invalidation heard from the tier bumps an epoch, and a read stores its
//! result only if the epoch did not move while it ran.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use strata::codec::{self, Codec, RecordMeta};
use strata::tiered::{Invalidation, InvalidationSink, SecondTier, TierError};

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
    ) -> BoxFuture<'a, Result<(), TierError>>;
    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), TierError>>;
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
    ) -> BoxFuture<'a, Result<(), TierError>> {
        Box::pin(SecondTier::set(self, key, record, ttl, &[]))
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), TierError>> {
        Box::pin(SecondTier::delete(self, key))
    }

    fn attach(&self, sink: InvalidationSink) {
        SecondTier::attach(self, sink);
    }
}

/// The layer's second tier and its invalidation epoch.
pub(crate) struct Tier {
    pub(crate) inner: Arc<dyn DynTier>,
    epoch: AtomicU64,
}

impl Tier {
    pub(crate) fn new(inner: Arc<dyn DynTier>) -> Self {
        Self {
            inner,
            epoch: AtomicU64::new(0),
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
    let epoch = tier.epoch.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let call = tier.inner.get(key.as_bytes());
    #[cfg(feature = "tracing")]
    let call = tracing::Instrument::instrument(call, tracing::debug_span!("strata_tower.tier"));
    let reply = call.await;
    crate::telemetry::upstream("l2", started.elapsed(), reply.is_ok());
    let raw = reply.ok()??;
    let (record, used) = codec::decode(&raw).ok()?;
    if used != raw.len() || record.key != key.as_bytes() || record.tombstone {
        return None;
    }
    let start = record.value_offset();
    let variants = Variants::decode(raw.slice(start..start + record.value.len())).ok()?;
    if tier.epoch.load(Ordering::SeqCst) == epoch {
        let _ = shared.store.insert(key.to_owned(), variants.clone());
    }
    Some(variants)
}

/// Writes the resource `key` to the tier in the background (on the
/// layer's spawner), to live as long as its freshest response may be used.
pub(crate) fn write(shared: &Shared, key: &str, variants: &Variants) {
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
    (spawner.0)(Box::pin(async move {
        // A failed write costs other instances an upstream request.
        let _ = inner
            .set(key.as_bytes(), record, Some(Duration::from_secs(ttl)))
            .await;
    }));
}

/// Deletes the resource `key` from the tier in the background.
pub(crate) fn delete(shared: &Shared, key: &str) {
    let (Some(tier), Some(spawner)) = (&shared.tier, &shared.config.spawner) else {
        return;
    };
    let inner = Arc::clone(&tier.inner);
    let key = key.to_owned();
    (spawner.0)(Box::pin(async move {
        let _ = inner.delete(key.as_bytes()).await;
    }));
}
