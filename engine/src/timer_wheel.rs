//! Per-shard expiry: a hierarchical timer wheel.
//!
//! The idea is Varghese and Lauck's ("Hashed and Hierarchical Timing Wheels",
//! SOSP 1987), as Caffeine and moka use it for variable expiry: deadlines
//! are hashed into buckets by coarse time; as time passes, the buckets of the
//! ticks that went by are emptied, and every timer in them is either expired
//! or cascaded into a finer bucket. Scheduling and cancelling are O(1) and
//! expiring costs O(expired + cascaded), never a scan of the whole cache.
//!
//! ```text
//!  level 0: 64 buckets x 2^30 ns (~1.07 s)  -> spans ~68.7 s
//!  level 1: 64 buckets x 2^36 ns (~68.7 s)  -> spans ~73 min
//!  level 2: 64 buckets x 2^42 ns (~73 min)  -> spans ~78 h
//!  level 3: 64 buckets x 2^48 ns (~78 h)    -> spans ~208 days
//!  overflow: one list, re-sorted when level 3 turns
//! ```
//!
//! Timers are intrusive: the `Timer` records live in a vector parallel to the
//! shard's entries (same index), linked by `u32` indices, so the wheel itself
//! is a fixed array of list heads. An entry is reclaimed at most one level-0
//! tick (~1 s) after its deadline; reads check the exact deadline, so an
//! expired entry is never returned in between.

use crate::clock::NEVER;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const NIL: u32 = u32::MAX;
const LEVELS: usize = 4;
const SLOTS: usize = 64;
const SHIFTS: [u32; LEVELS] = [30, 36, 42, 48];
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
/// Holds timers that are being re-sorted while a bucket is drained.
const PENDING: u16 = OVERFLOW + 1;
const BUCKETS: usize = PENDING as usize + 1;
const UNSCHEDULED: u16 = u16::MAX;

/// The expiry record of one entry.
#[derive(Debug)]
pub(crate) struct Timer {
    /// Absolute deadline from the time-to-live, or [`NEVER`].
    pub(crate) deadline: u64,
    /// When the entry was last read or written (for time-to-idle).
    pub(crate) accessed: AtomicU64,
    prev: u32,
    next: u32,
    bucket: u16,
}

impl Timer {
    pub(crate) fn new(deadline: u64, now: u64) -> Self {
        Self {
            deadline,
            accessed: AtomicU64::new(now),
            prev: NIL,
            next: NIL,
            bucket: UNSCHEDULED,
        }
    }

    /// The moment this entry stops being served.
    #[inline]
    pub(crate) fn expires_at(&self, tti: Option<u64>) -> u64 {
        match tti {
            None => self.deadline,
            Some(idle) => self
                .deadline
                .min(self.accessed.load(Ordering::Relaxed).saturating_add(idle)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    head: u32,
    tail: u32,
}

const EMPTY: Bucket = Bucket {
    head: NIL,
    tail: NIL,
};

/// Expiry state of a shard: the timers (parallel to the entries) and the
/// wheel's buckets.
#[derive(Debug)]
pub(crate) struct Expiry {
    pub(crate) timers: Vec<Timer>,
    buckets: Box<[Bucket; BUCKETS]>,
    /// The time the wheel was last advanced to.
    time: u64,
}

impl Expiry {
    pub(crate) fn new(time: u64) -> Self {
        Self {
            timers: Vec::new(),
            buckets: Box::new([EMPTY; BUCKETS]),
            time,
        }
    }

    /// Files timer `idx` under `expires_at` (no-op for [`NEVER`]).
    pub(crate) fn schedule(&mut self, idx: u32, expires_at: u64) {
        if expires_at == NEVER {
            return;
        }
        let bucket = self.bucket_for(expires_at);
        self.push(idx, bucket);
    }

    /// Takes timer `idx` out of its bucket, if it is in one.
    pub(crate) fn unschedule(&mut self, idx: u32) {
        let timer = &self.timers[idx as usize];
        if timer.bucket == UNSCHEDULED {
            return;
        }
        let (bucket, prev, next) = (timer.bucket, timer.prev, timer.next);
        if prev == NIL {
            self.buckets[usize::from(bucket)].head = next;
        } else {
            self.timers[prev as usize].next = next;
        }
        if next == NIL {
            self.buckets[usize::from(bucket)].tail = prev;
        } else {
            self.timers[next as usize].prev = prev;
        }
        let timer = &mut self.timers[idx as usize];
        timer.prev = NIL;
        timer.next = NIL;
        timer.bucket = UNSCHEDULED;
    }

    /// Points the links at timer `from` to index `to`, where the caller is
    /// about to move it (`swap_remove`). `to` must be unlinked.
    pub(crate) fn relocate(&mut self, from: u32, to: u32) {
        let timer = &self.timers[from as usize];
        if timer.bucket == UNSCHEDULED {
            return;
        }
        let (bucket, prev, next) = (usize::from(timer.bucket), timer.prev, timer.next);
        if prev == NIL {
            self.buckets[bucket].head = to;
        } else {
            self.timers[prev as usize].next = to;
        }
        if next == NIL {
            self.buckets[bucket].tail = to;
        } else {
            self.timers[next as usize].prev = to;
        }
    }

    /// Moves the wheel to `now` and returns the buckets whose timers must be
    /// looked at, coarsest first. The caller then drains each with
    /// [`Expiry::pop`], expiring or [`Expiry::park`]ing what it finds, and
    /// finally calls [`Expiry::reschedule_parked`].
    pub(crate) fn advance(&mut self, now: u64) -> Vec<u16> {
        let before = self.time;
        if now <= before {
            return Vec::new();
        }
        self.time = now;
        let mut due = Vec::new();
        for level in (0..LEVELS).rev() {
            let shift = SHIFTS[level];
            let (from, to) = (before >> shift, now >> shift);
            if from == to {
                continue;
            }
            if level == LEVELS - 1 {
                due.push(OVERFLOW);
            }
            // Level 0 empties the ticks that have fully passed; coarser levels
            // also cascade the bucket of the tick just entered.
            let (first, last) = if level == 0 {
                (from, to - 1)
            } else {
                (from + 1, to)
            };
            let count = (last - first + 1).min(SLOTS as u64);
            for tick in last + 1 - count..=last {
                due.push((level * SLOTS) as u16 + (tick % SLOTS as u64) as u16);
            }
        }
        due
    }

    /// Takes the first timer out of `bucket`.
    pub(crate) fn pop(&mut self, bucket: u16) -> Option<u32> {
        let head = self.buckets[usize::from(bucket)].head;
        if head == NIL {
            return None;
        }
        self.unschedule(head);
        Some(head)
    }

    /// Holds a not-yet-due timer aside while its bucket is drained.
    pub(crate) fn park(&mut self, idx: u32) {
        self.push(idx, PENDING);
    }

    /// Files every parked timer under its current deadline.
    pub(crate) fn reschedule_parked(&mut self, tti: Option<u64>) {
        while let Some(idx) = self.pop(PENDING) {
            let at = self.timers[idx as usize].expires_at(tti);
            self.schedule(idx, at);
        }
    }

    fn bucket_for(&self, expires_at: u64) -> u16 {
        let at = expires_at.max(self.time);
        for (level, shift) in SHIFTS.iter().enumerate() {
            let ticks = (at >> shift) - (self.time >> shift);
            if ticks < SLOTS as u64 {
                return (level * SLOTS) as u16 + ((at >> shift) % SLOTS as u64) as u16;
            }
        }
        OVERFLOW
    }

    fn push(&mut self, idx: u32, bucket: u16) {
        let tail = self.buckets[usize::from(bucket)].tail;
        {
            let timer = &mut self.timers[idx as usize];
            timer.prev = tail;
            timer.next = NIL;
            timer.bucket = bucket;
        }
        if tail == NIL {
            self.buckets[usize::from(bucket)].head = idx;
        } else {
            self.timers[tail as usize].next = idx;
        }
        self.buckets[usize::from(bucket)].tail = idx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Drives the wheel like a shard does, returning the expired indices.
    fn run(expiry: &mut Expiry, now: u64) -> Vec<u32> {
        let mut expired = Vec::new();
        for bucket in expiry.advance(now) {
            while let Some(idx) = expiry.pop(bucket) {
                if expiry.timers[idx as usize].expires_at(None) <= now {
                    expired.push(idx);
                } else {
                    expiry.park(idx);
                }
            }
        }
        expiry.reschedule_parked(None);
        expired.sort_unstable();
        expired
    }

    fn wheel_with(deadlines: &[u64]) -> Expiry {
        let mut expiry = Expiry::new(0);
        for (i, &deadline) in deadlines.iter().enumerate() {
            expiry.timers.push(Timer::new(deadline, 0));
            expiry.schedule(i as u32, deadline);
        }
        expiry
    }

    #[test]
    fn expires_each_timer_within_a_tick_of_its_deadline() {
        let deadlines = [
            SEC / 2,
            3 * SEC,
            90 * SEC,
            2 * 3600 * SEC,
            5 * 86_400 * SEC,
            400 * 86_400 * SEC,
        ];
        let mut expiry = wheel_with(&deadlines);
        let mut seen = vec![None; deadlines.len()];
        let mut now = 0;
        // Step in irregular strides up to 401 days.
        while now < 401 * 86_400 * SEC {
            now += if now < 200 * SEC { SEC / 3 } else { 977 * SEC };
            for idx in run(&mut expiry, now) {
                assert!(seen[idx as usize].is_none(), "{idx} expired twice");
                seen[idx as usize] = Some(now);
            }
        }
        for (i, &deadline) in deadlines.iter().enumerate() {
            let at = seen[i].unwrap_or_else(|| panic!("timer {i} never expired"));
            assert!(at >= deadline, "timer {i} expired early: {at} < {deadline}");
            let slack = if deadline < 200 * SEC {
                2 * SEC
            } else {
                978 * SEC
            };
            assert!(
                at - deadline <= slack,
                "timer {i} late by {}",
                at - deadline
            );
        }
    }

    #[test]
    fn a_big_jump_expires_everything_due() {
        let deadlines: Vec<u64> = (1..500).map(|i| i * 7 * SEC).collect();
        let mut expiry = wheel_with(&deadlines);
        let expired = run(&mut expiry, 250 * 7 * SEC);
        assert_eq!(expired, (0..250).collect::<Vec<u32>>());
        let expired = run(&mut expiry, 10_000 * SEC);
        assert_eq!(expired, (250..499).collect::<Vec<u32>>());
    }

    #[test]
    fn unscheduled_and_never_timers_do_not_expire() {
        let mut expiry = wheel_with(&[SEC, 2 * SEC, NEVER]);
        expiry.unschedule(0);
        assert_eq!(run(&mut expiry, 10 * SEC), vec![1]);
        assert!(run(&mut expiry, u64::MAX / 2).is_empty());
    }

    #[test]
    fn a_timer_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Timer>(), 32);
    }

    #[test]
    fn relocation_keeps_links_valid() {
        let mut expiry = wheel_with(&[5 * SEC, 5 * SEC, 5 * SEC]);
        // Remove index 0 the way a shard does: unlink, relocate the last.
        expiry.unschedule(0);
        expiry.relocate(2, 0);
        expiry.timers.swap_remove(0);
        assert_eq!(run(&mut expiry, 7 * SEC), vec![0, 1]);
    }
}
