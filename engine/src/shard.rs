//! One shard: a hash table of indices into a dense vector of entries, the
//! shard's W-TinyLFU lists, its frequency sketch and its expiry wheel.
//!
//! ```text
//!  table: HashTable<u32> ──► nodes: Vec<Node>  (dense: removal swaps the last
//!                                  │             node into the hole)
//!                                  ├─ prev/next: u32 links of the node's queue
//!                                  │   (window | probation | protected)
//!                                  └─ hits: AtomicU8, bumped by readers
//!  expiry (only once a deadline is used): timers: Vec<Timer> parallel to
//!  nodes, linked into the timer wheel's buckets
//! ```
//!
//! Readers hold the shard's read lock: a hit finds the node, checks its
//! deadline, sets its reference bit and counts the hit in its `hits` byte
//! with a relaxed store (see [`record_hit`]) and clones the value. Writers
//! hold the write lock; the policy reads the reference bit lazily, when an
//! entry reaches the cold end of its queue (the CLOCK-style "second chance"
//! that approximates LRU order without any reordering on the read path),
//! and adds the counted hits to the sketch's estimate of the entry.
//!
//! Nothing in here calls user code other than `Hash`/`Eq`/`Clone` of keys and
//! values: weighers run before the lock is taken, listeners after it is
//! released (the caller gets the removed entries in a [`Removed`] list).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::climber::Climber;
use crate::clock::NEVER;
use crate::listener::RemovalCause;
use crate::sketch::FrequencySketch;
use crate::sync::{AtomicU8, Ordering};
use crate::tags::TagIndex;
use crate::timer_wheel::{Expiry, Timer, NIL};

/// A node's `hits` byte: bit 7 says "read since the policy last looked at
/// this entry" (the CLOCK reference bit); bits 0..=6 count reads not yet
/// folded into the frequency sketch, saturating at [`MAX_HITS`] (the
/// sketch's counters saturate at 15 anyway).
pub(crate) const REFERENCED: u8 = 0x80;
/// See [`REFERENCED`].
pub(crate) const MAX_HITS: u8 = 15;

/// Records a read of an entry: sets the reference bit and counts the hit.
/// A lossy relaxed load and store: concurrent readers may count one hit
/// between them, which only blurs a frequency estimate. Once an entry is
/// referenced and saturated, reads stop writing its cache line at all.
#[inline]
pub(crate) fn record_hit(hits: &AtomicU8) {
    let seen = hits.load(Ordering::Relaxed);
    if seen != REFERENCED | MAX_HITS {
        let count = ((seen & !REFERENCED) + 1).min(MAX_HITS);
        hits.store(REFERENCED | count, Ordering::Relaxed);
    }
}

/// The queue an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

pub(crate) struct Node<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) weight: u32,
    pub(crate) queue: Queue,
    pub(crate) hits: AtomicU8,
}

/// An intrusive list: `head` is the most recently added end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) weight: u64,
}

impl List {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        weight: 0,
    };
}

/// Counters a shard keeps under its write lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) inserts: u64,
    pub(crate) updates: u64,
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
    pub(crate) removed: u64,
    pub(crate) cleared: u64,
    pub(crate) admissions_rejected: u64,
    pub(crate) too_heavy: u64,
}

/// Entries taken out of a shard under its lock, handed to the listener (and
/// dropped) after the lock is released. The first one is stored inline, so
/// the common single eviction allocates nothing.
pub(crate) struct Removed<K, V> {
    first: Option<(K, V, RemovalCause)>,
    rest: Vec<(K, V, RemovalCause)>,
    /// With a spill tier: the evictions it should keep, as (position in
    /// this list, key hash, deadline).
    pub(crate) spill: Vec<(usize, u64, u64)>,
}

impl<K, V> Removed<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
            spill: Vec::new(),
        }
    }

    /// How many entries were pushed.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// The key and value pushed at `position`.
    pub(crate) fn get(&self, position: usize) -> Option<(&K, &V)> {
        let item = match position {
            0 => self.first.as_ref(),
            n => self.rest.get(n - 1),
        };
        item.map(|(k, v, _)| (k, v))
    }

    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if self.first.is_none() {
            self.first = Some((key, value, cause));
        } else {
            self.rest.push((key, value, cause));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = (K, V, RemovalCause)> {
        self.first.into_iter().chain(self.rest)
    }
}

/// The freshness windows of a cache, in nanoseconds (0 when unset).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Windows {
    /// After its time-to-live, an entry stays this long, served as stale.
    pub(crate) stale: u64,
    /// In this last part of its fresh life, a read asks for a refresh.
    pub(crate) refresh: u64,
}

/// What a read found.
pub(crate) enum Lookup<V> {
    Hit(V),
    /// Fresh, but in its `refresh_before` window.
    RefreshDue(V),
    /// Past its time-to-live, within `stale_while_revalidate`.
    Stale(V),
    Miss,
    /// Present but past its deadline: a miss that asks for reclamation.
    Expired,
}

/// Per-operation context from the cache: the hasher and time settings.
pub(crate) struct Ctx<'a, S> {
    pub(crate) hasher: &'a S,
    pub(crate) tti: Option<u64>,
}

pub(crate) struct Shard<K, V> {
    pub(crate) table: HashTable<u32>,
    /// The table's capacity when it was last sized (no tombstones then).
    pub(crate) table_slots: usize,
    pub(crate) nodes: Vec<Node<K, V>>,
    pub(crate) expiry: Option<Box<Expiry>>,
    /// Only once a tagged entry arrives.
    pub(crate) tags: Option<Box<TagIndex>>,
    pub(crate) lists: [List; 3],
    pub(crate) capacity: u64,
    /// With the unit weigher, the most entries the shard can hold; growth of
    /// the tables stops there.
    pub(crate) max_entries: Option<usize>,
    pub(crate) window_max: u64,
    pub(crate) protected_max: u64,
    pub(crate) sketch: FrequencySketch,
    pub(crate) climber: Climber,
    pub(crate) rng: u64,
    pub(crate) counters: Counters,
    pub(crate) writes_since_climb: u32,
    /// A spill tier keeps what this shard evicts: note their deadlines.
    pub(crate) spill_evictions: bool,
}

impl<K, V> Shard<K, V> {
    pub(crate) fn new(capacity: u64, unit_weight: bool, seed: u64) -> Self {
        let max_entries = unit_weight.then(|| usize::try_from(capacity).unwrap_or(usize::MAX));
        let sketch_entries = max_entries.unwrap_or(64).min(1 << 22);
        let mut shard = Self {
            table: HashTable::new(),
            table_slots: 0,
            nodes: Vec::new(),
            expiry: None,
            tags: None,
            lists: [List::EMPTY; 3],
            capacity,
            max_entries,
            window_max: 0,
            protected_max: 0,
            sketch: FrequencySketch::new(sketch_entries),
            climber: Climber::new(capacity),
            rng: seed | 1,
            counters: Counters::default(),
            writes_since_climb: 0,
            spill_evictions: false,
        };
        shard.set_window(capacity / 100);
        shard
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    pub(crate) fn weighted_size(&self) -> u64 {
        self.lists.iter().map(|l| l.weight).sum()
    }

    /// The read path: no policy change but the entry's `hits` (when
    /// `record`) and, under time-to-idle, its access time.
    #[inline]
    pub(crate) fn get<Q, F>(
        &self,
        tti: Option<u64>,
        windows: Windows,
        hash: u64,
        key: &Q,
        now: F,
        record: bool,
    ) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
        F: FnOnce() -> u64,
    {
        let Some(idx) = self.find(hash, key) else {
            return Lookup::Miss;
        };
        let node = &self.nodes[idx as usize];
        let mut freshness = 0u8;
        if let Some(expiry) = &self.expiry {
            let timer = &expiry.timers[idx as usize];
            let at = timer.expires_at(tti);
            if at != NEVER || tti.is_some() {
                let now = now();
                if at <= now {
                    return Lookup::Expired;
                }
                if record && tti.is_some() {
                    timer.accessed.store(now, Ordering::Relaxed);
                }
                if timer.deadline != NEVER && (windows.stale | windows.refresh) != 0 {
                    let fresh_until = timer.deadline.saturating_sub(windows.stale);
                    if now >= fresh_until {
                        freshness = 2;
                    } else if now >= fresh_until.saturating_sub(windows.refresh) {
                        freshness = 1;
                    }
                }
            }
        }
        if record {
            record_hit(&node.hits);
        }
        let value = node.value.clone();
        match freshness {
            0 => Lookup::Hit(value),
            1 => Lookup::RefreshDue(value),
            _ => Lookup::Stale(value),
        }
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| nodes[i as usize].key.borrow() == key)
            .copied()
    }

    /// Whether entry `idx` is past its time-to-live but inside its stale
    /// window at `now` (held, not served by plain reads).
    pub(crate) fn is_stale(&self, idx: u32, now: u64, windows: Windows) -> bool {
        windows.stale != 0
            && self.expiry.as_ref().is_some_and(|e| {
                let deadline = e.timers[idx as usize].deadline;
                deadline != NEVER && now >= deadline.saturating_sub(windows.stale)
            })
    }

    /// Whether entry `idx` is past its deadline at `now`.
    pub(crate) fn is_expired(&self, idx: u32, now: u64, tti: Option<u64>) -> bool {
        self.expiry
            .as_ref()
            .is_some_and(|e| e.timers[idx as usize].expires_at(tti) <= now)
    }

    /// Inserts or replaces `key`. The caller has checked `weight` against
    /// the capacity. Returns the stored entry's index.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn upsert<S: BuildHasher>(
        &mut self,
        ctx: &Ctx<'_, S>,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        deadline: u64,
        now: u64,
        tags: &[&str],
        removed: &mut Removed<K, V>,
    ) where
        K: Hash + Eq,
    {
        if deadline != NEVER || ctx.tti.is_some() {
            self.enable_expiry(now);
        }
        if !tags.is_empty() && self.tags.is_none() {
            self.tags = Some(Box::new(TagIndex::new(self.nodes.len())));
        }
        // Room first, so that the probe below can claim its slot at once.
        self.reserve_one(ctx.hasher);
        let nodes = &self.nodes;
        let slot = self.table.entry(
            hash,
            |&i| nodes[i as usize].key == key,
            |&i| ctx.hasher.hash_one(&nodes[i as usize].key),
        );
        let idx = self.nodes.len() as u32;
        let existing = match slot {
            hashbrown::hash_table::Entry::Occupied(entry) => Some(*entry.get()),
            hashbrown::hash_table::Entry::Vacant(entry) => {
                entry.insert(idx);
                None
            }
        };
        if let Some(idx) = existing {
            // Replacing a value that had already expired ends that entry's
            // life as an expiry, and starts a new one.
            let cause = if self.is_expired(idx, now, ctx.tti) {
                self.counters.expired += 1;
                self.counters.inserts += 1;
                RemovalCause::Expired
            } else {
                self.counters.updates += 1;
                RemovalCause::Replaced
            };
            let node = &mut self.nodes[idx as usize];
            let old = std::mem::replace(&mut node.value, value);
            let old_weight = std::mem::replace(&mut node.weight, weight);
            let queue = node.queue as usize;
            self.lists[queue].weight =
                self.lists[queue].weight - u64::from(old_weight) + u64::from(weight);
            if let Some(expiry) = &mut self.expiry {
                expiry.unschedule(idx);
                let timer = &mut expiry.timers[idx as usize];
                timer.deadline = deadline;
                timer.accessed.store(now, Ordering::Relaxed);
                let at = timer.expires_at(ctx.tti);
                expiry.schedule(idx, at);
            }
            // An update counts as an access, recorded like a read's (the
            // policy folds it in lazily; no list surgery here).
            record_hit(&self.nodes[idx as usize].hits);
            if let Some(index) = &mut self.tags {
                // The new value carries the new tags (none for a plain insert).
                index.set(idx, tags);
            }
            removed.push(key, old, cause);
            return;
        }
        if self.sketch.increment(hash) {
            self.age_pending_hits(1);
        }
        self.nodes.push(Node {
            key,
            value,
            prev: NIL,
            next: NIL,
            weight,
            queue: Queue::Window,
            hits: AtomicU8::new(0),
        });
        if let Some(index) = &mut self.tags {
            index.set(idx, tags);
        }
        if let Some(expiry) = &mut self.expiry {
            expiry.timers.push(Timer::new(deadline, now));
            let at = expiry.timers[idx as usize].expires_at(ctx.tti);
            expiry.schedule(idx, at);
        }
        self.push_head(idx, Queue::Window);
        self.counters.inserts += 1;
        if self.max_entries.is_none() {
            self.sketch.ensure_capacity(self.nodes.len());
        }
    }

    /// Grows the entry vector by doubling, but never past the shard's
    /// entry capacity, so a full cache holds no spare slots (moka#72).
    fn reserve_one<S: BuildHasher>(&mut self, hasher: &S)
    where
        K: Hash,
    {
        // A full shard holds one entry more between an insert and its
        // eviction.
        let len = self.nodes.len();
        let room = self
            .max_entries
            .map_or(usize::MAX, |max| max.saturating_add(1).saturating_sub(len));
        if len == self.nodes.capacity() {
            self.nodes.reserve_exact(len.max(4).min(room).max(1));
        }
        if self.table.len() == self.table.capacity() {
            let nodes = &self.nodes;
            let hash_of = |&i: &u32| hasher.hash_one(&nodes[i as usize].key);
            if len < self.table_slots {
                // Only tombstones of removed entries use up the room: rebuild
                // at the same size rather than let hashbrown double the table
                // (it only rehashes in place below half load).
                let old =
                    std::mem::replace(&mut self.table, HashTable::with_capacity(self.table_slots));
                for idx in old {
                    self.table.insert_unique(hash_of(&idx), idx, hash_of);
                }
            } else {
                self.table.reserve(len.max(4).min(room).max(1), hash_of);
            }
            self.table_slots = self.table.capacity();
        }
    }

    fn enable_expiry(&mut self, now: u64) {
        if self.expiry.is_none() {
            let mut expiry = Expiry::new(now);
            expiry.timers.reserve_exact(self.nodes.capacity());
            expiry
                .timers
                .extend((0..self.nodes.len()).map(|_| Timer::new(NEVER, now)));
            self.expiry = Some(Box::new(expiry));
        }
    }

    /// Removes entry `idx` from every structure and returns it. The last
    /// entry moves into its place.
    pub(crate) fn remove_at<S: BuildHasher>(&mut self, hasher: &S, idx: u32) -> Node<K, V>
    where
        K: Hash,
    {
        self.unlink(idx);
        if let Some(expiry) = &mut self.expiry {
            expiry.unschedule(idx);
        }
        let hash = hasher.hash_one(&self.nodes[idx as usize].key);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        let last = (self.nodes.len() - 1) as u32;
        if idx != last {
            let last_hash = hasher.hash_one(&self.nodes[last as usize].key);
            if let Some(slot) = self.table.find_mut(last_hash, |&i| i == last) {
                *slot = idx;
            }
            self.relink(last, idx);
            if let Some(expiry) = &mut self.expiry {
                expiry.relocate(last, idx);
            }
        }
        if let Some(expiry) = &mut self.expiry {
            expiry.timers.swap_remove(idx as usize);
        }
        if let Some(index) = &mut self.tags {
            index.remove(idx);
        }
        self.nodes.swap_remove(idx as usize)
    }

    /// Removes `key` if present (the caller counts the removal).
    pub(crate) fn remove<Q, S>(&mut self, hasher: &S, hash: u64, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q> + Hash,
        Q: Eq + ?Sized,
        S: BuildHasher,
    {
        let idx = self.find(hash, key)?;
        let node = self.remove_at(hasher, idx);
        Some((node.key, node.value))
    }

    /// Reclaims every entry whose deadline has passed by `now`.
    pub(crate) fn expire<S: BuildHasher>(
        &mut self,
        ctx: &Ctx<'_, S>,
        now: u64,
        removed: &mut Removed<K, V>,
    ) where
        K: Hash,
    {
        let Some(expiry) = self.expiry.as_mut() else {
            return;
        };
        let due = expiry.advance(now);
        for bucket in due {
            loop {
                let Some(expiry) = self.expiry.as_mut() else {
                    return;
                };
                let Some(idx) = expiry.pop(bucket) else {
                    break;
                };
                if expiry.timers[idx as usize].expires_at(ctx.tti) <= now {
                    let node = self.remove_at(ctx.hasher, idx);
                    self.counters.expired += 1;
                    removed.push(node.key, node.value, RemovalCause::Expired);
                } else {
                    expiry.park(idx);
                }
            }
        }
        if let Some(expiry) = self.expiry.as_mut() {
            expiry.reschedule_parked(ctx.tti);
        }
    }

    /// Removes every entry tagged `tag`; returns how many.
    pub(crate) fn invalidate_tag<S: BuildHasher>(
        &mut self,
        hasher: &S,
        tag: &str,
        removed: &mut Removed<K, V>,
    ) -> usize
    where
        K: Hash,
    {
        let Some(index) = &self.tags else {
            return 0;
        };
        // Highest index first: a removal moves only the last entry, which
        // is then never one still to be removed.
        let doomed = index.entries(tag);
        for &idx in &doomed {
            let node = self.remove_at(hasher, idx);
            self.counters.removed += 1;
            removed.push(node.key, node.value, RemovalCause::Invalidated);
        }
        doomed.len()
    }

    /// Empties the shard, handing every entry over as `cause`, and gives
    /// the memory back.
    pub(crate) fn drain(&mut self, removed: &mut Removed<K, V>, cause: RemovalCause) {
        let nodes = std::mem::take(&mut self.nodes);
        self.table = HashTable::new();
        self.table_slots = 0;
        self.expiry = None;
        self.tags = None;
        self.lists = [List::EMPTY; 3];
        self.counters.cleared += nodes.len() as u64;
        for node in nodes {
            removed.push(node.key, node.value, cause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(shard: &mut Shard<u64, u64>, keys: std::ops::Range<u64>) {
        let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let ctx = Ctx {
            hasher: &hasher,
            tti: None,
        };
        let mut removed = Removed::new();
        for key in keys {
            let hash = hasher.hash_one(key);
            let tag = format!("t{}", key % 3000);
            shard.upsert(
                &ctx,
                hash,
                key,
                key,
                1,
                NEVER,
                0,
                &[tag.as_str()],
                &mut removed,
            );
            shard.evict(&ctx, 0, &mut removed);
        }
    }

    #[test]
    fn tables_never_outgrow_the_capacity() {
        for capacity in [1u64, 7, 1000, 3000] {
            let mut shard = Shard::new(capacity, true, 1);
            fill(&mut shard, 0..capacity * 20);
            assert_eq!(shard.len() as u64, capacity);
            assert!(
                shard.nodes.capacity() as u64 <= capacity + 1,
                "{capacity}: {}",
                shard.nodes.capacity()
            );
            // hashbrown keeps 1/8 free; a power-of-two bucket count above that.
            let buckets = shard.table.capacity() as u64;
            assert!(buckets < 2 * capacity + 4, "{capacity}: {buckets}");
        }
    }

    #[test]
    fn node_is_32_bytes_for_u64_pairs() {
        assert_eq!(std::mem::size_of::<Node<u64, u64>>(), 32);
    }

    #[test]
    fn drain_releases_memory() {
        let mut shard = Shard::new(100, true, 1);
        fill(&mut shard, 0..100);
        let mut removed = Removed::new();
        shard.drain(&mut removed, RemovalCause::Cleared);
        assert_eq!(removed.into_iter().count(), 100);
        assert_eq!((shard.nodes.capacity(), shard.table.capacity()), (0, 0));
        assert_eq!(shard.weighted_size(), 0);
    }
}
