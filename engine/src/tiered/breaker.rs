//! A circuit breaker in front of the second tier.
//!
//! Closed: every call goes through; `threshold` failures in a row open it.
//! Open: no call goes through until `cooldown` has passed. Then one caller
//! (the one that wins a compare-exchange on the deadline) probes: success
//! closes the breaker, failure opens it for another cool-down. Times are
//! the L1 cache's clock, in nanoseconds.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `open_until` when the breaker is closed.
const CLOSED: u64 = 0;

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: u64,
    failures: AtomicU32,
    /// The time until which calls are refused; `CLOSED` when closed.
    open_until: AtomicU64,
    opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: u64) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown: cooldown.max(1),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(CLOSED),
            opened: AtomicU64::new(0),
        }
    }

    /// Whether a call may go to the tier at `now`.
    pub(crate) fn allow(&self, now: u64) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == CLOSED {
            return true;
        }
        if now < until {
            return false;
        }
        // Half-open: one probe per cool-down.
        let next = now.saturating_add(self.cooldown).max(1);
        self.open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != CLOSED {
            self.open_until.store(CLOSED, Ordering::Release);
        }
    }

    pub(crate) fn failure(&self, now: u64) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= self.threshold {
            let until = now.saturating_add(self.cooldown).max(1);
            if self.open_until.swap(until, Ordering::AcqRel) == CLOSED {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How a call ended: a timeout or a lost tier counts against the
    /// tier; anything else (an answer, even an error reply such as a key
    /// of the wrong type) shows it is up.
    pub(crate) fn saw<T>(&self, result: &Result<T, super::TierError>, now: u64) {
        match result.as_ref().map_err(super::TierError::kind) {
            Err(super::TierErrorKind::Timeout | super::TierErrorKind::Unavailable) => {
                self.failure(now);
            }
            _ => self.success(),
        }
    }

    pub(crate) fn is_open(&self, now: u64) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != CLOSED && now < until
    }

    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// A circuit breaker for calls to a [`SecondTier`](super::SecondTier), for
/// callers that use a tier directly (an HTTP layer, say) and want what
/// [`TieredCache`](super::TieredCache) does: after `failures` calls in a
/// row that timed out or found the tier unreachable, no call goes through
/// for `cooldown`; then one probe decides. An error reply (a wrong type,
/// say) shows the tier is up and closes it. Lock-free; cheap to share.
///
/// ```
/// use std::time::Duration;
/// use strata::tiered::{CircuitBreaker, TierError, TierErrorKind};
///
/// let breaker = CircuitBreaker::new(2, Duration::from_secs(1));
/// let timeout: Result<(), TierError> = Err(TierError::of_kind(TierErrorKind::Timeout));
/// assert!(breaker.allow());
/// breaker.record(&timeout);
/// breaker.record(&timeout);
/// assert!(!breaker.allow(), "open: skip the tier for a second");
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    breaker: Breaker,
    origin: std::time::Instant,
}

impl CircuitBreaker {
    /// Opens after `failures` (at least 1) failed calls in a row, for
    /// `cooldown`.
    #[must_use]
    pub fn new(failures: u32, cooldown: std::time::Duration) -> Self {
        Self {
            breaker: Breaker::new(failures, crate::clock::saturating_nanos(cooldown)),
            origin: std::time::Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        crate::clock::saturating_nanos(self.origin.elapsed())
    }

    /// Whether a call may go to the tier now (when the cool-down is over,
    /// true for one caller: the probe).
    #[must_use]
    pub fn allow(&self) -> bool {
        self.breaker.allow(self.now())
    }

    /// Tells the breaker how a call ended: a timeout or an unreachable
    /// tier counts against it, anything else shows the tier is up.
    pub fn record<T>(&self, result: &Result<T, super::TierError>) {
        self.breaker.saw(result, self.now());
    }

    /// Whether calls are being refused now.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.breaker.is_open(self.now())
    }

    /// How many times it has opened.
    #[must_use]
    pub fn times_opened(&self) -> u64 {
        self.breaker.times_opened()
    }
}

#[cfg(test)]
mod tests {
    use super::Breaker;

    #[test]
    fn opens_after_threshold_and_probes_once_per_cooldown() {
        let breaker = Breaker::new(3, 100);
        breaker.failure(0);
        breaker.failure(1);
        assert!(breaker.allow(2), "two failures leave it closed");
        breaker.failure(2);
        assert!(!breaker.allow(3), "three failures open it");
        assert!(breaker.is_open(50));
        assert!(!breaker.allow(101));
        assert!(
            breaker.allow(102),
            "after the cool-down one probe goes through"
        );
        assert!(!breaker.allow(103), "and only one");
        breaker.failure(104);
        assert!(!breaker.allow(150), "a failed probe reopens it");
        assert!(breaker.allow(205));
        breaker.success();
        assert!(
            breaker.allow(206) && breaker.allow(207),
            "a good probe closes it"
        );
        assert_eq!(
            breaker.times_opened(),
            1,
            "reopening during a probe is not a new opening"
        );
    }

    #[test]
    fn success_resets_the_count() {
        let breaker = Breaker::new(2, 10);
        breaker.failure(0);
        breaker.success();
        breaker.failure(1);
        assert!(breaker.allow(2));
    }

    #[test]
    fn the_public_breaker_counts_only_a_tier_that_is_down() {
        use super::super::{TierError, TierErrorKind};
        use super::CircuitBreaker;
        let breaker = CircuitBreaker::new(2, std::time::Duration::from_millis(30));
        let down: Result<(), TierError> = Err(TierError::of_kind(TierErrorKind::Unavailable));
        let refused: Result<(), TierError> = Err(TierError::of_kind(TierErrorKind::Refused));
        breaker.record(&down);
        breaker.record(&refused);
        breaker.record(&down);
        assert!(breaker.allow(), "an error reply broke the run of failures");
        breaker.record(&down);
        assert!(!breaker.allow() && breaker.is_open());
        assert_eq!(breaker.times_opened(), 1);
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "only one");
        breaker.record(&Ok(()));
        assert!(breaker.allow() && !breaker.is_open());
    }
}
