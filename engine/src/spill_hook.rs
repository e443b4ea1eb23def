//! The seam between the memory tier and a lower tier on the same machine
//! (the spill tier): what the cache calls, under which lock.
//!
//! Calls marked "under the shard lock" are made while the cache holds the
//! write lock of the key's shard, which orders them with every other write
//! of that key: a record can never overtake a later insert or removal.

use crate::stats::SpillStats;

/// Identifies one record of a key, so that a promotion can check that the
/// record it read is still the current one.
pub(crate) type Token = [u32; 3];

/// An entry read back from a lower tier.
pub(crate) struct Spilled<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    /// In the cache's clock (nanoseconds), `NEVER` for none.
    pub(crate) deadline: u64,
    pub(crate) token: Token,
}

pub(crate) trait SpillHook<K, V>: Send + Sync {
    /// The entry stored for `hash` (the caller compares the key), if any
    /// and not expired.
    fn read(&self, hash: u64) -> Option<Spilled<K, V>>;

    /// Counts a memory miss that this tier answered or not.
    fn count_lookup(&self, hit: bool);

    /// Under the shard lock: the key of `hash` was written or removed in
    /// memory; any record of it must go (and stay gone after a restart).
    fn forget(&self, hash: u64);

    /// Under the shard lock: the entry was evicted from memory for space.
    fn evicted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64);

    /// Under the shard lock, with `write_on_insert`: writes the entry
    /// through. False if it was not written (the caller then forgets).
    fn inserted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64) -> bool;

    /// Whether inserts are written through.
    fn write_on_insert(&self) -> bool;

    /// Under the shard lock: the record `token` read for `hash` is about to
    /// be promoted into memory; true if it is still current.
    fn promote(&self, hash: u64, token: Token) -> bool;

    /// Forgets every record.
    fn clear(&self);

    fn stats(&self) -> SpillStats;

    /// Under the shard lock: the entry is in memory and should be on disk
    /// too (a clean shutdown), held in both.
    #[cfg(feature = "spill")]
    fn persisted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64);

    /// Saves the memory tier's admission state and flushes the segments.
    #[cfg(feature = "spill")]
    fn persist(&self, states: &[crate::spill::ShardState]) -> Result<(), crate::spill::SpillError>;

    /// The admission state saved by the last clean shutdown, if it was
    /// made with the same hasher for `shards` shards.
    #[cfg(feature = "spill")]
    fn saved_state(&self, shards: usize) -> Option<Vec<crate::spill::ShardState>>;

    /// Records that the saved state was restored.
    #[cfg(feature = "spill")]
    fn mark_restored(&self);
}
