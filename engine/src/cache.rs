//! The public cache: shards chosen by hash, the hooks, and the listener
//! delivery that runs after every shard lock is released.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

use ahash::RandomState;
use crossbeam_utils::CachePadded;

use crate::builder::{CacheBuilder, Config};
use crate::clock::{deadline_after, saturating_nanos, Clock, NEVER};
use crate::error::InsertError;
use crate::listener::{Hooks, RemovalCause};
use crate::shard::{Ctx, Lookup, Removed, Shard, Windows};
use crate::single_flight::{Flight, Flights};
use crate::spill_hook::{SpillHook, Spilled};
use crate::stats::{RequestCounters, Stats};
use crate::sync::{Arc, AtomicU64, Ordering, PublicArc, RwLock};

/// A concurrent, weight-bounded cache with W-TinyLFU eviction.
///
/// Cloning is cheap and every clone shares the same entries. See the
/// [crate docs](crate) for the design.
///
/// # Examples
///
/// ```
/// use strata::Cache;
///
/// let cache = Cache::new(10_000);
/// cache.insert("answer", 42)?;
/// assert_eq!(cache.get("answer"), Some(42));
/// assert_eq!(cache.remove("answer"), Some(42));
/// assert!(!cache.contains_key("answer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cache<K, V, S = RandomState> {
    inner: Arc<Inner<K, V, S>>,
}

pub(crate) struct Slot<K, V> {
    shard: RwLock<Shard<K, V>>,
}

/// A shard climbs (tunes its window) at most once per this many writes;
/// summing the request counters costs a few cache misses.
const CLIMB_CHECK_INTERVAL: u32 = 32;

/// A cached load error, type-erased (its type is chosen per call).
pub(crate) type Negative = PublicArc<dyn std::any::Any + Send + Sync>;

struct Inner<K, V, S> {
    slots: Box<[CachePadded<Slot<K, V>>]>,
    /// Errors of failed loads, when `negative_ttl` is set.
    negatives: Option<Cache<K, Negative>>,
    flights: Flights<K>,
    requests: RequestCounters,
    hasher: S,
    hooks: Hooks<K, V>,
    clock: Clock,
    capacity: u64,
    ttl: Option<u64>,
    tti: Option<u64>,
    windows: Windows,
    listener_panics: AtomicU64,
    /// The spill tier, if configured.
    pub(crate) spill: Option<Box<dyn SpillHook<K, V>>>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> Cache<K, V, RandomState>
where
    K: Hash + Eq,
    V: Clone,
{
    /// A cache holding up to `max_entries` entries, with default settings.
    ///
    /// Values above [`MAX_CAPACITY`](crate::MAX_CAPACITY) are lowered to it;
    /// a capacity of 0 makes a cache that holds nothing (every insert is
    /// refused as too heavy). [`Cache::builder`] reports such settings as
    /// errors instead.
    #[must_use]
    pub fn new(max_entries: u64) -> Self {
        let config = Config {
            max_capacity: max_entries.min(crate::MAX_CAPACITY),
            ..Config::default()
        };
        let shards = crate::builder::default_shards(config.max_capacity);
        let hooks = Hooks {
            weigher: None,
            listener: None,
            spawner: None,
        };
        Self::from_parts(
            config,
            shards,
            RandomState::new(),
            hooks,
            Clock::system(),
            None,
        )
    }
}

impl<K, V> Cache<K, V, RandomState> {
    /// A builder for every other setting.
    pub fn builder() -> CacheBuilder<K, V, RandomState> {
        CacheBuilder::with_default_hasher()
    }
}

impl<K, V, S> Cache<K, V, S> {
    pub(crate) fn from_parts(
        config: Config,
        shards: usize,
        hasher: S,
        hooks: Hooks<K, V>,
        clock: Clock,
        spill: Option<Box<dyn SpillHook<K, V>>>,
    ) -> Self {
        let unit = hooks.weigher.is_none();
        let capacity = config.max_capacity;
        let n = shards as u64;
        let slots = (0..n)
            .map(|i| {
                let share = capacity / n + u64::from(i < capacity % n);
                let mut shard = Shard::new(share, unit, 0x9e37_79b9 ^ (i + 1) << 20);
                shard.spill_evictions = spill.is_some();
                CachePadded::new(Slot {
                    shard: RwLock::new(shard),
                })
            })
            .collect();
        let negatives = config.negative_ttl.map(|ttl| {
            let entries = (capacity / 8).max(64);
            let config = Config {
                max_capacity: entries,
                time_to_live: Some(ttl),
                ..Config::default()
            };
            let hooks = Hooks {
                weigher: None,
                listener: None,
                spawner: None,
            };
            let shards = crate::builder::default_shards(entries);
            Cache::from_parts(
                config,
                shards,
                RandomState::new(),
                hooks,
                clock.clone(),
                None,
            )
        });
        Self {
            inner: Arc::new(Inner {
                slots,
                negatives,
                flights: Flights::new(shards),
                requests: RequestCounters::new(),
                hasher,
                hooks,
                clock,
                capacity,
                ttl: config.time_to_live.map(saturating_nanos),
                tti: config.time_to_idle.map(saturating_nanos),
                windows: Windows {
                    stale: config.stale_while_revalidate.map_or(0, saturating_nanos),
                    refresh: config.refresh_before.map_or(0, saturating_nanos),
                },
                listener_panics: AtomicU64::new(0),
                spill,
            }),
        }
    }

    /// The configured capacity.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// The number of shards.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.inner.slots.len()
    }

    /// The number of entries held (including expired ones that were not
    /// reclaimed yet; they are never returned).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.slots.iter().map(|s| s.shard.read().len()).sum()
    }

    /// True if the cache holds no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight of the entries held.
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.inner
            .slots
            .iter()
            .map(|s| s.shard.read().weighted_size())
            .sum()
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let (hits, misses) = self.inner.requests.totals();
        let mut stats = Stats {
            hits,
            misses,
            listener_panics: self.inner.listener_panics.load(Ordering::Relaxed),
            ..Stats::default()
        };
        for slot in self.inner.slots.iter() {
            let shard = slot.shard.read();
            let c = shard.counters;
            stats.inserts += c.inserts;
            stats.updates += c.updates;
            stats.evictions += c.evicted;
            stats.expirations += c.expired;
            stats.removals += c.removed;
            stats.cleared += c.cleared;
            stats.admissions_rejected += c.admissions_rejected;
            stats.rejected_too_heavy += c.too_heavy;
            stats.entries += shard.len() as u64;
            stats.weighted_size += shard.weighted_size();
        }
        if let Some(spill) = &self.inner.spill {
            stats.spill = spill.stats();
        }
        stats
    }

    /// Hands removed entries to the listener, outside every lock.
    #[inline]
    fn notify(&self, removed: Removed<K, V>) {
        if !removed.is_empty() {
            self.deliver(removed);
        }
    }

    fn deliver(&self, removed: Removed<K, V>) {
        let Some(listener) = &self.inner.hooks.listener else {
            return;
        };
        let mut first_panic = None;
        for (key, value, cause) in removed.into_iter() {
            let call = catch_unwind(AssertUnwindSafe(|| listener.on_removal(key, value, cause)));
            if let Err(panic) = call {
                self.inner.listener_panics.fetch_add(1, Ordering::Relaxed);
                first_panic.get_or_insert(panic);
            }
        }
        if let Some(panic) = first_panic {
            resume_unwind(panic);
        }
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    pub(crate) fn flights(&self) -> &Flights<K> {
        &self.inner.flights
    }

    pub(crate) fn negatives(&self) -> Option<&Cache<K, Negative>> {
        self.inner.negatives.as_ref()
    }

    pub(crate) fn spawner(&self) -> Option<&dyn crate::listener::Spawner> {
        self.inner.hooks.spawner.as_deref()
    }

    /// Counts a request in the stats.
    pub(crate) fn record_request(&self, hit: bool) {
        if hit {
            self.inner.requests.hit();
        } else {
            self.inner.requests.miss();
        }
    }

    /// Stores the result of a load, unless a write of the key since the
    /// load began invalidated it (checked under the shard lock).
    pub(crate) fn insert_loaded(
        &self,
        key: K,
        value: V,
        tags: &[&str],
        load: Option<&Arc<Flight>>,
    ) -> Result<(), InsertError<K, V>> {
        self.insert_inner(key, value, self.inner.ttl, tags, load)
    }

    /// Stores a value filled by a second tier or a loader, with `ttl`
    /// (the cache's default when `None`), unless a write of the key since
    /// the fill began invalidated `load`. Returns whether the value still
    /// stands: `false` if it was refused, or if `load` was invalidated
    /// before or right after the store (a newer write won either way).
    pub(crate) fn insert_filled(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        tags: &[&str],
        load: Option<&Arc<Flight>>,
    ) -> bool {
        let ttl = ttl.map(saturating_nanos).or(self.inner.ttl);
        let stored = self.insert_inner(key, value, ttl, tags, load).is_ok();
        stored && !load.is_some_and(|flight| flight.invalidated.load(Ordering::SeqCst))
    }

    /// The cache-wide time-to-live.
    pub(crate) fn default_ttl(&self) -> Option<Duration> {
        self.inner.ttl.map(Duration::from_nanos)
    }

    /// The cache's clock: nanoseconds since it was built.
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// Unix time in milliseconds by the cache's clock.
    pub(crate) fn wall_ms(&self) -> u64 {
        self.inner.clock.wall_ms(self.inner.clock.now())
    }

    #[inline]
    pub(crate) fn slot(&self, hash: u64) -> &Slot<K, V> {
        // Bits 32.. pick the shard: hashbrown uses the top 7 bits and the
        // low bits, so the shard index stays independent of both.
        // The length is a power of two, so the mask keeps the index in
        // bounds and the compiler drops the check.
        let slots = &self.inner.slots;
        &slots[(hash >> 32) as usize & (slots.len() - 1)]
    }

    #[inline]
    fn ctx(&self) -> Ctx<'_, S> {
        Ctx {
            hasher: &self.inner.hasher,
            tti: self.inner.tti,
        }
    }

    /// One read of `key` in `slot`, with its freshness.
    #[inline]
    pub(crate) fn lookup<Q>(&self, slot: &Slot<K, V>, hash: u64, key: &Q, record: bool) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        slot.shard.read().get(
            self.inner.tti,
            self.inner.windows,
            hash,
            key,
            || self.inner.clock.now(),
            record,
        )
    }

    /// The value for `key`, if cached and fresh; counts as an access.
    ///
    /// Takes only the shard's read lock: concurrent hits never exclude one
    /// another.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let slot = self.slot(hash);
        let found = self.lookup(slot, hash, key, true);
        match found {
            Lookup::Hit(value) | Lookup::RefreshDue(value) => {
                self.inner.requests.hit();
                Some(value)
            }
            Lookup::Miss => {
                if self.inner.spill.is_some() {
                    if let Some(value) = self.spilled_value(slot, hash, key, true) {
                        self.inner.requests.hit();
                        return Some(value);
                    }
                }
                self.inner.requests.miss();
                None
            }
            Lookup::Stale(_) => {
                self.inner.requests.miss();
                None
            }
            Lookup::Expired => {
                self.inner.requests.miss();
                self.reclaim(slot);
                None
            }
        }
    }

    /// A memory miss: the spill tier's entry for `key`, promoted into
    /// memory when `promote` (a read) and still current.
    #[cold]
    fn spilled_value<Q>(&self, slot: &Slot<K, V>, hash: u64, key: &Q, promote: bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tier = self.inner.spill.as_deref()?;
        let found = tier.read(hash).filter(|f| f.key.borrow() == key);
        // Past its time-to-live, in its stale window: not for plain reads
        // (promoted all the same, so that `load` can serve it as stale).
        let stale = self.inner.windows.stale;
        let fresh = found.as_ref().is_some_and(|f| {
            stale == 0
                || f.deadline == NEVER
                || self.inner.clock.now() < f.deadline.saturating_sub(stale)
        });
        if !promote {
            return found.filter(|_| fresh).map(|f| f.value);
        }
        tier.count_lookup(fresh);
        let found = found?;
        let value = found.value.clone();
        self.promote(slot, hash, found);
        fresh.then_some(value)
    }

    /// Puts an entry read from the spill tier back into memory, unless the
    /// key was written (or promoted) since it was read.
    fn promote(&self, slot: &Slot<K, V>, hash: u64, found: Spilled<K, V>) {
        let Some(tier) = self.inner.spill.as_deref() else {
            return;
        };
        let weight = match &self.inner.hooks.weigher {
            None => 1,
            Some(weigher) => weigher.weigh(&found.key, &found.value).max(1),
        };
        let ctx = self.ctx();
        let mut removed = Removed::new();
        {
            let mut shard = slot.shard.write();
            let fits = u64::from(weight) <= shard.capacity;
            if fits && shard.find(hash, &found.key).is_none() && tier.promote(hash, found.token) {
                let now = self.inner.clock.now();
                if shard.expiry.is_some() {
                    shard.expire(&ctx, now, &mut removed);
                }
                let Spilled {
                    key,
                    value,
                    deadline,
                    ..
                } = found;
                shard.upsert(
                    &ctx,
                    hash,
                    key,
                    value,
                    weight,
                    deadline,
                    now,
                    &[],
                    &mut removed,
                );
                shard.evict(&ctx, now, &mut removed);
                self.spill_evicted(&removed, now);
            }
        }
        self.notify(removed);
    }

    /// Under the shard lock: hands the entries just evicted for space to
    /// the spill tier.
    fn spill_evicted(&self, removed: &Removed<K, V>, now: u64) {
        let Some(tier) = self.inner.spill.as_deref() else {
            return;
        };
        for &(position, hash, deadline) in &removed.spill {
            if let Some((key, value)) = removed.get(position) {
                tier.evicted(hash, key, value, deadline, now);
            }
        }
    }

    /// The value for `key` without counting an access or a hit: no effect on
    /// eviction, idle time or stats.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let slot = self.slot(hash);
        match self.lookup(slot, hash, key, false) {
            Lookup::Hit(value) | Lookup::RefreshDue(value) => Some(value),
            Lookup::Miss => self.spilled_value(slot, hash, key, false),
            Lookup::Expired | Lookup::Stale(_) => None,
        }
    }

    /// Whether `key` is cached and not expired (like [`Cache::peek`]).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.slot(hash).shard.read();
        match shard.find(hash, key) {
            None if self.inner.spill.is_some() => {
                drop(shard);
                self.spilled_value(self.slot(hash), hash, key, false)
                    .is_some()
            }
            None => false,
            Some(idx) => {
                let now = self.now_if(shard.expiry.is_some());
                !shard.is_expired(idx, now, self.inner.tti)
                    && !shard.is_stale(idx, now, self.inner.windows)
            }
        }
    }

    /// Caches `value` under `key` with the default time-to-live, replacing
    /// any value it had.
    ///
    /// The new entry may be evicted right away if the admission policy
    /// finds it less popular than what it would displace; that is not an
    /// error.
    ///
    /// # Errors
    ///
    /// [`InsertError::TooHeavy`] if the entry weighs more than one shard's
    /// share of the capacity; the key's old value, if any, is removed.
    pub fn insert(&self, key: K, value: V) -> Result<(), InsertError<K, V>> {
        self.insert_inner(key, value, self.inner.ttl, &[], None)
    }

    /// Like [`Cache::insert`], labelling the entry with `tags` (duplicates
    /// are ignored), so that [`Cache::invalidate_tag`] can remove it with
    /// every other entry carrying one of them. An insert of the same key
    /// without tags drops the old entry's tags with its value.
    ///
    /// # Errors
    ///
    /// As [`Cache::insert`].
    ///
    /// # Examples
    ///
    /// ```
    /// use strata::Cache;
    ///
    /// let cache = Cache::new(100);
    /// cache.insert_with_tags("/users/1", "ada", &["users", "team:a"])?;
    /// cache.insert_with_tags("/users/2", "grace", &["users", "team:b"])?;
    /// cache.insert_with_tags("/teams/a", "a", &["team:a"])?;
    /// assert_eq!(cache.invalidate_tag("team:a"), 2);
    /// assert_eq!(cache.get("/users/2"), Some("grace"));
    /// assert_eq!(cache.invalidate_tags(&["users", "team:b"]), 1);
    /// assert!(cache.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_with_tags(
        &self,
        key: K,
        value: V,
        tags: &[&str],
    ) -> Result<(), InsertError<K, V>> {
        self.insert_inner(key, value, self.inner.ttl, tags, None)
    }

    /// Removes every entry tagged `tag` ([`RemovalCause::Invalidated`]) and
    /// returns how many. Loads in flight when it runs do not store their
    /// results afterwards (their tags are not known before they finish).
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        self.invalidate_tags(&[tag])
    }

    /// Removes every entry carrying any of `tags`; returns how many.
    pub fn invalidate_tags(&self, tags: &[&str]) -> usize {
        let mut count = 0;
        self.for_each_shard(|shard, removed| {
            self.inner.flights.invalidate_all();
            for tag in tags {
                count += shard.invalidate_tag(&self.inner.hasher, tag, removed);
            }
        });
        count
    }

    /// Like [`Cache::insert`] with a time-to-live for this entry alone
    /// (durations beyond about 584 years mean "never").
    ///
    /// # Errors
    ///
    /// As [`Cache::insert`].
    pub fn insert_with_ttl(
        &self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<(), InsertError<K, V>> {
        self.insert_inner(key, value, Some(saturating_nanos(ttl)), &[], None)
    }

    fn insert_inner(
        &self,
        key: K,
        value: V,
        ttl: Option<u64>,
        tags: &[&str],
        load: Option<&Arc<Flight>>,
    ) -> Result<(), InsertError<K, V>> {
        if let Some(negatives) = &self.inner.negatives {
            // A value for the key replaces any error cached for it.
            negatives.remove(&key);
        }
        let weight = match &self.inner.hooks.weigher {
            None => 1,
            Some(weigher) => weigher.weigh(&key, &value).max(1),
        };
        let hash = self.hash(&key);
        let slot = self.slot(hash);
        let ctx = self.ctx();
        let mut removed = Removed::new();
        let result = {
            let mut shard = slot.shard.write();
            if load.is_some_and(|flight| flight.invalidated.load(Ordering::SeqCst)) {
                // A write of this key since the load began wins over the
                // load's older result.
                return Ok(());
            }
            self.inner.flights.invalidate(hash, &key, load);
            let timed = ttl.is_some() || ctx.tti.is_some() || shard.expiry.is_some();
            let now = self.now_if(timed);
            if shard.expiry.is_some() {
                shard.expire(&ctx, now, &mut removed);
            }
            if let Some(tier) = self.inner.spill.as_deref() {
                let through = tier.write_on_insert()
                    && tags.is_empty()
                    && u64::from(weight) <= shard.capacity
                    && {
                        let deadline = ttl.map_or(NEVER, |ttl| {
                            deadline_after(now, ttl.saturating_add(self.inner.windows.stale))
                        });
                        tier.inserted(hash, &key, &value, deadline, now)
                    };
                if !through {
                    tier.forget(hash);
                }
            }
            if u64::from(weight) > shard.capacity {
                if let Some((old_key, old_value)) = shard.remove(ctx.hasher, hash, &key) {
                    shard.counters.removed += 1;
                    removed.push(old_key, old_value, RemovalCause::Removed);
                }
                shard.counters.too_heavy += 1;
                Err(InsertError::TooHeavy {
                    key,
                    value,
                    weight,
                    max_weight: shard.capacity,
                })
            } else {
                // An entry is kept through its stale window, if any.
                let deadline = ttl.map_or(NEVER, |ttl| {
                    deadline_after(now, ttl.saturating_add(self.inner.windows.stale))
                });
                shard.upsert(
                    &ctx,
                    hash,
                    key,
                    value,
                    weight,
                    deadline,
                    now,
                    tags,
                    &mut removed,
                );
                shard.writes_since_climb += 1;
                if shard.writes_since_climb >= CLIMB_CHECK_INTERVAL {
                    shard.writes_since_climb = 0;
                    let (hits, misses) = self.inner.requests.totals();
                    shard.climb(hits, misses, self.inner.slots.len() as u64);
                }
                shard.evict(&ctx, now, &mut removed);
                self.spill_evicted(&removed, now);
                Ok(())
            }
        };
        self.notify(removed);
        result
    }

    /// Removes `key`, returning its value if it was cached and not expired.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(negatives) = &self.inner.negatives {
            negatives.remove(key);
        }
        let hash = self.hash(key);
        let ctx = self.ctx();
        let mut removed = Removed::new();
        let value = {
            let slot = self.slot(hash);
            let mut shard = slot.shard.write();
            self.inner.flights.invalidate(hash, key, None);
            let now = self.now_if(shard.expiry.is_some());
            let mut on_disk = None;
            if let Some(tier) = self.inner.spill.as_deref() {
                if shard.find(hash, key).is_none() {
                    on_disk = tier
                        .read(hash)
                        .filter(|f| f.key.borrow() == key)
                        .map(|f| f.value);
                }
                tier.forget(hash);
            }
            let Some(idx) = shard.find(hash, key) else {
                // A spilled entry was counted as evicted when it left memory.
                return on_disk;
            };
            let expired = shard.is_expired(idx, now, ctx.tti);
            let node = shard.remove_at(ctx.hasher, idx);
            let (key, value) = (node.key, node.value);
            if expired {
                shard.counters.expired += 1;
                removed.push(key, value, RemovalCause::Expired);
                None
            } else {
                shard.counters.removed += 1;
                if self.inner.hooks.listener.is_some() {
                    removed.push(key, value.clone(), RemovalCause::Removed);
                }
                Some(value)
            }
        };
        self.notify(removed);
        value
    }

    /// Removes every entry (the listener hears [`RemovalCause::Cleared`])
    /// and releases the memory the shards held.
    pub fn clear(&self) {
        if let Some(negatives) = &self.inner.negatives {
            negatives.clear();
        }
        self.for_each_shard(|shard, removed| {
            self.inner.flights.invalidate_all();
            shard.drain(removed, RemovalCause::Cleared);
        });
        if let Some(tier) = &self.inner.spill {
            tier.clear();
        }
    }

    /// Up to `n` of the most frequently used entries held in memory, most
    /// used first, with their estimated use counts (the admission sketch's
    /// estimate plus reads not yet folded into it; the sketch ages, so
    /// these are recent counts). Visits every entry under its shard's read
    /// lock: meant for an admin endpoint, not a hot path.
    pub fn hottest(&self, n: usize) -> Vec<(K, u64)>
    where
        K: Clone,
    {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        if n == 0 {
            return Vec::new();
        }
        let mut top: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::with_capacity(n + 1);
        let mut keys: Vec<K> = Vec::new();
        for slot in self.inner.slots.iter() {
            let shard = slot.shard.read();
            let now = self.now_if(shard.expiry.is_some());
            for idx in 0..shard.len() as u32 {
                if shard.is_expired(idx, now, self.inner.tti) {
                    continue;
                }
                let frequency = shard.frequency(&self.inner.hasher, idx);
                if top.len() == n && top.peek().is_some_and(|Reverse(low)| low.0 >= frequency) {
                    continue;
                }
                let at = keys.len();
                keys.push(shard.nodes[idx as usize].key.clone());
                top.push(Reverse((frequency, usize::MAX - at, at)));
                if top.len() > n {
                    top.pop();
                }
            }
        }
        let mut ranked: Vec<(u64, usize)> = top
            .into_iter()
            .map(|Reverse((frequency, _, at))| (frequency, at))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked
            .into_iter()
            .map(|(frequency, at)| (keys[at].clone(), frequency))
            .collect()
    }

    /// Every tag carried by entries held in memory, with how many carry
    /// it, most used first (ties by name).
    pub fn tags(&self) -> Vec<(String, usize)> {
        let mut counts: hashbrown::HashMap<String, usize, RandomState> =
            hashbrown::HashMap::default();
        for slot in self.inner.slots.iter() {
            let shard = slot.shard.read();
            if let Some(index) = &shard.tags {
                for (tag, count) in index.counts() {
                    *counts.entry_ref(tag).or_default() += count;
                }
            }
        }
        let mut tags: Vec<(String, usize)> = counts.into_iter().collect();
        tags.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tags
    }

    /// Keeps only the entries for which `keep` returns true; the others are
    /// removed ([`RemovalCause::Removed`]). Only entries held in memory are
    /// visited, not those in a spill tier.
    ///
    /// `keep` runs while the shard's write lock is held: it must not call
    /// back into this cache, or it deadlocks.
    pub fn retain<F>(&self, mut keep: F)
    where
        F: FnMut(&K, &V) -> bool,
    {
        let ctx = self.ctx();
        self.for_each_shard(|shard, removed| {
            let now = self.now_if(shard.expiry.is_some());
            shard.expire(&ctx, now, removed);
            // Walk backwards: a removal moves the last entry, which was
            // already visited, into the hole.
            for idx in (0..shard.len() as u32).rev() {
                let node = &shard.nodes[idx as usize];
                if !keep(&node.key, &node.value) {
                    if let Some(tier) = &self.inner.spill {
                        tier.forget(ctx.hasher.hash_one(&node.key));
                    }
                    let node = shard.remove_at(ctx.hasher, idx);
                    shard.counters.removed += 1;
                    removed.push(node.key, node.value, RemovalCause::Removed);
                }
            }
        });
    }

    /// Reclaims every expired entry now, in every shard. Expired entries are
    /// otherwise reclaimed by the writes (and the reads that find them) of
    /// their shard; call this when a cache sees few writes but should let
    /// go of memory promptly.
    pub fn purge_expired(&self) {
        let ctx = self.ctx();
        self.for_each_shard(|shard, removed| {
            if shard.expiry.is_some() {
                shard.expire(&ctx, self.inner.clock.now(), removed);
            }
        });
    }

    /// Runs `work` on each shard under its write lock, and hands what it
    /// removed to the listener once that lock is released.
    fn for_each_shard(&self, mut work: impl FnMut(&mut Shard<K, V>, &mut Removed<K, V>)) {
        for slot in self.inner.slots.iter() {
            let mut removed = Removed::new();
            work(&mut slot.shard.write(), &mut removed);
            self.notify(removed);
        }
    }

    /// An iterator over a snapshot of the entries held in memory, one shard
    /// at a time (clones of keys and values; expired entries and entries in
    /// a spill tier are skipped). Writes made
    /// during the iteration may or may not be seen.
    pub fn iter(&self) -> Iter<'_, K, V, S>
    where
        K: Clone,
    {
        Iter {
            cache: self,
            next_shard: 0,
            buffer: Vec::new().into_iter(),
        }
    }

    /// Reclaims expired entries of `slot` if its lock is free right now.
    fn reclaim(&self, slot: &Slot<K, V>) {
        let mut removed = Removed::new();
        if let Some(mut shard) = slot.shard.try_write() {
            let now = self.inner.clock.now();
            shard.expire(&self.ctx(), now, &mut removed);
        }
        self.notify(removed);
    }

    fn now_if(&self, needed: bool) -> u64 {
        if needed {
            self.inner.clock.now()
        } else {
            0
        }
    }
}

#[cfg(feature = "spill")]
impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    /// A clean shutdown point for the spill tier: writes every entry held
    /// in memory and not yet on disk to the spill tier, saves the admission
    /// state (frequency sketch and window sizes) next to the segments and
    /// flushes them, so that a cache opened on the same directory starts
    /// with these entries and admits as this one did. The cache stays
    /// usable. Without a spill tier it does nothing.
    ///
    /// Dropping the last handle of a cache saves the admission state and
    /// flushes too, but does not write the memory's entries.
    ///
    /// # Errors
    ///
    /// [`SpillError`](crate::spill::SpillError) if the state could not be
    /// written or the segments not flushed.
    pub fn persist(&self) -> Result<(), crate::spill::SpillError> {
        let Some(tier) = self.inner.spill.as_deref() else {
            return Ok(());
        };
        let ctx = self.ctx();
        for slot in self.inner.slots.iter() {
            let shard = slot.shard.write();
            let now = self.inner.clock.now();
            for idx in 0..shard.len() as u32 {
                let tagged = shard
                    .tags
                    .as_ref()
                    .is_some_and(|t| t.of_node[idx as usize].is_some());
                if tagged || shard.is_expired(idx, now, ctx.tti) {
                    continue;
                }
                let deadline = shard
                    .expiry
                    .as_ref()
                    .map_or(NEVER, |e| e.timers[idx as usize].expires_at(ctx.tti));
                let node = &shard.nodes[idx as usize];
                let hash = ctx.hasher.hash_one(&node.key);
                tier.persisted(hash, &node.key, &node.value, deadline, now);
            }
        }
        tier.persist(&self.inner.export_state())
    }
}

#[cfg(feature = "spill")]
impl<K, V, S> Cache<K, V, S> {
    /// Restores the admission state a clean shutdown saved, if it matches
    /// this cache (same hasher, shards and capacities).
    pub(crate) fn restore_state(&self) {
        let Some(tier) = self.inner.spill.as_deref() else {
            return;
        };
        let Some(states) = tier.saved_state(self.inner.slots.len()) else {
            return;
        };
        let matches = self
            .inner
            .slots
            .iter()
            .zip(&states)
            .all(|(slot, state)| slot.shard.read().capacity == state.capacity);
        if !matches {
            return;
        }
        let mut all = true;
        for (slot, state) in self.inner.slots.iter().zip(&states) {
            all &= slot.shard.write().import_state(state);
        }
        if all {
            tier.mark_restored();
        }
    }
}

#[cfg(feature = "spill")]
impl<K, V, S> Inner<K, V, S> {
    fn export_state(&self) -> Vec<crate::spill::ShardState> {
        self.slots
            .iter()
            .map(|slot| slot.shard.read().export_state())
            .collect()
    }
}

#[cfg(feature = "spill")]
impl<K, V, S> Drop for Inner<K, V, S> {
    fn drop(&mut self) {
        if let Some(tier) = self.spill.as_deref() {
            // Best effort: a drop has no one to report an error to.
            let _ = tier.persist(&self.export_state());
        }
    }
}

/// Iterator over a snapshot of a cache's entries; see [`Cache::iter`].
pub struct Iter<'a, K, V, S> {
    cache: &'a Cache<K, V, S>,
    next_shard: usize,
    buffer: std::vec::IntoIter<(K, V)>,
}

impl<K, V, S> Iterator for Iter<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(item);
            }
            let slot = self.cache.inner.slots.get(self.next_shard)?;
            self.next_shard += 1;
            let shard = slot.shard.read();
            let now = self.cache.now_if(shard.expiry.is_some());
            let tti = self.cache.inner.tti;
            let windows = self.cache.inner.windows;
            let snapshot: Vec<(K, V)> = (0..shard.len() as u32)
                .filter(|&idx| {
                    !shard.is_expired(idx, now, tti) && !shard.is_stale(idx, now, windows)
                })
                .map(|idx| {
                    let node = &shard.nodes[idx as usize];
                    (node.key.clone(), node.value.clone())
                })
                .collect();
            self.buffer = snapshot.into_iter();
        }
    }
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.slots.len())
            .field("len", &self.len())
            .field("weighted_size", &self.weighted_size())
            .finish_non_exhaustive()
    }
}
