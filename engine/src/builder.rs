//! Configuring a cache: [`Config`] holds the plain settings,
//! [`CacheBuilder`] adds the hooks and validates everything in `build`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::Cache;
use crate::clock::{Clock, ManualClock};
use crate::error::ConfigError;
use crate::listener::{EvictionListener, Hooks, Spawner, Weigher};

/// The largest supported capacity (in weight units).
pub const MAX_CAPACITY: u64 = 1 << 62;
/// The largest supported shard count.
pub const MAX_SHARDS: usize = 1 << 16;
/// With the default shard count, shards are halved until each holds at
/// least this much weight (small caches gain hit ratio from fewer shards).
const MIN_SHARD_CAPACITY: u64 = 1024;
/// Default shards per core. DESIGN.md says 4; 16 measured better here: with
/// 4 x 2 cores, a writer blocked the other thread's readers often enough to
/// cost 10-15% on the two-thread 90/10 mixed workload (0.85-0.89x
/// quick_cache, interleaved A/B), and with 16 x it ran at 1.05-1.10x, while
/// hit ratios at 100,000 entries rose by 0.15-0.5 points.
const SHARDS_PER_CORE: usize = 16;

/// The plain-data settings of a cache. Build one through
/// [`Cache::builder`]; every field's default is documented on its setter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// See [`CacheBuilder::max_capacity`].
    pub max_capacity: u64,
    /// See [`CacheBuilder::shards`].
    pub shards: Option<usize>,
    /// See [`CacheBuilder::time_to_live`].
    pub time_to_live: Option<Duration>,
    /// See [`CacheBuilder::time_to_idle`].
    pub time_to_idle: Option<Duration>,
    /// See [`CacheBuilder::negative_ttl`].
    pub negative_ttl: Option<Duration>,
    /// See [`CacheBuilder::stale_while_revalidate`].
    pub stale_while_revalidate: Option<Duration>,
    /// See [`CacheBuilder::refresh_before`].
    pub refresh_before: Option<Duration>,
}

impl Config {
    /// Checks the settings and works out the shard count.
    pub(crate) fn validate(&self) -> Result<usize, ConfigError> {
        let capacity = self.max_capacity;
        if capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(ConfigError::CapacityTooLarge {
                given: capacity,
                max: MAX_CAPACITY,
            });
        }
        if self.time_to_live == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration {
                which: "time_to_live",
            });
        }
        if self.time_to_idle == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration {
                which: "time_to_idle",
            });
        }
        for (which, value) in [
            ("negative_ttl", self.negative_ttl),
            ("stale_while_revalidate", self.stale_while_revalidate),
            ("refresh_before", self.refresh_before),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration { which });
            }
        }
        match self.shards {
            Some(shards) if shards == 0 || !shards.is_power_of_two() || shards > MAX_SHARDS => {
                Err(ConfigError::InvalidShards {
                    given: shards,
                    max: MAX_SHARDS,
                })
            }
            Some(shards) if shards as u64 > capacity => {
                Err(ConfigError::ShardsExceedCapacity { shards, capacity })
            }
            Some(shards) => Ok(shards),
            None => Ok(default_shards(capacity)),
        }
    }
}

/// `next_pow2(SHARDS_PER_CORE x cores)`, halved while a shard would hold
/// less than [`MIN_SHARD_CAPACITY`].
pub(crate) fn default_shards(capacity: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shards = (cores * SHARDS_PER_CORE)
        .next_power_of_two()
        .min(MAX_SHARDS);
    while shards > 1 && capacity / (shards as u64) < MIN_SHARD_CAPACITY {
        shards /= 2;
    }
    shards
}

/// Builds a [`Cache`]. Setters chain by value; [`CacheBuilder::build`]
/// validates and never panics.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use strata::Cache;
///
/// // A byte budget: entries weigh their length.
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .max_capacity(64 * 1024 * 1024)
///     .weigher(|_key: &String, value: &Vec<u8>| value.len().try_into().unwrap_or(u32::MAX))
///     .time_to_live(Duration::from_secs(300))
///     .build()?;
/// cache.insert("k".to_string(), vec![0; 1024])?;
/// assert_eq!(cache.weighted_size(), 1024);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct CacheBuilder<K, V, S> {
    config: Config,
    hasher: S,
    hooks: Hooks<K, V>,
    clock: Option<ManualClock>,
    /// Makes the default hasher from a spill directory's seeds (unset once
    /// the user picks a hasher).
    #[cfg_attr(not(feature = "spill"), allow(dead_code))]
    reseed: Option<fn([u64; 4]) -> S>,
    #[cfg_attr(not(feature = "spill"), allow(dead_code))]
    spill: Option<OpenSpill<K, V, S>>,
    _types: PhantomData<fn(K, V)>,
}

/// Opens the spill tier at build time (typed where `spill` was called).
#[cfg(feature = "spill")]
type OpenSpill<K, V, S> = Box<
    dyn FnOnce(
        &mut S,
        Option<fn([u64; 4]) -> S>,
        &Clock,
    )
        -> Result<Box<dyn crate::spill_hook::SpillHook<K, V>>, crate::spill::SpillError>,
>;
#[cfg(not(feature = "spill"))]
type OpenSpill<K, V, S> = PhantomData<fn(&mut S) -> (K, V)>;

impl<K, V, S: Default> CacheBuilder<K, V, S> {
    pub(crate) fn new() -> Self {
        Self {
            config: Config::default(),
            hasher: S::default(),
            hooks: Hooks {
                weigher: None,
                listener: None,
                spawner: None,
            },
            clock: None,
            reseed: None,
            spill: None,
            _types: PhantomData,
        }
    }
}

impl<K, V> CacheBuilder<K, V, ahash::RandomState> {
    /// A builder whose default hasher a spill directory may seed.
    pub(crate) fn with_default_hasher() -> Self {
        let mut builder = Self::new();
        builder.reseed = Some(|[a, b, c, d]| ahash::RandomState::with_seeds(a, b, c, d));
        builder
    }
}

#[cfg(feature = "spill")]
impl<K, V, S> CacheBuilder<K, V, S>
where
    K: crate::codec::Codec + std::hash::Hash + 'static,
    V: crate::codec::Codec + 'static,
    S: std::hash::BuildHasher + Sync,
{
    /// Keeps entries evicted from memory in memory-mapped segment files
    /// under `config.dir`, serves memory misses from them, and finds them
    /// again when a cache is built on the same directory later (feature
    /// `spill`; see the [`spill`](crate::spill) module). Default: none.
    ///
    /// With the default hasher, the directory also fixes the hasher's
    /// seeds, so that a restarted cache can reuse the saved admission
    /// state; a custom hasher must hash the same across processes for that
    /// (entries are found again either way).
    ///
    /// Entries with tags are not spilled.
    pub fn spill(mut self, config: crate::spill::SpillConfig) -> Self {
        self.spill = Some(Box::new(move |hasher, reseed, clock| {
            crate::spill::open_tier::<K, V, S>(&config, hasher, reseed, clock)
        }));
        self
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The most weight the cache holds (with the default weigher: entries).
    /// Required; must be between 1 and [`MAX_CAPACITY`].
    ///
    /// The capacity is split evenly over the shards, and one entry may weigh
    /// at most one shard's share.
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.config.max_capacity = capacity;
        self
    }

    /// The number of shards, a power of two up to [`MAX_SHARDS`]. Default:
    /// `next_pow2(16 x available parallelism)`, fewer for caches too small
    /// to give each shard 1,024 units of capacity.
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = Some(shards);
        self
    }

    /// A time-to-live for every entry, counted from its insert. Default:
    /// none. [`Cache::insert_with_ttl`] overrides it per entry.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.config.time_to_live = Some(ttl);
        self
    }

    /// A time-to-idle: an entry not read or written for this long expires.
    /// Default: none.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.config.time_to_idle = Some(tti);
        self
    }

    /// Caches the errors of [`Cache::try_get_or_load`] for this long: while
    /// an error is cached, loads of its key return it without running the
    /// loader. Default: errors are not cached. The errors are kept in a
    /// small cache of their own (an eighth of the capacity in entries, at
    /// least 64), which an `insert`, `remove` or `clear` of the key clears.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = Some(ttl);
        self
    }

    /// Keeps an entry this long past its time-to-live as *stale*: plain
    /// reads miss it, but [`Cache::load`](crate::Cache::load) returns it
    /// (marked stale) and starts one background reload. Needs a
    /// [`spawner`](Self::spawner) (or the `tokio` feature). Default: none.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = Some(window);
        self
    }

    /// A [`Cache::load`](crate::Cache::load) that finds an entry in the last
    /// `window` of its time-to-live returns it and starts one background
    /// reload, so popular entries are renewed before they expire. Needs a
    /// [`spawner`](Self::spawner) (or the `tokio` feature). Default: none.
    pub fn refresh_before(mut self, window: Duration) -> Self {
        self.config.refresh_before = Some(window);
        self
    }

    /// How background reloads are started. Default: none (with the `tokio`
    /// feature, `tokio::spawn`).
    pub fn spawner(mut self, spawner: impl Spawner) -> Self {
        self.hooks.spawner = Some(Box::new(spawner));
        self
    }

    /// How much each entry weighs. Default: 1 per entry.
    pub fn weigher(mut self, weigher: impl Weigher<K, V> + 'static) -> Self {
        self.hooks.weigher = Some(Box::new(weigher));
        self
    }

    /// Who is told of every removal and its cause. Default: nobody.
    pub fn eviction_listener(mut self, listener: impl EvictionListener<K, V> + 'static) -> Self {
        self.hooks.listener = Some(Box::new(listener));
        self
    }

    /// Reads time from `clock` instead of the system's monotonic clock.
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Hashes keys with `hasher` (default: `ahash::RandomState`).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            config: self.config,
            hasher,
            hooks: self.hooks,
            clock: self.clock,
            reseed: None,
            // The spill tier is typed by the hasher: set it after this.
            spill: None,
            _types: PhantomData,
        }
    }

    /// The plain settings so far.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates the settings and builds the cache.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero or too large capacity, a shard count that
    /// is not a power of two in range (or exceeds the capacity), or a zero
    /// time-to-live or time-to-idle.
    pub fn build(self) -> Result<Cache<K, V, S>, ConfigError> {
        let shards = self.config.validate()?;
        let windows =
            self.config.stale_while_revalidate.is_some() || self.config.refresh_before.is_some();
        let hooks = if windows && self.hooks.spawner.is_none() {
            default_spawner(self.hooks)?
        } else {
            self.hooks
        };
        let clock = self.clock.map_or_else(Clock::system, Clock::Manual);
        #[cfg_attr(not(feature = "spill"), allow(unused_mut))]
        let mut hasher = self.hasher;
        #[cfg(feature = "spill")]
        let spill = match self.spill {
            Some(open) => Some(open(&mut hasher, self.reseed, &clock).map_err(ConfigError::Spill)?),
            None => None,
        };
        #[cfg(not(feature = "spill"))]
        let spill = None;
        let restore = spill.is_some();
        let cache = Cache::from_parts(self.config, shards, hasher, hooks, clock, spill);
        #[cfg(feature = "spill")]
        if restore {
            cache.restore_state();
        }
        #[cfg(not(feature = "spill"))]
        let _ = restore;
        Ok(cache)
    }
}

/// `tokio::spawn` for background reloads, with the `tokio` feature.
#[cfg(feature = "tokio")]
fn default_spawner<K, V>(mut hooks: Hooks<K, V>) -> Result<Hooks<K, V>, ConfigError> {
    hooks.spawner = Some(Box::new(|task: crate::listener::BackgroundTask| {
        tokio::spawn(task);
    }));
    Ok(hooks)
}

/// Without the `tokio` feature there is no default way to run reloads.
#[cfg(not(feature = "tokio"))]
fn default_spawner<K, V>(_hooks: Hooks<K, V>) -> Result<Hooks<K, V>, ConfigError> {
    Err(ConfigError::NoSpawner)
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("hooks", &self.hooks)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(capacity: u64, shards: Option<usize>) -> Config {
        Config {
            max_capacity: capacity,
            shards,
            ..Config::default()
        }
    }

    #[test]
    fn rejects_absurd_settings() {
        assert_eq!(config(0, None).validate(), Err(ConfigError::ZeroCapacity));
        assert!(matches!(
            config(u64::MAX, None).validate(),
            Err(ConfigError::CapacityTooLarge { .. })
        ));
        for shards in [0, 3, 1 << 20] {
            assert!(matches!(
                config(1 << 30, Some(shards)).validate(),
                Err(ConfigError::InvalidShards { .. })
            ));
        }
        assert!(matches!(
            config(2, Some(4)).validate(),
            Err(ConfigError::ShardsExceedCapacity { .. })
        ));
        let zero_ttl = Config {
            time_to_live: Some(Duration::ZERO),
            ..config(10, None)
        };
        assert!(matches!(
            zero_ttl.validate(),
            Err(ConfigError::ZeroDuration { .. })
        ));
    }

    #[test]
    fn small_caches_get_fewer_shards() {
        assert_eq!(default_shards(1000), 1);
        assert_eq!(default_shards(2048), 2);
        assert!(default_shards(1 << 30).is_power_of_two());
        assert!(default_shards(1 << 30) >= 4);
    }
}
