//! The typed spill tier: encodes entries into records on the way down and
//! decodes them on the way up, over the untyped [`Store`].

use std::cell::RefCell;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use bytes::Bytes;

use super::state::{self, ShardState, STATE_FILE};
use super::store::{write_atomically, Loc, Store};
use super::{SpillConfig, SpillError};
use crate::clock::{Clock, NEVER};
use crate::codec::{self, Codec, RecordMeta, RecordWriter};
use crate::spill_hook::{SpillHook, Spilled, Token};
use crate::stats::SpillStats;
use crate::sync::{AtomicBool, Ordering};

/// Encode buffers above this size are not kept between spills.
const KEEP_BUFFER: usize = 4 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct Tier<K, V> {
    store: Store,
    clock: Clock,
    write_on_insert: bool,
    restored: AtomicBool,
    /// Hashes of fixed probes under the cache's hasher: saved with the
    /// admission state, which is meaningless under another hasher.
    fingerprint: [u64; 4],
    _types: PhantomData<fn() -> (K, V)>,
}

/// Opens the spill directory for a cache: reseeds the cache's hasher from
/// the directory (when the hasher is the default one) so that hashes mean
/// the same across restarts, then rebuilds the index with it.
pub(crate) fn open_tier<K, V, S>(
    config: &SpillConfig,
    hasher: &mut S,
    reseed: Option<fn([u64; 4]) -> S>,
    clock: &Clock,
) -> Result<Box<dyn SpillHook<K, V>>, SpillError>
where
    K: Codec + Hash + 'static,
    V: Codec + 'static,
    S: BuildHasher + Sync,
{
    let now_ms = clock.wall_ms(clock.now());
    let (store, seeds) = Store::open(config)?;
    if let Some(reseed) = reseed {
        *hasher = reseed(seeds);
    }
    let hasher = &*hasher;
    store.recover(
        &|key: Bytes| K::decode(key).ok().map(|k| hasher.hash_one(&k)),
        now_ms,
    )?;
    let fingerprint = [0u64, 1, 2, 3].map(|i| hasher.hash_one(0x5354_5241_0000_0000 | i));
    Ok(Box::new(Tier::<K, V> {
        store,
        fingerprint,
        clock: clock.clone(),
        write_on_insert: config.write_on_insert,
        restored: AtomicBool::new(false),
        _types: PhantomData,
    }))
}

impl<K: Codec, V: Codec> Tier<K, V> {
    /// Encodes the entry and appends it; false if it was not written.
    fn write(
        &self,
        hash: u64,
        key: &K,
        value: &V,
        deadline: u64,
        now: u64,
        resident: bool,
    ) -> bool {
        let expires_at_ms = (deadline != NEVER).then(|| {
            self.clock
                .wall_ms(now)
                .saturating_add(deadline.saturating_sub(now).div_ceil(1_000_000))
        });
        BUFFER.with(|buffer| {
            let Ok(mut buf) = buffer.try_borrow_mut() else {
                // Re-entered from a codec: use a fresh buffer.
                return self.encode_and_append(
                    &mut Vec::new(),
                    hash,
                    key,
                    value,
                    expires_at_ms,
                    resident,
                );
            };
            buf.clear();
            let written =
                self.encode_and_append(&mut buf, hash, key, value, expires_at_ms, resident);
            if buf.capacity() > KEEP_BUFFER {
                *buf = Vec::new();
            }
            written
        })
    }

    fn encode_and_append(
        &self,
        buf: &mut Vec<u8>,
        hash: u64,
        key: &K,
        value: &V,
        expires_at_ms: Option<u64>,
        resident: bool,
    ) -> bool {
        buf.reserve(
            codec::HEADER_LEN
                + key.encoded_len_hint()
                + value.encoded_len_hint()
                + codec::TRAILER_LEN,
        );
        let mut writer = RecordWriter::new(buf);
        key.encode(writer.buf());
        writer.end_key();
        value.encode(writer.buf());
        let meta = RecordMeta {
            expires_at_ms,
            tags: &[],
        };
        if writer.finish(meta, false).is_err() {
            self.store.count_skipped();
            return false;
        }
        self.store.append(hash, buf, resident).is_ok()
    }
}

fn token(loc: Loc) -> Token {
    [loc.segment, loc.offset, loc.len]
}

impl<K, V> SpillHook<K, V> for Tier<K, V>
where
    K: Codec,
    V: Codec,
{
    fn read(&self, hash: u64) -> Option<Spilled<K, V>> {
        let (bytes, loc) = self.store.read(hash)?;
        // Records were checksummed when this process wrote them or opened
        // the directory; lengths are still checked on every read.
        let Ok((record, _)) = codec::decode_unverified(&bytes) else {
            self.store.count_corrupt();
            return None;
        };
        let deadline = match record.expires_at_ms {
            None => NEVER,
            Some(at) => {
                // The clock is read only for entries that expire.
                let now = self.clock.now();
                let wall = self.clock.wall_ms(now);
                if at <= wall {
                    return None;
                }
                now.saturating_add((at - wall).saturating_mul(1_000_000))
                    .min(NEVER - 1)
            }
        };
        let key_at = codec::HEADER_LEN;
        let value_at = record.value_offset();
        let (key_len, value_len) = (record.key.len(), record.value.len());
        let key = K::decode(bytes.slice(key_at..key_at + key_len));
        let value = V::decode(bytes.slice(value_at..value_at + value_len));
        match (key, value) {
            (Ok(key), Ok(value)) => Some(Spilled {
                key,
                value,
                deadline,
                token: token(loc),
            }),
            _ => {
                self.store.count_corrupt();
                None
            }
        }
    }

    fn count_lookup(&self, hit: bool) {
        self.store.count_lookup(hit);
    }

    fn forget(&self, hash: u64) {
        self.store.forget(hash);
    }

    fn evicted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64) {
        if !self.store.evict_resident(hash) {
            self.write(hash, key, value, deadline, now, false);
        }
    }

    fn inserted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64) -> bool {
        self.write(hash, key, value, deadline, now, true)
    }

    fn write_on_insert(&self) -> bool {
        self.write_on_insert
    }

    fn promote(&self, hash: u64, token: Token) -> bool {
        let [segment, offset, len] = token;
        self.store.promote(
            hash,
            Loc {
                segment,
                offset,
                len,
            },
        )
    }

    fn clear(&self) {
        self.store.clear();
    }

    fn stats(&self) -> SpillStats {
        let mut stats = self.store.stats();
        stats.sketch_restored = self.restored.load(Ordering::Relaxed);
        stats
    }

    fn persisted(&self, hash: u64, key: &K, value: &V, deadline: u64, now: u64) {
        // Memory holding a key that the index has means the record is the
        // same value (every other memory write forgets the record).
        if !self.store.contains(hash) {
            self.write(hash, key, value, deadline, now, true);
        }
    }

    fn persist(&self, states: &[ShardState]) -> Result<(), SpillError> {
        self.store.sync()?;
        let bytes = state::encode(self.fingerprint, states);
        write_atomically(&self.store.dir().join(STATE_FILE), &bytes)
    }

    fn saved_state(&self, shards: usize) -> Option<Vec<ShardState>> {
        let bytes = std::fs::read(self.store.dir().join(STATE_FILE)).ok()?;
        state::decode(&bytes, self.fingerprint, shards)
    }

    fn mark_restored(&self) {
        self.restored.store(true, Ordering::Relaxed);
    }
}
