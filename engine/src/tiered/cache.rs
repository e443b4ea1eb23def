//! [`TieredCache`]: an L1 [`Cache`] in front of a [`SecondTier`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::resume_unwind;
use std::time::Duration;

use ahash::RandomState;
use bytes::Bytes;

use super::breaker::Breaker;
use super::builder::{Promotion, TieredBuilder, WriteMode};
use super::stats::{bump, Counters, TierStats};
use super::{Invalidation, SecondTier, TierError, TierErrorKind};
use crate::cache::Cache;
use crate::codec::{self, Codec, RecordMeta, RecordWriter, HEADER_LEN, TRAILER_LEN};
use crate::load::{Freshness, LoadError, Loaded};
use crate::shard::Lookup;
use crate::single_flight::{catch_unwind, wait, Flight, Joined, Lead};
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering, PublicArc};

/// A loader's error as the tiered flights carry it: every caller of a
/// flight may have its own error type, recovered by downcasting.
type Erased = PublicArc<dyn Any + Send + Sync>;

pub(super) struct Shared<K, V, T, S> {
    pub(super) l1: Cache<K, V, S>,
    pub(super) tier: T,
    pub(super) write: WriteMode,
    pub(super) promotion: Promotion,
    pub(super) l2_ttl: Option<Duration>,
    pub(super) breaker: Breaker,
    /// L2 hits per key hash, for [`Promotion::AfterHits`].
    pub(super) hit_counts: Option<Cache<u64, u32>>,
    pub(super) counters: Counters,
    pub(super) pending_writes: AtomicUsize,
}

/// An L1 [`Cache`] in front of a [`SecondTier`]: read-through, write-through
/// or write-behind, promotion into L1, one flight per key across both tiers,
/// stale-while-revalidate, and tier failures treated as misses behind a
/// circuit breaker. Cheap to clone. See the [module docs](crate::tiered).
pub struct TieredCache<K, V, T, S = RandomState> {
    pub(super) shared: PublicArc<Shared<K, V, T, S>>,
}

impl<K, V, T, S> Clone for TieredCache<K, V, T, S> {
    fn clone(&self) -> Self {
        Self {
            shared: PublicArc::clone(&self.shared),
        }
    }
}

impl<K, V, T: fmt::Debug, S> fmt::Debug for TieredCache<K, V, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("tier", &self.shared.tier)
            .field("write", &self.shared.write)
            .field("promotion", &self.shared.promotion)
            .field("l2_ttl", &self.shared.l2_ttl)
            .finish_non_exhaustive()
    }
}

/// A value found in the tier.
struct Found<V> {
    value: V,
    ttl_left: Option<Duration>,
    tags: Vec<String>,
}

impl<K, V, T, S> TieredCache<K, V, T, S>
where
    K: Codec + Hash + Eq + Clone + Send + Sync + 'static,
    V: Codec + Clone + Send + Sync + 'static,
    T: SecondTier,
    S: BuildHasher + Send + Sync + 'static,
{
    /// A builder composing `l1` with `tier`.
    pub fn builder(l1: Cache<K, V, S>, tier: T) -> TieredBuilder<K, V, T, S> {
        TieredBuilder::new(l1, tier)
    }

    /// The in-process tier.
    pub fn l1(&self) -> &Cache<K, V, S> {
        &self.shared.l1
    }

    /// The second tier.
    pub fn tier(&self) -> &T {
        &self.shared.tier
    }

    /// The tiered counters.
    pub fn stats(&self) -> TierStats {
        let c = &self.shared.counters;
        let now = self.shared.l1.now();
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TierStats {
            l1_hits: get(&c.l1_hits),
            l2_hits: get(&c.l2_hits),
            l2_misses: get(&c.l2_misses),
            l2_errors: get(&c.l2_errors),
            l2_skipped: get(&c.l2_skipped),
            l2_corrupt: get(&c.l2_corrupt),
            l2_writes: get(&c.l2_writes),
            l2_write_errors: get(&c.l2_write_errors),
            loads: get(&c.loads),
            promotions: get(&c.promotions),
            invalidated_keys: get(&c.invalidated_keys),
            flushes: get(&c.flushes),
            fills_dropped: get(&c.fills_dropped),
            breaker_opened: self.shared.breaker.times_opened(),
            breaker_open: self.shared.breaker.is_open(now),
        }
    }

    /// The value for `key` from L1, else from the tier (promoted into L1),
    /// else `None`. A tier failure is a miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        let none = None::<fn() -> std::future::Ready<Result<V, std::convert::Infallible>>>;
        match self.resolve(key.clone(), &[], none, false).await {
            Ok(value) => value,
            Err(LoadError::Failed(never)) => match *never {},
            Err(LoadError::Panicked) => None,
        }
    }

    /// The values for `keys` (in order): L1 first, then one multi-key tier
    /// call for the misses. Nothing is loaded.
    pub async fn get_many(&self, keys: &[K]) -> Vec<Option<V>> {
        let shared = &*self.shared;
        let l1 = &shared.l1;
        let mut out: Vec<Option<V>> = keys.iter().map(|key| l1.get(key)).collect();
        let hits = out.iter().filter(|v| v.is_some()).count();
        shared
            .counters
            .l1_hits
            .fetch_add(hits as u64, Ordering::Relaxed);
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return out;
        }
        // Lead a flight for each missed key that has none, so that an
        // invalidation racing the read keeps the value out of L1.
        let mut leads = Vec::with_capacity(missing.len());
        let mut encoded = Vec::with_capacity(missing.len());
        for &i in &missing {
            let key = &keys[i];
            let hash = l1.hash(key);
            let lead = match l1
                .flights()
                .join_or_lead::<Option<V>, Erased>(hash, key, |k| l1.hash(k))
            {
                Joined::Lead(flight) => Some(Lead::<K, Option<V>, Erased>::new(
                    l1.flights(),
                    hash,
                    key,
                    flight,
                )),
                Joined::Wait(_) | Joined::Foreign => None,
            };
            leads.push(lead);
            encoded.push(encode_key(key));
        }
        let records = match self.call_tier(shared.tier.get_many(&encoded)).await {
            Some(Ok(records)) if records.len() == encoded.len() => records,
            Some(Ok(_)) => {
                // A tier that answers for the wrong number of keys is broken.
                bump(&shared.counters.l2_corrupt);
                vec![None; encoded.len()]
            }
            _ => vec![None; encoded.len()],
        };
        for (((&i, lead), key_bytes), record) in
            missing.iter().zip(leads).zip(&encoded).zip(records)
        {
            let found = record.and_then(|raw| self.verify(key_bytes, raw));
            match &found {
                Some(_) => bump(&shared.counters.l2_hits),
                None => bump(&shared.counters.l2_misses),
            }
            let value = found.map(|found| {
                let own = lead.as_ref().map(|lead| &lead.flight);
                self.promote(&keys[i], &found, own);
                found.value
            });
            if let Some(lead) = lead {
                lead.complete(Ok(value.clone()));
            }
            out[i] = value;
        }
        out
    }

    /// The value for `key`: from L1, else the tier, else `loader` (whose
    /// value goes into L1 and the tier). Concurrent misses of one key make
    /// one tier read and at most one load.
    ///
    /// # Errors
    ///
    /// The loader's error, shared by every caller waiting on that load
    /// ([`LoadError::Failed`]), or [`LoadError::Panicked`] if it panicked
    /// in another caller's task. Tier failures are never errors here.
    ///
    /// # Panics
    ///
    /// If the loader panics in this caller's task.
    pub async fn try_get_or_load<F, Fut, E>(&self, key: K, loader: F) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.try_get_or_load_with_tags(key, &[], loader).await
    }

    /// Like [`TieredCache::try_get_or_load`], storing a loaded value with
    /// `tags` in both tiers.
    ///
    /// # Errors
    ///
    /// As [`TieredCache::try_get_or_load`].
    ///
    /// # Panics
    ///
    /// As [`TieredCache::try_get_or_load`].
    pub async fn try_get_or_load_with_tags<F, Fut, E>(
        &self,
        key: K,
        tags: &[&str],
        loader: F,
    ) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        match self.resolve(key, tags, Some(loader), false).await? {
            Some(value) => Ok(value),
            // A loader was given, so an answer without a value cannot
            // happen; treat it as a panic elsewhere rather than panic here.
            None => Err(LoadError::Panicked),
        }
    }

    /// Like [`TieredCache::try_get_or_load`], honouring L1's freshness
    /// windows: an entry inside
    /// [`stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate)
    /// is returned at once, marked stale, while one background reload runs
    /// the loader and writes its value to both tiers; likewise, marked
    /// fresh, for an entry in its
    /// [`refresh_before`](crate::CacheBuilder::refresh_before) window.
    ///
    /// # Errors
    ///
    /// As [`TieredCache::try_get_or_load`], when the value is loaded now.
    pub async fn load<F, Fut, E>(&self, key: K, loader: F) -> Result<Loaded<V>, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let l1 = &self.shared.l1;
        let hash = l1.hash(&key);
        let (value, freshness, refresh) = match l1.lookup(l1.slot(hash), hash, &key, true) {
            Lookup::Hit(value) => (value, Freshness::Fresh, false),
            Lookup::RefreshDue(value) => (value, Freshness::Fresh, true),
            Lookup::Stale(value) => (value, Freshness::Stale, true),
            Lookup::Miss | Lookup::Expired => {
                let value = self.try_get_or_load(key, loader).await?;
                return Ok(Loaded {
                    value,
                    freshness: Freshness::Loaded,
                });
            }
        };
        l1.record_request(true);
        bump(&self.shared.counters.l1_hits);
        if refresh {
            if let Some(spawner) = l1.spawner() {
                let this = self.clone();
                spawner.spawn(Box::pin(async move {
                    // The stale value is what callers get meanwhile; a
                    // failed reload leaves it to expire.
                    let _ = this.resolve(key, &[], Some(loader), true).await;
                }));
            }
        }
        Ok(Loaded { value, freshness })
    }

    /// Stores `value` in L1 and the tier (through or behind, as built);
    /// other instances attached to the tier drop their copies.
    ///
    /// # Errors
    ///
    /// The tier's error, for a write-through that failed (or was skipped
    /// by the open breaker); L1 holds the value either way.
    pub async fn insert(&self, key: K, value: V) -> Result<(), TierError> {
        self.insert_with_tags(key, value, &[]).await
    }

    /// Like [`TieredCache::insert`], with tags in both tiers.
    ///
    /// # Errors
    ///
    /// As [`TieredCache::insert`].
    pub async fn insert_with_tags(&self, key: K, value: V, tags: &[&str]) -> Result<(), TierError> {
        let key_bytes = encode_key(&key);
        let record = self.encode_record(&key_bytes, &value, tags);
        // Refused only when too heavy: the tier may still hold it.
        let _ = self.shared.l1.insert_filled(key, value, None, tags, None);
        match record {
            Some(record) => self.write_tier(key_bytes, record, tags).await,
            None => Err(TierError::of_kind(TierErrorKind::Refused)),
        }
    }

    /// Removes `key` from L1 and the tier; other instances attached to the
    /// tier drop their copies.
    ///
    /// # Errors
    ///
    /// The tier's error; L1 no longer holds the key either way.
    pub async fn remove(&self, key: &K) -> Result<(), TierError> {
        self.shared.l1.remove(key);
        let key_bytes = encode_key(key);
        self.write_call(self.shared.tier.delete(&key_bytes))
            .await
            .map(drop)
    }

    /// Removes every entry tagged `tag` from L1 and the tier; returns how
    /// many the tier had.
    ///
    /// # Errors
    ///
    /// The tier's error; L1 holds none of them either way.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, TierError> {
        self.shared.l1.invalidate_tag(tag);
        self.write_call(self.shared.tier.invalidate_tag(tag)).await
    }

    /// Removes every entry whose encoded key starts with `prefix` from L1
    /// and the tier (e.g. `b"user:"` for `String` keys, which encode as
    /// their UTF-8 bytes); returns how many the tier had. The tier may walk
    /// its whole keyspace for them (see [`SecondTier::invalidate_prefix`]).
    ///
    /// # Errors
    ///
    /// The tier's error; L1 holds none of them either way.
    pub async fn invalidate_prefix(&self, prefix: &[u8]) -> Result<u64, TierError> {
        let mut encoded = Vec::new();
        self.shared.l1.retain(|key, _| {
            encoded.clear();
            key.encode(&mut encoded);
            !encoded.starts_with(prefix)
        });
        self.write_call(self.shared.tier.invalidate_prefix(prefix))
            .await
    }

    /// The lookup behind every read: L1, then one flight per key that reads
    /// the tier and, if a loader is given, runs it. `refresh` skips both
    /// reads (a background reload of a stale L1 entry goes to the source).
    async fn resolve<F, Fut, E>(
        &self,
        key: K,
        tags: &[&str],
        mut loader: Option<F>,
        refresh: bool,
    ) -> Result<Option<V>, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let shared = &*self.shared;
        let l1 = &shared.l1;
        let hash = l1.hash(&key);
        let flights = l1.flights();
        let flight = loop {
            if !refresh {
                if let Some(value) = l1.get(&key) {
                    bump(&shared.counters.l1_hits);
                    return Ok(Some(value));
                }
            }
            match flights.join_or_lead::<Option<V>, Erased>(hash, &key, |k| l1.hash(k)) {
                Joined::Lead(flight) => break Some(flight),
                // Someone else's flight of another shape: a reload then
                // has nothing to add; a read goes on without coalescing.
                Joined::Foreign if refresh => return Ok(None),
                Joined::Foreign => break None,
                Joined::Wait(_) if refresh => return Ok(None),
                Joined::Wait(flight) => match wait::<Option<V>, Erased>(flight).await {
                    Some(Ok(Some(value))) => return Ok(Some(value)),
                    // That flight only read the tier; with a loader, lead
                    // (or join) one that loads.
                    Some(Ok(None)) if loader.is_some() => {}
                    Some(Ok(None)) => return Ok(None),
                    Some(Err(LoadError::Failed(error))) => {
                        if let Ok(error) = PublicArc::clone(&*error).downcast::<E>() {
                            return Err(LoadError::Failed(error));
                        }
                        // Another caller's error type: load ourselves.
                    }
                    Some(Err(LoadError::Panicked)) => return Err(LoadError::Panicked),
                    None => {}
                },
            }
        };
        let mut lead =
            flight.map(|flight| Lead::<K, Option<V>, Erased>::new(flights, hash, &key, flight));
        if !refresh && lead.is_some() {
            // A write may have landed between the miss and the flight's
            // registration: that value is the answer.
            if let Some(value) = l1.peek(&key) {
                if let Some(lead) = lead.take() {
                    lead.complete(Ok(Some(value.clone())));
                }
                return Ok(Some(value));
            }
        }
        let own = lead.as_ref().map(|lead| &lead.flight);
        let key_bytes = encode_key(&key);
        // A call that found the tier failing does not wait on it again to
        // write the loaded value: one timeout per call at most.
        let mut tier_failed = false;
        if !refresh {
            match self.read_tier(&key_bytes).await {
                Ok(Some(found)) => {
                    self.promote(&key, &found, own);
                    if let Some(lead) = lead {
                        lead.complete(Ok(Some(found.value.clone())));
                    }
                    return Ok(Some(found.value));
                }
                Ok(None) => {}
                Err(()) => tier_failed = true,
            }
        }
        let Some(loader) = loader.take() else {
            if let Some(lead) = lead {
                lead.complete(Ok(None));
            }
            return Ok(None);
        };
        bump(&shared.counters.loads);
        match catch_unwind(loader()).await {
            Ok(Ok(value)) => {
                let record = self.encode_record(&key_bytes, &value, tags);
                // Refused only when too heavy: it still answers the callers.
                let _ = l1.insert_filled(key.clone(), value.clone(), None, tags, own);
                let overtaken = own.is_some_and(|f| f.invalidated.load(Ordering::SeqCst));
                if overtaken {
                    bump(&shared.counters.fills_dropped);
                } else if let (Some(record), false) = (record, tier_failed) {
                    // A loaded value that no write overtook goes to the
                    // tier; its failure only costs other instances a load.
                    let _ = self.write_tier(key_bytes, record, tags).await;
                }
                if let Some(lead) = lead {
                    lead.complete(Ok(Some(value.clone())));
                }
                Ok(Some(value))
            }
            Ok(Err(error)) => {
                let error = PublicArc::new(error);
                if let Some(lead) = lead {
                    let erased: Erased = PublicArc::clone(&error) as Erased;
                    lead.complete(Err(LoadError::Failed(PublicArc::new(erased))));
                }
                Err(LoadError::Failed(error))
            }
            Err(panic) => {
                if let Some(lead) = lead {
                    lead.complete(Err(LoadError::Panicked));
                }
                resume_unwind(panic)
            }
        }
    }

    /// Reads and verifies `key`'s record from the tier: `Ok(None)` for a
    /// miss (or a record that fails verification), `Err` when the call
    /// failed or the breaker skipped it.
    async fn read_tier(&self, key_bytes: &[u8]) -> Result<Option<Found<V>>, ()> {
        let counters = &self.shared.counters;
        let raw = match self.call_tier(self.shared.tier.get(key_bytes)).await {
            Some(Ok(Some(raw))) => raw,
            Some(Ok(None)) => {
                bump(&counters.l2_misses);
                return Ok(None);
            }
            Some(Err(_)) | None => return Err(()),
        };
        let found = self.verify(key_bytes, raw);
        match &found {
            Some(_) => bump(&counters.l2_hits),
            None => bump(&counters.l2_misses),
        }
        Ok(found)
    }

    /// Runs a tier read through the breaker: `None` when it was skipped;
    /// failures are counted and reported to the breaker.
    async fn call_tier<R>(
        &self,
        call: impl Future<Output = Result<R, TierError>>,
    ) -> Option<Result<R, TierError>> {
        let shared = &*self.shared;
        if !shared.breaker.allow(shared.l1.now()) {
            bump(&shared.counters.l2_skipped);
            return None;
        }
        let result = call.await;
        if result.is_err() {
            bump(&shared.counters.l2_errors);
        }
        shared.breaker.saw(&result, shared.l1.now());
        Some(result)
    }

    /// Runs a tier write through the breaker.
    async fn write_call<R>(
        &self,
        call: impl Future<Output = Result<R, TierError>>,
    ) -> Result<R, TierError> {
        let shared = &*self.shared;
        if !shared.breaker.allow(shared.l1.now()) {
            bump(&shared.counters.l2_skipped);
            bump(&shared.counters.l2_write_errors);
            return Err(TierError::of_kind(TierErrorKind::Unavailable));
        }
        let result = call.await;
        if result.is_err() {
            bump(&shared.counters.l2_write_errors);
        }
        shared.breaker.saw(&result, shared.l1.now());
        result
    }

    /// Writes a record to the tier, now or in the background.
    async fn write_tier(
        &self,
        key_bytes: Vec<u8>,
        record: Bytes,
        tags: &[&str],
    ) -> Result<(), TierError> {
        let shared = &*self.shared;
        let ttl = shared.l2_ttl;
        if let (WriteMode::Behind { max_pending }, Some(spawner)) =
            (shared.write, shared.l1.spawner())
        {
            let pending = shared.pending_writes.fetch_add(1, Ordering::AcqRel);
            if pending < max_pending {
                let this = self.clone();
                let tags: Vec<String> = tags.iter().map(|&t| t.to_owned()).collect();
                spawner.spawn(Box::pin(async move {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    let result = this
                        .write_call(this.shared.tier.set(&key_bytes, record, ttl, &tags))
                        .await;
                    if result.is_ok() {
                        bump(&this.shared.counters.l2_writes);
                    }
                    this.shared.pending_writes.fetch_sub(1, Ordering::AcqRel);
                }));
                return Ok(());
            }
            shared.pending_writes.fetch_sub(1, Ordering::AcqRel);
        }
        self.write_call(shared.tier.set(&key_bytes, record, ttl, tags))
            .await?;
        bump(&shared.counters.l2_writes);
        Ok(())
    }

    /// Copies a tier hit into L1 (as the promotion policy says), guarded
    /// by the read's flight.
    fn promote(&self, key: &K, found: &Found<V>, own: Option<&Arc<Flight>>) {
        let shared = &*self.shared;
        if let (Promotion::AfterHits(n), Some(counts)) = (shared.promotion, &shared.hit_counts) {
            let hash = shared.l1.hash(key);
            let seen = counts.get(&hash).unwrap_or(0).saturating_add(1);
            if seen < n {
                let _ = counts.insert(hash, seen);
                return;
            }
            counts.remove(&hash);
        }
        let ttl = match (shared.l1.default_ttl(), found.ttl_left) {
            (Some(l1), Some(left)) => Some(l1.min(left)),
            (l1, left) => left.or(l1),
        };
        let tags: Vec<&str> = found.tags.iter().map(String::as_str).collect();
        if shared
            .l1
            .insert_filled(key.clone(), found.value.clone(), ttl, &tags, own)
        {
            bump(&shared.counters.promotions);
        } else if own.is_some_and(|f| f.invalidated.load(Ordering::SeqCst)) {
            bump(&shared.counters.fills_dropped);
        }
    }

    /// Checks a record from the tier: it decodes whole, is `key`'s, is not
    /// a tombstone or expired, and its value decodes.
    fn verify(&self, key_bytes: &[u8], raw: Bytes) -> Option<Found<V>> {
        let counters = &self.shared.counters;
        let (record, used) = match codec::decode(&raw) {
            Ok(decoded) => decoded,
            Err(_) => {
                bump(&counters.l2_corrupt);
                return None;
            }
        };
        if used != raw.len() || record.key != key_bytes {
            bump(&counters.l2_corrupt);
            return None;
        }
        if record.tombstone {
            return None;
        }
        let ttl_left = match record.expires_at_ms {
            None => None,
            Some(at) => {
                let now = self.shared.l1.wall_ms();
                if at <= now {
                    return None;
                }
                Some(Duration::from_millis(at - now))
            }
        };
        let tags = record.tags().map(str::to_owned).collect();
        let start = record.value_offset();
        let end = start + record.value.len();
        match V::decode(raw.slice(start..end)) {
            Ok(value) => Some(Found {
                value,
                ttl_left,
                tags,
            }),
            Err(_) => {
                bump(&counters.l2_corrupt);
                None
            }
        }
    }

    /// `value` as a tier record, expiring after the tier TTL; `None` if it
    /// cannot be encoded (a key, value or tag beyond the format's limits).
    fn encode_record(&self, key_bytes: &[u8], value: &V, tags: &[&str]) -> Option<Bytes> {
        let expires_at_ms = self.shared.l2_ttl.map(|ttl| {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            self.shared.l1.wall_ms().saturating_add(ms)
        });
        let mut buf = Vec::with_capacity(
            HEADER_LEN + key_bytes.len() + value.encoded_len_hint() + TRAILER_LEN,
        );
        let mut writer = RecordWriter::new(&mut buf);
        writer.buf().extend_from_slice(key_bytes);
        writer.end_key();
        value.encode(writer.buf());
        writer
            .finish(
                RecordMeta {
                    expires_at_ms,
                    tags,
                },
                false,
            )
            .ok()?;
        Some(Bytes::from(buf))
    }
}

impl<K, V, T, S> Shared<K, V, T, S>
where
    K: Codec + Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    /// An invalidation from the tier.
    pub(super) fn invalidated(&self, event: Invalidation<'_>) {
        match event {
            Invalidation::Keys(keys) => {
                for key in keys {
                    // A key that does not decode was never ours.
                    if let Ok(key) = K::decode(Bytes::copy_from_slice(key)) {
                        self.l1.remove(&key);
                        bump(&self.counters.invalidated_keys);
                    }
                }
            }
            Invalidation::All => {
                self.l1.clear();
                bump(&self.counters.flushes);
            }
        }
    }
}

fn encode_key<K: Codec>(key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.encoded_len_hint());
    key.encode(&mut out);
    out
}
