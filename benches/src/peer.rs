//! strata and its peers behind one interface.
//!
//! Every engine is built with its crate's defaults except the capacity,
//! which counts entries (each weighs 1). Keys are `u64`; values are cloned
//! out on `get`, as strata does.

use std::fmt;

use crossbeam_utils::CachePadded;
use hashbrown::HashMap;
use parking_lot::Mutex;

/// A concurrent cache over `u64` keys, as the benchmarks drive it.
pub trait BenchCache<V>: Send + Sync {
    /// Short name used in tables and benchmark ids, e.g. `"strata"`.
    fn name(&self) -> &'static str;

    /// Looks `key` up and clones its value out.
    fn get(&self, key: u64) -> Option<V>;

    /// Inserts or replaces `key`; the engine may decline or evict.
    fn insert(&self, key: u64, value: V);

    /// Number of entries held, after [`settle`](Self::settle).
    fn entries(&self) -> usize;

    /// Applies any deferred bookkeeping (moka's pending tasks), so that
    /// [`entries`](Self::entries) and memory use reflect every insert.
    fn settle(&self) {}
}

/// When moka applies its deferred bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounting {
    /// Whenever moka decides to (the normal mode; used for throughput).
    Lazy,
    /// After every insert, so moka holds at most its capacity at every step
    /// and its hit ratio is measured at exactly that size.
    Exact,
}

/// The engines compared, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `strata::Cache` (sharded W-TinyLFU).
    Strata,
    /// `moka::sync::Cache` (W-TinyLFU, deferred bookkeeping).
    Moka,
    /// `quick_cache::sync::Cache` (CLOCK-Pro-like).
    QuickCache,
    /// `foyer_memory::Cache` with S3-FIFO eviction.
    FoyerS3Fifo,
    /// `foyer_memory::Cache` with its W-TinyLFU (`Lfu`) eviction.
    FoyerLfu,
    /// [`ShardedMap`]: never evicts; an upper bound on speed, not a cache.
    Map,
}

impl Peer {
    /// The real caches, strata first (hit-ratio tables use these).
    pub const ENGINES: [Self; 5] = [
        Self::Strata,
        Self::Moka,
        Self::QuickCache,
        Self::FoyerS3Fifo,
        Self::FoyerLfu,
    ];

    /// The real caches plus the [`Map`](Self::Map) upper bound.
    pub const ALL: [Self; 6] = [
        Self::Strata,
        Self::Moka,
        Self::QuickCache,
        Self::FoyerS3Fifo,
        Self::FoyerLfu,
        Self::Map,
    ];

    /// Short name used in tables and benchmark ids.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Strata => "strata",
            Self::Moka => "moka",
            Self::QuickCache => "quick_cache",
            Self::FoyerS3Fifo => "foyer_s3fifo",
            Self::FoyerLfu => "foyer_lfu",
            Self::Map => "map",
        }
    }

    /// Builds this engine with room for `capacity` entries.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` does not fit in `usize` or strata rejects it.
    #[must_use]
    pub fn build<V>(self, capacity: u64, accounting: Accounting) -> Box<dyn BenchCache<V>>
    where
        V: Clone + Send + Sync + 'static,
    {
        match self {
            Self::Strata => Box::new(StrataCache::new(capacity)),
            Self::Moka => Box::new(MokaCache::new(capacity, accounting)),
            Self::QuickCache => Box::new(QuickCache::new(capacity)),
            Self::FoyerS3Fifo => Box::new(FoyerCache::new(capacity, FoyerEviction::S3Fifo)),
            Self::FoyerLfu => Box::new(FoyerCache::new(capacity, FoyerEviction::Lfu)),
            Self::Map => Box::new(ShardedMap::new(capacity)),
        }
    }
}

fn to_usize(capacity: u64) -> usize {
    usize::try_from(capacity).expect("capacity fits in usize")
}

/// `strata::Cache::new(capacity)`.
pub struct StrataCache<V> {
    cache: strata::Cache<u64, V>,
}

impl<V: Clone + Send + Sync + 'static> StrataCache<V> {
    /// A strata cache of `capacity` entries.
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: strata::Cache::new(capacity),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> BenchCache<V> for StrataCache<V> {
    fn name(&self) -> &'static str {
        Peer::Strata.name()
    }
    fn get(&self, key: u64) -> Option<V> {
        self.cache.get(&key)
    }
    fn insert(&self, key: u64, value: V) {
        // A declined insert is an ordinary outcome for a cache.
        let _ = self.cache.insert(key, value);
    }
    fn entries(&self) -> usize {
        self.cache.len()
    }
}

/// `moka::sync::Cache` with `max_capacity(capacity)`.
pub struct MokaCache<V> {
    cache: moka::sync::Cache<u64, V>,
    accounting: Accounting,
}

impl<V: Clone + Send + Sync + 'static> MokaCache<V> {
    /// A moka cache of `capacity` entries.
    #[must_use]
    pub fn new(capacity: u64, accounting: Accounting) -> Self {
        Self {
            cache: moka::sync::Cache::builder().max_capacity(capacity).build(),
            accounting,
        }
    }
}

impl<V: Clone + Send + Sync + 'static> BenchCache<V> for MokaCache<V> {
    fn name(&self) -> &'static str {
        Peer::Moka.name()
    }
    fn get(&self, key: u64) -> Option<V> {
        self.cache.get(&key)
    }
    fn insert(&self, key: u64, value: V) {
        self.cache.insert(key, value);
        if self.accounting == Accounting::Exact {
            self.cache.run_pending_tasks();
        }
    }
    fn entries(&self) -> usize {
        to_usize(self.cache.entry_count())
    }
    fn settle(&self) {
        self.cache.run_pending_tasks();
    }
}

/// `quick_cache::sync::Cache::new(capacity)`.
pub struct QuickCache<V> {
    cache: quick_cache::sync::Cache<u64, V>,
}

impl<V: Clone + Send + Sync + 'static> QuickCache<V> {
    /// A quick_cache cache of `capacity` entries.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` does not fit in `usize`.
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(to_usize(capacity)),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> BenchCache<V> for QuickCache<V> {
    fn name(&self) -> &'static str {
        Peer::QuickCache.name()
    }
    fn get(&self, key: u64) -> Option<V> {
        self.cache.get(&key)
    }
    fn insert(&self, key: u64, value: V) {
        self.cache.insert(key, value);
    }
    fn entries(&self) -> usize {
        self.cache.len()
    }
}

/// Eviction policy of a [`FoyerCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoyerEviction {
    /// S3-FIFO with foyer's default ratios.
    S3Fifo,
    /// foyer's W-TinyLFU (`LfuConfig`) with its default ratios.
    Lfu,
}

/// `foyer_memory::Cache` (crate defaults: 8 shards, each with an eighth of
/// the capacity, xxHash64) with the chosen eviction policy.
pub struct FoyerCache<V: Send + Sync + 'static> {
    cache: foyer_memory::Cache<u64, V>,
    eviction: FoyerEviction,
}

impl<V: Clone + Send + Sync + 'static> FoyerCache<V> {
    /// A foyer cache of `capacity` entries.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` does not fit in `usize`.
    #[must_use]
    pub fn new(capacity: u64, eviction: FoyerEviction) -> Self {
        let builder = foyer_memory::CacheBuilder::new(to_usize(capacity));
        let builder = match eviction {
            FoyerEviction::S3Fifo => {
                builder.with_eviction_config(foyer_memory::S3FifoConfig::default())
            }
            FoyerEviction::Lfu => builder.with_eviction_config(foyer_memory::LfuConfig::default()),
        };
        Self {
            cache: builder.build(),
            eviction,
        }
    }
}

impl<V: Clone + Send + Sync + 'static> BenchCache<V> for FoyerCache<V> {
    fn name(&self) -> &'static str {
        match self.eviction {
            FoyerEviction::S3Fifo => Peer::FoyerS3Fifo.name(),
            FoyerEviction::Lfu => Peer::FoyerLfu.name(),
        }
    }
    fn get(&self, key: u64) -> Option<V> {
        self.cache.get(&key).map(|entry| entry.value().clone())
    }
    fn insert(&self, key: u64, value: V) {
        // The returned handle pins the entry until dropped; drop it now.
        drop(self.cache.insert(key, value));
    }
    fn entries(&self) -> usize {
        self.cache.entries()
    }
}

type Shard<V> = CachePadded<Mutex<HashMap<u64, V, ahash::RandomState>>>;

/// `next_pow2(4 × available_parallelism)` mutex-guarded hash maps that never
/// evict: what a cache would cost with no policy at all, an upper bound on
/// throughput (and not a cache: it grows without limit).
pub struct ShardedMap<V> {
    shards: Box<[Shard<V>]>,
    hasher: ahash::RandomState,
}

impl<V> ShardedMap<V> {
    /// An empty map, pre-sized for `capacity` entries in total.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` does not fit in `usize`.
    #[must_use]
    pub fn new(capacity: u64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let count = (4 * threads).next_power_of_two();
        let per_shard = to_usize(capacity) / count;
        let shards = (0..count)
            .map(|_| {
                CachePadded::new(Mutex::new(HashMap::with_capacity_and_hasher(
                    per_shard,
                    ahash::RandomState::new(),
                )))
            })
            .collect();
        Self {
            shards,
            hasher: ahash::RandomState::new(),
        }
    }

    fn shard(&self, key: u64) -> &Shard<V> {
        // The shard count is a power of two; the map hashes with its own
        // seed, so taking low bits here does not skew buckets there.
        // Truncating the hash is the point.
        #[allow(clippy::cast_possible_truncation)]
        let at = self.hasher.hash_one(key) as usize & (self.shards.len() - 1);
        &self.shards[at]
    }
}

impl<V: Clone + Send + Sync + 'static> BenchCache<V> for ShardedMap<V> {
    fn name(&self) -> &'static str {
        Peer::Map.name()
    }
    fn get(&self, key: u64) -> Option<V> {
        self.shard(key).lock().get(&key).cloned()
    }
    fn insert(&self, key: u64, value: V) {
        self.shard(key).lock().insert(key, value);
    }
    fn entries(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }
}

macro_rules! debug_by_name {
    ($($ty:ident),*) => {$(
        impl<V: Clone + Send + Sync + 'static> fmt::Debug for $ty<V> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &BenchCache::name(self))
                    .field("entries", &self.entries())
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_by_name!(StrataCache, MokaCache, QuickCache, FoyerCache, ShardedMap);
