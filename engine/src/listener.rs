//! User hooks: how much an entry weighs, and who hears of removals.

use std::fmt;

/// Why an entry left the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted by the policy to stay within capacity, or rejected by
    /// admission when it left the window.
    Capacity,
    /// Its time-to-live or time-to-idle ran out.
    Expired,
    /// An insert of the same key replaced its value (the listener gets the
    /// old value).
    Replaced,
    /// Removed by [`Cache::remove`](crate::Cache::remove) or
    /// [`Cache::retain`](crate::Cache::retain), or because an insert of the
    /// same key was too heavy to store.
    Removed,
    /// Removed by [`Cache::clear`](crate::Cache::clear).
    Cleared,
    /// Removed by [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
    /// or [`Cache::invalidate_tags`](crate::Cache::invalidate_tags).
    Invalidated,
}

impl RemovalCause {
    /// True for removals the cache decided on (capacity and expiry), false
    /// for those a caller asked for.
    #[must_use]
    pub fn was_evicted(self) -> bool {
        matches!(self, Self::Capacity | Self::Expired)
    }
}

/// Weighs entries against the cache's capacity.
///
/// Implemented for every `Fn(&K, &V) -> u32 + Send + Sync`. A weight of zero
/// counts as one, so that the entry count stays bounded. The weigher runs
/// before any lock is taken; if it panics, the panic reaches the caller of
/// `insert` and the cache is untouched.
pub trait Weigher<K, V>: Send + Sync {
    /// The weight of this entry.
    fn weigh(&self, key: &K, value: &V) -> u32;
}

impl<K, V, F> Weigher<K, V> for F
where
    F: Fn(&K, &V) -> u32 + Send + Sync + 'static,
{
    fn weigh(&self, key: &K, value: &V) -> u32 {
        self(key, value)
    }
}

/// Hears about every entry that leaves the cache, exactly once, with the
/// cause.
///
/// Implemented for every `Fn(K, V, RemovalCause) + Send + Sync`. It runs on
/// the thread whose operation removed the entry, right after that operation
/// released the shard lock: it may call back into the cache. If it panics,
/// the remaining removals of that operation are still delivered, the panic
/// is counted in [`Stats::listener_panics`](crate::Stats::listener_panics),
/// and then the panic resumes in the caller; the cache stays consistent and
/// the listener stays installed.
pub trait EvictionListener<K, V>: Send + Sync {
    /// Called once for each entry that left the cache.
    fn on_removal(&self, key: K, value: V, cause: RemovalCause);
}

impl<K, V, F> EvictionListener<K, V> for F
where
    F: Fn(K, V, RemovalCause) + Send + Sync + 'static,
{
    fn on_removal(&self, key: K, value: V, cause: RemovalCause) {
        self(key, value, cause);
    }
}

/// A background task the cache asks to have run (a refresh).
pub type BackgroundTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Runs the cache's background refreshes on the caller's runtime.
///
/// Implemented for every `Fn(BackgroundTask) + Send + Sync`, e.g.
/// `|task| { tokio::spawn(task); }`. With the `tokio` feature, a cache with
/// freshness windows and no spawner uses `tokio::spawn`.
pub trait Spawner: Send + Sync + 'static {
    /// Starts `task` and returns at once.
    fn spawn(&self, task: BackgroundTask);
}

impl<F> Spawner for F
where
    F: Fn(BackgroundTask) + Send + Sync + 'static,
{
    fn spawn(&self, task: BackgroundTask) {
        self(task);
    }
}

pub(crate) struct Hooks<K, V> {
    pub(crate) weigher: Option<Box<dyn Weigher<K, V>>>,
    pub(crate) listener: Option<Box<dyn EvictionListener<K, V>>>,
    pub(crate) spawner: Option<Box<dyn Spawner>>,
}

impl<K, V> fmt::Debug for Hooks<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("weigher", &self.weigher.is_some())
            .field("listener", &self.listener.is_some())
            .field("spawner", &self.spawner.is_some())
            .finish()
    }
}
