//! W-TinyLFU eviction over a shard's three queues.
//!
//! The policy is Einziger, Friedman and Manes' W-TinyLFU (ACM ToS 2017):
//!
//! ```text
//!            insert                 admitted if more frequent
//!   new ──► [ window (LRU) ] ──► candidate ──vs──► victim ◄── [ probation ]
//!                                                                 ▲   │ hit
//!                                                        demoted  │   ▼
//!                                                           [ protected ]
//! ```
//!
//! New entries enter a small *window*. When the window overflows, its
//! least recent entry becomes a *candidate* for the main space; if the main
//! space is full, the candidate must beat the least recent entry of
//! *probation* (the *victim*) on the frequency sketch, or it is evicted
//! instead. Entries hit while in probation move to *protected* (80% of the
//! main space); protected overflow is demoted back to probation. The window's
//! share is tuned per shard by the [`Climber`](crate::climber::Climber).
//!
//! Recency order is approximated CLOCK-style: readers only set a node's
//! reference bit (and count the hit); when an entry reaches the cold end of
//! its queue with the bit set, it gets its second chance here (window: back
//! to the hot end; probation: promotion; protected: back to the hot end).
//! Each such move clears the bit, so every loop ends. The counted hits are
//! added to the sketch's estimate whenever an entry is compared, and folded
//! into the sketch when it is evicted, so its popularity outlives it.
//!
//! As in Caffeine, a candidate whose frequency does not exceed the victim's
//! is rejected, except that a warm candidate (frequency above 5) wins a
//! 1-in-128 lottery, so an attacker cannot pin the main space with a few
//! artificially hot keys (hash flooding).

use std::hash::{BuildHasher, Hash};

use crate::clock::NEVER;
use crate::listener::RemovalCause;
use crate::shard::{Ctx, Queue, Removed, Shard, REFERENCED};
use crate::sync::Ordering;
use crate::timer_wheel::NIL;

/// Protected's share of the main space.
const PROTECTED_SHARE: f64 = 0.8;
/// Candidates at or below this frequency never win a tie.
const WARM_FREQUENCY: u64 = 5;
/// Each loop below gives at most this many referenced entries a second
/// chance before it takes the coldest one regardless, so that one insert
/// never sweeps a whole queue (bounded latency); hit ratios measured the
/// same as with unbounded sweeps, within run-to-run noise.
const MAX_SECOND_CHANCES: usize = 16;

impl<K, V> Shard<K, V> {
    /// Sets the window's target weight and the protected target with it.
    pub(crate) fn set_window(&mut self, window: u64) {
        self.window_max = window.min(self.capacity);
        let main = self.capacity - self.window_max;
        self.protected_max = (main as f64 * PROTECTED_SHARE) as u64;
    }

    /// The admission state a clean shutdown saves (see `spill::state`).
    #[cfg(feature = "spill")]
    pub(crate) fn export_state(&self) -> crate::spill::ShardState {
        let (entries, additions, table) = self.sketch.export();
        crate::spill::ShardState {
            capacity: self.capacity,
            window: self.window_max,
            entries: entries as u64,
            additions,
            table: table.to_vec(),
        }
    }

    /// Restores a saved admission state; false (and no change) if it does
    /// not fit this shard.
    #[cfg(feature = "spill")]
    pub(crate) fn import_state(&mut self, state: &crate::spill::ShardState) -> bool {
        let Ok(entries) = usize::try_from(state.entries) else {
            return false;
        };
        if state.capacity != self.capacity || state.window > self.capacity {
            return false;
        }
        if !self.sketch.import(entries, state.additions, &state.table) {
            return false;
        }
        self.set_window(state.window);
        true
    }

    /// One hill-climbing step, if a sample period has passed. `hits` and
    /// `misses` are the whole cache's (shards see the same hit ratio, and the
    /// sum is far less noisy than one shard's share), so the period is
    /// measured in `shards` times the shard's entries.
    pub(crate) fn climb(&mut self, hits: u64, misses: u64, shards: u64) {
        let entries = self
            .max_entries
            .map_or(self.nodes.len() as u64, |e| e as u64)
            .saturating_mul(shards);
        let step = self.climber.sample(hits, misses, entries, self.capacity);
        if step.window != 0.0 {
            let window = (self.window_max as f64 + step.window).clamp(0.0, self.capacity as f64);
            self.set_window(window as u64);
        }
        if step.new_phase {
            // The old phase's popularity should not keep the new working
            // set out: quarter the counts (two halvings measured better
            // than one on phase-shift tests, at no cost on the traces).
            self.sketch.age();
            self.sketch.age();
            self.age_pending_hits(2);
        }
    }

    /// Restores `weighted_size <= capacity`, running admission for entries
    /// that leave the window.
    pub(crate) fn evict<S: BuildHasher>(
        &mut self,
        ctx: &Ctx<'_, S>,
        now: u64,
        removed: &mut Removed<K, V>,
    ) where
        K: Hash,
    {
        let mut chances = MAX_SECOND_CHANCES;
        while self.lists[Queue::Window as usize].weight > self.window_max {
            let candidate = self.lists[Queue::Window as usize].tail;
            if candidate == NIL {
                break;
            }
            if chances > 0 && self.clear_referenced(candidate) {
                chances -= 1;
                self.move_to_head(candidate, Queue::Window);
                continue;
            }
            self.move_to_head(candidate, Queue::Probation);
            if self.weighted_size() > self.capacity {
                self.contest(ctx, candidate, now, removed);
            }
        }
        while self.weighted_size() > self.capacity {
            let victim = [Queue::Probation, Queue::Protected, Queue::Window]
                .iter()
                .map(|&q| self.lists[q as usize].tail)
                .find(|&t| t != NIL);
            let Some(victim) = victim else { break };
            self.evict_at(ctx, victim, now, removed);
        }
    }

    /// The candidate (already at probation's head) against probation's
    /// coldest entries, until the shard fits or the candidate loses.
    fn contest<S: BuildHasher>(
        &mut self,
        ctx: &Ctx<'_, S>,
        mut candidate: u32,
        now: u64,
        removed: &mut Removed<K, V>,
    ) where
        K: Hash,
    {
        let mut chances = MAX_SECOND_CHANCES;
        let candidate_freq = self.frequency(ctx.hasher, candidate);
        while self.weighted_size() > self.capacity {
            let mut victim = self.lists[Queue::Probation as usize].tail;
            if victim == candidate {
                victim = self.lists[Queue::Protected as usize].tail;
                if victim == NIL {
                    return;
                }
            } else if chances > 0 && self.clear_referenced(victim) {
                chances -= 1;
                self.promote(victim);
                continue;
            }
            let evict_victim = self.is_expired(victim, now, ctx.tti)
                || self.admit(candidate_freq, self.frequency(ctx.hasher, victim));
            if !evict_victim {
                self.counters.admissions_rejected += 1;
                self.evict_at(ctx, candidate, now, removed);
                return;
            }
            // Removal moves the last node into the victim's slot; the
            // candidate may be that node (it often is: the newest entry).
            let last = (self.nodes.len() - 1) as u32;
            self.evict_at(ctx, victim, now, removed);
            if candidate == last {
                candidate = victim;
            }
        }
    }

    fn admit(&mut self, candidate: u64, victim: u64) -> bool {
        if candidate > victim {
            return true;
        }
        if candidate <= WARM_FREQUENCY {
            return false;
        }
        // xorshift64: a cheap lottery; no cryptographic quality needed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng & 127 == 0
    }

    /// Evicts `idx` for capacity (or as expired, if it is).
    fn evict_at<S: BuildHasher>(
        &mut self,
        ctx: &Ctx<'_, S>,
        idx: u32,
        now: u64,
        removed: &mut Removed<K, V>,
    ) where
        K: Hash,
    {
        let cause = if self.is_expired(idx, now, ctx.tti) {
            self.counters.expired += 1;
            RemovalCause::Expired
        } else {
            self.counters.evicted += 1;
            RemovalCause::Capacity
        };
        self.flush_hits(ctx.hasher, idx);
        // Tagged entries stay in memory only: the spill tier keeps no tag
        // index, so it could not honour an invalidation by tag.
        let spill = self.spill_evictions
            && cause == RemovalCause::Capacity
            && self
                .tags
                .as_ref()
                .is_none_or(|t| t.of_node[idx as usize].is_none());
        let deadline = match (&self.expiry, spill) {
            (Some(expiry), true) => expiry.timers[idx as usize].expires_at(ctx.tti),
            _ => NEVER,
        };
        let node = self.remove_at(ctx.hasher, idx);
        if spill {
            let hash = ctx.hasher.hash_one(&node.key);
            removed.spill.push((removed.len(), hash, deadline));
        }
        removed.push(node.key, node.value, cause);
    }

    /// Moves a probation entry into protected, demoting protected's coldest
    /// entries into probation while protected is over its target.
    fn promote(&mut self, idx: u32) {
        self.move_to_head(idx, Queue::Protected);
        let mut chances = MAX_SECOND_CHANCES;
        while self.lists[Queue::Protected as usize].weight > self.protected_max {
            let coldest = self.lists[Queue::Protected as usize].tail;
            if coldest == idx || coldest == NIL {
                break;
            }
            if chances > 0 && self.clear_referenced(coldest) {
                chances -= 1;
                self.move_to_head(coldest, Queue::Protected);
            } else {
                self.move_to_head(coldest, Queue::Probation);
            }
        }
    }

    /// Clears the reference bit of `idx`; true if it was set (the entry was
    /// read since the policy last looked at it).
    fn clear_referenced(&mut self, idx: u32) -> bool {
        let hits = &self.nodes[idx as usize].hits;
        let seen = hits.load(Ordering::Relaxed);
        if seen & REFERENCED == 0 {
            return false;
        }
        hits.store(seen & !REFERENCED, Ordering::Relaxed);
        true
    }

    /// The sketch's estimate for resident entry `idx` plus the hits its
    /// readers counted that have not reached the sketch yet.
    pub(crate) fn frequency<S: BuildHasher>(&self, hasher: &S, idx: u32) -> u64
    where
        K: Hash,
    {
        let node = &self.nodes[idx as usize];
        let pending = node.hits.load(Ordering::Relaxed) & !REFERENCED;
        self.sketch.frequency(hasher.hash_one(&node.key)) + u64::from(pending)
    }

    /// Folds the counted hits of `idx` into the sketch (before it leaves,
    /// so that its popularity is remembered).
    fn flush_hits<S: BuildHasher>(&mut self, hasher: &S, idx: u32)
    where
        K: Hash,
    {
        let node = &self.nodes[idx as usize];
        let pending = node.hits.load(Ordering::Relaxed) & !REFERENCED;
        if pending > 0 {
            node.hits.store(0, Ordering::Relaxed);
            let hash = hasher.hash_one(&node.key);
            if self.sketch.increment_by(hash, pending) {
                self.age_pending_hits(1);
            }
        }
    }

    /// Ages the hits counted on resident entries as the sketch ages its
    /// counters (halving `halvings` times), so that they fade alike.
    pub(crate) fn age_pending_hits(&mut self, halvings: u32) {
        for node in &self.nodes {
            let seen = node.hits.load(Ordering::Relaxed);
            let count = (seen & !REFERENCED) >> halvings;
            node.hits
                .store((seen & REFERENCED) | count, Ordering::Relaxed);
        }
    }

    // ---- intrusive list operations ----

    pub(crate) fn push_head(&mut self, idx: u32, queue: Queue) {
        let list = &mut self.lists[queue as usize];
        let old_head = list.head;
        list.head = idx;
        if old_head == NIL {
            list.tail = idx;
        }
        let node = &mut self.nodes[idx as usize];
        list.weight += u64::from(node.weight);
        node.queue = queue;
        node.prev = NIL;
        node.next = old_head;
        if old_head != NIL {
            self.nodes[old_head as usize].prev = idx;
        }
    }

    pub(crate) fn unlink(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (prev, next, queue, weight) = (node.prev, node.next, node.queue, node.weight);
        let list = &mut self.lists[queue as usize];
        list.weight -= u64::from(weight);
        if prev == NIL {
            list.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    pub(crate) fn move_to_head(&mut self, idx: u32, queue: Queue) {
        self.unlink(idx);
        self.push_head(idx, queue);
    }

    /// Points the links at node `from` to index `to` (which must be
    /// unlinked), before `from` is moved there.
    pub(crate) fn relink(&mut self, from: u32, to: u32) {
        let node = &self.nodes[from as usize];
        let (prev, next, queue) = (node.prev, node.next, node.queue as usize);
        if prev == NIL {
            self.lists[queue].head = to;
        } else {
            self.nodes[prev as usize].next = to;
        }
        if next == NIL {
            self.lists[queue].tail = to;
        } else {
            self.nodes[next as usize].prev = to;
        }
    }
}
