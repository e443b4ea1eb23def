//! Settings of a tiered cache: write mode, promotion, the tier's TTL, the
//! circuit breaker.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use ahash::RandomState;

use super::breaker::Breaker;
use super::cache::{Shared, TieredCache};
use super::stats::Counters;
use super::{InvalidationSink, SecondTier};
use crate::cache::Cache;
use crate::clock::saturating_nanos;
use crate::codec::Codec;
use crate::error::ConfigError;
use crate::sync::{AtomicUsize, PublicArc};

/// When a value written to L1 goes to the second tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// The write (or load) returns once the tier has it. Default.
    #[default]
    Through,
    /// The write returns at once; the tier write runs on the L1 cache's
    /// spawner. When more than `max_pending` tier writes are waiting, a
    /// write goes through instead (back-pressure rather than an unbounded
    /// queue).
    Behind {
        /// The most tier writes in the background at once.
        max_pending: usize,
    },
}

/// When a value read from the second tier is copied into L1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Promotion {
    /// On the first L2 hit. Default.
    #[default]
    Immediately,
    /// On the N-th L2 hit of a key (counted approximately, per key hash):
    /// keys read rarely stay out of L1 and do not displace hot ones.
    AfterHits(u32),
}

/// Builds a [`TieredCache`]; see [`TieredCache::builder`].
#[must_use]
pub struct TieredBuilder<K, V, T, S = RandomState> {
    l1: Cache<K, V, S>,
    tier: T,
    write: WriteMode,
    promotion: Promotion,
    l2_ttl: Option<Option<Duration>>,
    breaker_failures: u32,
    breaker_cooldown: Duration,
}

impl<K, V, T, S> fmt::Debug for TieredBuilder<K, V, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredBuilder")
            .field("write", &self.write)
            .field("promotion", &self.promotion)
            .field("l2_ttl", &self.l2_ttl)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .finish_non_exhaustive()
    }
}

impl<K, V, T, S> TieredBuilder<K, V, T, S>
where
    K: Codec + Hash + Eq + Clone + Send + Sync + 'static,
    V: Codec + Clone + Send + Sync + 'static,
    T: SecondTier,
    S: BuildHasher + Send + Sync + 'static,
{
    pub(super) fn new(l1: Cache<K, V, S>, tier: T) -> Self {
        Self {
            l1,
            tier,
            write: WriteMode::default(),
            promotion: Promotion::default(),
            l2_ttl: None,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        }
    }

    /// When values go to the tier. Default: [`WriteMode::Through`].
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write = mode;
        self
    }

    /// When tier hits are copied into L1. Default:
    /// [`Promotion::Immediately`].
    pub fn promotion(mut self, promotion: Promotion) -> Self {
        self.promotion = promotion;
        self
    }

    /// How long values live in the tier (`None`: until deleted or evicted
    /// by the tier). Default: L1's
    /// [`time_to_live`](crate::CacheBuilder::time_to_live), if any.
    pub fn l2_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.l2_ttl = Some(ttl);
        self
    }

    /// Opens the circuit breaker after `failures` consecutive tier failures
    /// (at least 1), for `cooldown` before one probe call. Default: 5
    /// failures, 1 second.
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// The tiered cache, attached to the tier's invalidations.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSpawner`] for write-behind on an L1 cache without a
    /// spawner; [`ConfigError::ZeroDuration`] for a zero tier TTL or
    /// breaker cool-down.
    pub fn build(self) -> Result<TieredCache<K, V, T, S>, ConfigError> {
        if matches!(self.write, WriteMode::Behind { .. }) && self.l1.spawner().is_none() {
            return Err(ConfigError::NoSpawner);
        }
        let l2_ttl = self.l2_ttl.unwrap_or_else(|| self.l1.default_ttl());
        if l2_ttl == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration { which: "l2_ttl" });
        }
        if self.breaker_cooldown.is_zero() {
            return Err(ConfigError::ZeroDuration {
                which: "breaker cool-down",
            });
        }
        let hit_counts = match self.promotion {
            Promotion::AfterHits(n) if n > 1 => {
                Some(Cache::new(self.l1.capacity().clamp(1024, 1 << 20)))
            }
            _ => None,
        };
        let shared = PublicArc::new(Shared {
            breaker: Breaker::new(
                self.breaker_failures,
                saturating_nanos(self.breaker_cooldown),
            ),
            l1: self.l1,
            tier: self.tier,
            write: self.write,
            promotion: self.promotion,
            l2_ttl,
            hit_counts,
            counters: Counters::default(),
            pending_writes: AtomicUsize::new(0),
        });
        let weak = PublicArc::downgrade(&shared);
        shared.tier.attach(InvalidationSink::new(move |event| {
            if let Some(shared) = weak.upgrade() {
                shared.invalidated(event);
            }
        }));
        Ok(TieredCache { shared })
    }
}
