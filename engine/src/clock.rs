//! Time as the cache sees it: nanoseconds since the cache was built.
//!
//! Deadlines are stored as `u64` nanoseconds on this scale, with
//! [`NEVER`] for "no deadline", which keeps a timer 8 bytes and makes the
//! hot-path check one comparison.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sync::{Arc, AtomicU64, Ordering};

/// A deadline that is never reached.
pub(crate) const NEVER: u64 = u64::MAX;

/// A clock that a test (or a simulation) moves by hand.
///
/// Give it to [`CacheBuilder::clock`](crate::CacheBuilder::clock) and the
/// cache reads time only from it, so expiry can be tested without sleeping.
/// Clones share one time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata::{Cache, ManualClock};
///
/// let clock = ManualClock::new();
/// let cache: Cache<u32, u32> = Cache::builder()
///     .max_capacity(100)
///     .time_to_live(Duration::from_secs(10))
///     .clock(clock.clone())
///     .build()?;
/// cache.insert(1, 1)?;
/// clock.advance(Duration::from_secs(9));
/// assert_eq!(cache.get(&1), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get(&1), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = saturating_nanos(by);
        let mut current = self.nanos.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(by);
            match self.nanos.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The time elapsed on this clock.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

/// The cache's time source.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    /// Elapsed time since `Instant`, which was `u64` ms of Unix time.
    System(Instant, u64),
    Manual(ManualClock),
}

/// The Unix time (ms) at which every manual clock stands at zero, so that
/// records written under one manual clock read the same under another.
const MANUAL_EPOCH_MS: u64 = 1_700_000_000_000;

impl Clock {
    pub(crate) fn system() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::System(Instant::now(), wall)
    }

    /// Unix time in milliseconds at cache time `now` (for records that
    /// outlive the process).
    pub(crate) fn wall_ms(&self, now: u64) -> u64 {
        let base = match self {
            Self::System(_, wall) => *wall,
            Self::Manual(_) => MANUAL_EPOCH_MS,
        };
        base.saturating_add(now / 1_000_000)
    }

    /// Nanoseconds since the cache was built.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            Self::System(base, _) => saturating_nanos(base.elapsed()),
            Self::Manual(clock) => clock.nanos.load(Ordering::Acquire),
        }
    }
}

/// `duration` in nanoseconds, saturating instead of wrapping.
pub(crate) fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The deadline `ttl` from `now`; [`NEVER`] if it would not fit.
#[inline]
pub(crate) fn deadline_after(now: u64, ttl: u64) -> u64 {
    now.checked_add(ttl).map_or(NEVER, |d| d.min(NEVER - 1))
}
