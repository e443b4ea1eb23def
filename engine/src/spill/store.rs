//! The untyped spill store: segments, the writer, the key index, reclaim
//! and recovery. It sees records as bytes and keys as hashes; the typed
//! tier in `tier.rs` encodes and decodes.
//!
//! Lock order: a cache shard's lock (held by the callers of `append`,
//! `forget`, `evicted` and `promote`) → `writer` → an index shard →
//! `segments`. Reads take an index shard, then `segments`, never the
//! writer.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

use super::segment::{self, Segment};
use super::{SpillConfig, SpillError, SpillStats};
use crate::codec::{self, DecodeError};
use crate::sync::{AtomicU64, Mutex, Ordering, PublicArc as Arc, RwLock};

/// How many times (10 ms apart) a busy lock is tried again.
const LOCK_RETRIES: u32 = 10;
const LOCK_FILE: &str = "strata.lock";
const META_FILE: &str = "strata.meta";
const META_MAGIC: &[u8; 8] = b"STRAMETA";
const INDEX_SHARDS: usize = 64;
/// Re-written hot records may fill at most this share of a new segment.
const REINSERT_SHARE: usize = 4;

/// Where a record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) segment: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    hash: u64,
    loc: Loc,
    /// The memory tier holds this same value (it was promoted or written
    /// through): evicting it needs no new write.
    resident: bool,
    /// Read since it was written: worth keeping when its segment goes.
    hot: bool,
}

type IndexShard = HashTable<Entry>;

struct Writer {
    active: Option<Arc<Segment>>,
    written: usize,
    next_id: u32,
    /// Per live segment, oldest first: the hashes of the records it holds
    /// (for reclaim, which must drop their index entries).
    members: VecDeque<(u32, Vec<u64>)>,
}

/// A live segment, and once it is complete (sealed or recovered) one
/// `Bytes` over all of it, so that a read is a slice of it (a reference
/// count) rather than a new owner allocation.
struct Live {
    segment: Arc<Segment>,
    whole: Option<Bytes>,
}

impl Live {
    fn new(segment: Arc<Segment>, complete: bool) -> Self {
        let whole = complete
            .then(|| segment.bytes(0, segment.readable()))
            .flatten();
        Self { segment, whole }
    }

    /// Bytes `[offset, offset + len)`, if written.
    fn bytes(&self, offset: usize, len: usize) -> Option<Bytes> {
        match &self.whole {
            Some(whole) => {
                let end = offset.checked_add(len).filter(|&end| end <= whole.len())?;
                Some(whole.slice(offset..end))
            }
            None => self.segment.bytes(offset, len),
        }
    }
}

pub(crate) struct Store {
    dir: PathBuf,
    _lock: File,
    segment_size: usize,
    max_segments: usize,
    segments: RwLock<BTreeMap<u32, Live>>,
    writer: Mutex<Writer>,
    index: Box<[CachePadded<Mutex<IndexShard>>]>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
    tombstones: AtomicU64,
    write_errors: AtomicU64,
    skipped: AtomicU64,
    corrupt: AtomicU64,
    reclaimed_segments: AtomicU64,
    reclaimed_entries: AtomicU64,
    reinserted: AtomicU64,
    recovered: AtomicU64,
    dropped_segments: AtomicU64,
    entries: AtomicU64,
}

fn io_error<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SpillError + 'p {
    move |source| SpillError::Io {
        op,
        path: path.to_owned(),
        source: Arc::new(source),
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Store {
    /// Opens (or creates) the spill directory and takes its lock; returns
    /// the store (empty until [`Store::recover`]) and the hasher seeds.
    pub(crate) fn open(config: &SpillConfig) -> Result<(Self, [u64; 4]), SpillError> {
        let (segment_size, max_segments) = config.geometry()?;
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error("create", &lock_path))?;
        // A lock can outlive its cache by a moment: a child process that
        // another thread of this program is starting shares the descriptor
        // until it execs. Wait that out (up to ~100 ms) before calling the
        // directory taken.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if tries < LOCK_RETRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(fs::TryLockError::WouldBlock) => return Err(SpillError::Locked { path: dir }),
                Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
            }
        }
        let seeds = read_or_create_meta(&dir)?;
        let store = Self {
            dir,
            _lock: lock,
            segment_size,
            max_segments,
            segments: RwLock::new(BTreeMap::new()),
            writer: Mutex::new(Writer {
                active: None,
                written: 0,
                next_id: 0,
                members: VecDeque::new(),
            }),
            index: (0..INDEX_SHARDS)
                .map(|_| CachePadded::new(Mutex::new(HashTable::new())))
                .collect(),
            counters: Counters::default(),
        };
        Ok((store, seeds))
    }

    fn shard(&self, hash: u64) -> &Mutex<IndexShard> {
        // Low bits: the cache picks its shard from bits 32.., so index
        // shards spread independently of cache shards.
        &self.index[(hash as usize) % INDEX_SHARDS]
    }

    /// Scans the segments in id order (a later record of a key wins; a
    /// tombstone removes it) and drops whatever cannot be trusted.
    /// `rehash` turns a record's key bytes into the cache's hash (`None`:
    /// undecodable, counted as corrupt); expired records are skipped.
    pub(crate) fn recover(&self, rehash: &Rehash<'_>, now_ms: u64) -> Result<(), SpillError> {
        let mut ids = Vec::new();
        let listing = fs::read_dir(&self.dir).map_err(io_error("list", &self.dir))?;
        for item in listing {
            let item = item.map_err(io_error("list", &self.dir))?;
            if let Some(id) = item.file_name().to_str().and_then(segment::parse_name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        // A missing segment may have held the tombstones of older records:
        // keep only the run of consecutive ids that ends at the newest.
        let keep_from = ids
            .windows(2)
            .rposition(|pair| pair[1] != pair[0].wrapping_add(1))
            .map_or(0, |gap| gap + 1);
        for &id in &ids[..keep_from] {
            self.delete_segment_file(id);
            bump(&self.counters.dropped_segments, 1);
        }
        let ids = &ids[keep_from..];
        let paths: Vec<(u32, PathBuf)> = ids
            .iter()
            .map(|&id| (id, self.dir.join(segment::file_name(id))))
            .collect();
        let mut opened = Vec::new();
        let mut scanned = Vec::new();
        for (i, result) in scan_all(&paths, rehash, now_ms).into_iter().enumerate() {
            match result {
                Some((seg, scan)) => {
                    opened.push(seg);
                    scanned.push(scan);
                }
                None => {
                    // Unreadable: like a missing one, it invalidates the
                    // older segments too.
                    for older in opened.drain(..) {
                        self.delete_segment_file(older.id);
                        bump(&self.counters.dropped_segments, 1);
                    }
                    scanned.clear();
                    self.delete_segment_file(paths[i].0);
                    bump(&self.counters.dropped_segments, 1);
                }
            }
        }
        let mut writer = self.writer.lock();
        writer.next_id = ids.last().map_or(0, |&id| id.wrapping_add(1));
        let items: usize = scanned.iter().map(|s| s.items.len()).sum();
        for shard in self.index.iter() {
            shard.lock().reserve(items / INDEX_SHARDS + 16, |e| e.hash);
        }
        self.merge(&opened, &scanned);
        for (seg, scan) in opened.into_iter().zip(scanned) {
            bump(&self.counters.corrupt, scan.corrupt);
            let members = scan
                .items
                .iter()
                .filter(|i| i.live)
                .map(|i| i.hash)
                .collect();
            writer.members.push_back((seg.id, members));
            self.segments.write().insert(seg.id, Live::new(seg, true));
        }
        while writer.members.len() > self.max_segments.saturating_sub(1) {
            self.reclaim_oldest(&mut writer, false);
        }
        let recovered = self.index.iter().map(|s| s.lock().len() as u64).sum();
        self.counters.recovered.store(recovered, Ordering::Relaxed);
        self.counters.entries.store(recovered, Ordering::Relaxed);
        Ok(())
    }

    /// Applies scanned records to the index in id order, then file order
    /// (a later record of a key wins). Index shards are independent, so up
    /// to one thread per core applies the records of its own shards.
    fn merge(&self, segments: &[Arc<Segment>], scanned: &[Scanned]) {
        let apply = |part: usize, parts: usize| {
            for (seg, scan) in segments.iter().zip(scanned) {
                for item in &scan.items {
                    let home = (item.hash as usize) % INDEX_SHARDS;
                    if home % parts != part {
                        continue;
                    }
                    let mut shard = self.index[home].lock();
                    let found = shard.entry(item.hash, |e| e.hash == item.hash, |e| e.hash);
                    let entry = Entry {
                        hash: item.hash,
                        loc: Loc {
                            segment: seg.id,
                            offset: item.offset,
                            len: item.len,
                        },
                        resident: false,
                        hot: false,
                    };
                    match (found, item.live) {
                        (hashbrown::hash_table::Entry::Occupied(mut old), true) => {
                            *old.get_mut() = entry
                        }
                        (hashbrown::hash_table::Entry::Occupied(old), false) => {
                            old.remove();
                        }
                        (hashbrown::hash_table::Entry::Vacant(slot), true) => {
                            slot.insert(entry);
                        }
                        (hashbrown::hash_table::Entry::Vacant(_), false) => {}
                    }
                }
            }
        };
        let parts = cores();
        let items: usize = scanned.iter().map(|s| s.items.len()).sum();
        if parts <= 1 || items < 100_000 {
            apply(0, 1);
            return;
        }
        std::thread::scope(|scope| {
            let apply = &apply;
            let mut spawned = Vec::new();
            for part in 1..parts {
                match std::thread::Builder::new().spawn_scoped(scope, move || apply(part, parts)) {
                    Ok(handle) => spawned.push(handle),
                    // No thread: do its part here.
                    Err(_) => apply(part, parts),
                }
            }
            apply(0, parts);
            for handle in spawned {
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
    }

    fn delete_segment_file(&self, id: u32) {
        let _ = fs::remove_file(self.dir.join(segment::file_name(id)));
    }

    /// The record for `hash`, as bytes over the segment map.
    pub(crate) fn read(&self, hash: u64) -> Option<(bytes::Bytes, Loc)> {
        let loc = {
            let mut shard = self.shard(hash).lock();
            let entry = shard.find_mut(hash, |e| e.hash == hash)?;
            entry.hot = true;
            entry.loc
        };
        let bytes = self
            .segments
            .read()
            .get(&loc.segment)?
            .bytes(loc.offset as usize, loc.len as usize)?;
        Some((bytes, loc))
    }

    /// Counts a lookup of the spill tier.
    pub(crate) fn count_lookup(&self, hit: bool) {
        bump(
            if hit {
                &self.counters.hits
            } else {
                &self.counters.misses
            },
            1,
        );
    }

    /// Counts a record that failed to decode on a read.
    pub(crate) fn count_corrupt(&self) {
        bump(&self.counters.corrupt, 1);
    }

    /// Counts an entry that was not spilled (too large, tagged, unencodable).
    pub(crate) fn count_skipped(&self) {
        bump(&self.counters.skipped, 1);
    }

    /// Whether `hash` has a record.
    pub(crate) fn contains(&self, hash: u64) -> bool {
        self.shard(hash)
            .lock()
            .find(hash, |e| e.hash == hash)
            .is_some()
    }

    /// If `hash` is indexed and the memory tier holds the same value,
    /// marks it evicted from memory and returns true (no write needed).
    pub(crate) fn evict_resident(&self, hash: u64) -> bool {
        let mut shard = self.shard(hash).lock();
        match shard.find_mut(hash, |e| e.hash == hash) {
            Some(entry) if entry.resident => {
                entry.resident = false;
                true
            }
            _ => false,
        }
    }

    /// Marks the record at `loc` as held in memory too, if it is still the
    /// current record of `hash`; false if a write or reclaim replaced it.
    pub(crate) fn promote(&self, hash: u64, loc: Loc) -> bool {
        let mut shard = self.shard(hash).lock();
        match shard.find_mut(hash, |e| e.hash == hash) {
            Some(entry) if entry.loc == loc => {
                entry.resident = true;
                true
            }
            _ => false,
        }
    }

    /// Appends `record` as the current record of `hash`.
    pub(crate) fn append(
        &self,
        hash: u64,
        record: &[u8],
        resident: bool,
    ) -> Result<(), SpillError> {
        let Some(len) = u32::try_from(record.len())
            .ok()
            .filter(|&l| l as usize <= self.segment_size)
        else {
            bump(&self.counters.skipped, 1);
            return Err(SpillError::TooLarge {
                len: record.len() as u64,
                max: self.segment_size as u64,
            });
        };
        let mut writer = self.writer.lock();
        let (segment, offset) = self.write(&mut writer, record)?;
        if let Some((_, members)) = writer.members.back_mut() {
            members.push(hash);
        }
        // Still under the writer lock: a reclaim copying an older record of
        // this key either ran before (and this entry replaces its copy) or
        // runs after (and finds this entry, not the old one).
        let entry = Entry {
            hash,
            loc: Loc {
                segment,
                offset,
                len,
            },
            resident,
            hot: false,
        };
        let mut shard = self.shard(hash).lock();
        match shard.find_mut(hash, |e| e.hash == hash) {
            Some(old) => *old = entry,
            None => {
                shard.insert_unique(hash, entry, |e| e.hash);
                bump(&self.counters.entries, 1);
            }
        }
        Ok(())
    }

    /// Drops the record of `hash`, if any, and writes a tombstone so that
    /// it does not come back on restart.
    ///
    /// Only `append` (under the same cache shard lock as this call) makes
    /// an absent entry present, so the unlocked check is exact; the rest
    /// runs under the writer lock, which orders it with reclaims.
    pub(crate) fn forget(&self, hash: u64) {
        if self
            .shard(hash)
            .lock()
            .find(hash, |e| e.hash == hash)
            .is_none()
        {
            return;
        }
        let mut writer = self.writer.lock();
        let removed = match self.shard(hash).lock().find_entry(hash, |e| e.hash == hash) {
            Ok(found) => found.remove().0.loc,
            Err(_) => return,
        };
        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
        let Some(seg) = self
            .segments
            .read()
            .get(&removed.segment)
            .map(|live| Arc::clone(&live.segment))
        else {
            return;
        };
        let key = seg
            .slice(removed.offset as usize, removed.len as usize)
            .and_then(|bytes| codec::decode(bytes).ok())
            .map(|(record, _)| record.key);
        let Some(key) = key else { return };
        let mut tombstone = Vec::with_capacity(codec::HEADER_LEN + key.len() + codec::TRAILER_LEN);
        if codec::encode_tombstone(key, &mut tombstone).is_ok()
            && self.write(&mut writer, &tombstone).is_ok()
        {
            bump(&self.counters.tombstones, 1);
        }
    }

    /// Writes `record` at the end of the active segment (rolling to a new
    /// one, and reclaiming the oldest, when it is full).
    fn write(&self, writer: &mut Writer, record: &[u8]) -> Result<(u32, u32), SpillError> {
        let fits = writer
            .active
            .as_ref()
            .is_some_and(|seg| writer.written + record.len() <= seg.len());
        if !fits {
            self.roll(writer)?;
        }
        let Some(seg) = writer.active.clone() else {
            return Err(SpillError::TooLarge {
                len: record.len() as u64,
                max: self.segment_size as u64,
            });
        };
        if writer.written + record.len() > seg.len() {
            // Hot records copied by the roll filled it: count as skipped.
            bump(&self.counters.skipped, 1);
            return Err(SpillError::TooLarge {
                len: record.len() as u64,
                max: (seg.len() - writer.written) as u64,
            });
        }
        let offset = writer.written;
        match seg.write_at(record, offset) {
            Ok(()) => {
                writer.written += record.len();
                bump(&self.counters.writes, 1);
                bump(&self.counters.bytes_written, record.len() as u64);
                // `written <= segment_size <= u32::MAX` (see `geometry`).
                Ok((seg.id, offset as u32))
            }
            Err(e) => {
                // `written` stays: the next record is written over whatever
                // part of this one reached the file (nothing reads past
                // `written`), so a full disk costs records, not segments.
                bump(&self.counters.write_errors, 1);
                Err(io_error("write", &seg.path)(e))
            }
        }
    }

    /// Starts a new active segment, then reclaims the oldest ones while the
    /// budget is exceeded (their hot records move to the new one). The new
    /// segment is empty until the reclaim is done, so the bytes on disk
    /// never exceed the budget; if it cannot be created, nothing is
    /// reclaimed.
    fn roll(&self, writer: &mut Writer) -> Result<(), SpillError> {
        let id = writer.next_id;
        let seg = match Segment::create(&self.dir, id, self.segment_size) {
            Ok(seg) => Arc::new(seg),
            Err(e) => {
                bump(&self.counters.write_errors, 1);
                return Err(io_error("create", &self.dir.join(segment::file_name(id)))(
                    e,
                ));
            }
        };
        writer.next_id = id.wrapping_add(1);
        writer.written = 0;
        if let Some(done) = writer.active.take() {
            // Complete now: later reads slice one `Bytes` over it.
            if let Some(live) = self.segments.write().get_mut(&done.id) {
                *live = Live::new(done, true);
            }
        }
        let mut reclaimed = Vec::new();
        while writer.members.len() >= self.max_segments {
            match self.reclaim_oldest(writer, true) {
                Some(victim) => reclaimed.push(victim),
                None => break,
            }
        }
        writer.members.push_back((id, Vec::new()));
        self.segments
            .write()
            .insert(id, Live::new(Arc::clone(&seg), false));
        writer.active = Some(seg);
        for (victim, hot) in reclaimed {
            self.reinsert(writer, &victim, hot);
            self.segments.write().remove(&victim.id);
            self.delete_segment_file(victim.id);
        }
        Ok(())
    }

    /// Takes the oldest segment out of the writer's list and drops the index
    /// entries that point into it, except (with `keep_hot`) records read
    /// since they were written and not held in memory, which are returned
    /// for `reinsert`. Without `keep_hot` the file is deleted at once.
    fn reclaim_oldest(
        &self,
        writer: &mut Writer,
        keep_hot: bool,
    ) -> Option<(Arc<Segment>, Vec<Entry>)> {
        let (id, members) = writer.members.pop_front()?;
        let mut hot = Vec::new();
        let mut dropped = 0;
        for hash in members {
            let mut shard = self.shard(hash).lock();
            if let Ok(found) = shard.find_entry(hash, |e| e.hash == hash && e.loc.segment == id) {
                let entry = *found.get();
                if keep_hot && entry.hot && !entry.resident {
                    hot.push(entry);
                } else {
                    found.remove();
                    dropped += 1;
                }
            }
        }
        self.counters.entries.fetch_sub(dropped, Ordering::Relaxed);
        bump(&self.counters.reclaimed_segments, 1);
        bump(&self.counters.reclaimed_entries, dropped);
        let seg = self
            .segments
            .read()
            .get(&id)
            .map(|live| Arc::clone(&live.segment));
        match seg {
            Some(seg) if keep_hot => Some((seg, hot)),
            _ => {
                self.segments.write().remove(&id);
                self.delete_segment_file(id);
                None
            }
        }
    }

    /// Copies hot records of a reclaimed segment into the active segment,
    /// up to a share of its size, and points their entries there; the
    /// others are dropped. Runs under the writer lock, so no append or
    /// forget of these keys interleaves.
    fn reinsert(&self, writer: &mut Writer, from: &Segment, hot: Vec<Entry>) {
        let active = writer.active.clone();
        let limit = active.as_ref().map_or(0, |a| a.len() / REINSERT_SHARE);
        let mut copied = 0;
        for entry in hot {
            let record = from.slice(entry.loc.offset as usize, entry.loc.len as usize);
            let moved = match (&active, record) {
                (Some(active), Some(record))
                    if copied + record.len() <= limit
                        && writer.written + record.len() <= active.len() =>
                {
                    let offset = writer.written;
                    if active.write_at(record, offset).is_ok() {
                        writer.written += record.len();
                        copied += record.len();
                        if let Some((_, members)) = writer.members.back_mut() {
                            members.push(entry.hash);
                        }
                        Some(Loc {
                            segment: active.id,
                            offset: offset as u32,
                            len: entry.loc.len,
                        })
                    } else {
                        bump(&self.counters.write_errors, 1);
                        None
                    }
                }
                _ => None,
            };
            let mut shard = self.shard(entry.hash).lock();
            if let Ok(mut found) =
                shard.find_entry(entry.hash, |e| e.hash == entry.hash && e.loc == entry.loc)
            {
                match moved {
                    Some(loc) => {
                        let e = found.get_mut();
                        e.loc = loc;
                        e.hot = false;
                        bump(&self.counters.reinserted, 1);
                    }
                    None => {
                        found.remove();
                        self.counters.entries.fetch_sub(1, Ordering::Relaxed);
                        bump(&self.counters.reclaimed_entries, 1);
                    }
                }
            }
        }
    }

    /// Forgets every record and deletes every segment.
    pub(crate) fn clear(&self) {
        let mut writer = self.writer.lock();
        for shard in self.index.iter() {
            *shard.lock() = HashTable::new();
        }
        writer.active = None;
        writer.members.clear();
        let segments = std::mem::take(&mut *self.segments.write());
        for id in segments.keys() {
            self.delete_segment_file(*id);
        }
        self.counters.entries.store(0, Ordering::Relaxed);
    }

    /// Flushes every segment to the device.
    pub(crate) fn sync(&self) -> Result<(), SpillError> {
        let segments: Vec<_> = self
            .segments
            .read()
            .values()
            .map(|live| Arc::clone(&live.segment))
            .collect();
        for seg in segments {
            seg.sync().map_err(io_error("sync", &seg.path))?;
        }
        Ok(())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn stats(&self) -> SpillStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let segments = self.segments.read();
        SpillStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            writes: get(&c.writes),
            bytes_written: get(&c.bytes_written),
            tombstones: get(&c.tombstones),
            write_errors: get(&c.write_errors),
            skipped: get(&c.skipped),
            corrupt: get(&c.corrupt),
            reclaimed_segments: get(&c.reclaimed_segments),
            reclaimed_entries: get(&c.reclaimed_entries),
            reinserted: get(&c.reinserted),
            recovered: get(&c.recovered),
            dropped_segments: get(&c.dropped_segments),
            entries: get(&c.entries),
            segments: segments.len() as u64,
            disk_bytes: segments.values().map(|s| s.segment.len() as u64).sum(),
            sketch_restored: false,
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("segment_size", &self.segment_size)
            .field("max_segments", &self.max_segments)
            .finish_non_exhaustive()
    }
}

/// Threads to recover with: one per core, at most 8; one under loom, whose
/// models may not touch their objects from threads it does not run.
fn cores() -> usize {
    if cfg!(strata_loom) {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Turns a record's key bytes into the cache's hash (`None`: undecodable).
pub(crate) type Rehash<'a> = dyn Fn(Bytes) -> Option<u64> + Sync + 'a;

/// One record found by a scan.
#[derive(Clone, Copy)]
struct Item {
    hash: u64,
    offset: u32,
    len: u32,
    /// False for a tombstone or an expired record: it removes the key.
    live: bool,
}

struct Scanned {
    items: Vec<Item>,
    corrupt: u64,
}

/// Opens and scans the segment files at `paths` on up to one thread per
/// core (each segment is independent; the caller merges the results in
/// order). `None` for a file that cannot be opened.
/// A segment opened and scanned, or `None` if it could not be opened.
type Opened = Option<(Arc<Segment>, Scanned)>;

fn scan_all(paths: &[(u32, PathBuf)], rehash: &Rehash<'_>, now_ms: u64) -> Vec<Opened> {
    let one = |(id, path): &(u32, PathBuf)| {
        let seg = Arc::new(Segment::open(path, *id).ok()?);
        let scanned = scan(&seg, rehash, now_ms);
        Some((seg, scanned))
    };
    let threads = cores().min(paths.len());
    if threads <= 1 {
        return paths.iter().map(one).collect();
    }
    let mut results: Vec<Option<Opened>> = paths.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let one = &one;
        let mut handles = Vec::new();
        for first in 0..threads {
            let job = move || {
                paths
                    .iter()
                    .enumerate()
                    .skip(first)
                    .step_by(threads)
                    .map(|(i, path)| (i, one(path)))
                    .collect::<Vec<_>>()
            };
            // If no thread can be started, its share runs here.
            match std::thread::Builder::new().spawn_scoped(scope, job) {
                Ok(handle) => handles.push(handle),
                Err(_) => {
                    for (i, done) in job() {
                        results[i] = Some(done);
                    }
                }
            }
        }
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, result) in done {
                        results[i] = Some(result);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results
        .into_iter()
        .zip(paths)
        .map(|(done, path)| done.unwrap_or_else(|| one(path)))
        .collect()
}

/// The records of one segment, in file order, up to the first that
/// cannot be stepped over (a torn tail, a damaged header or the unwritten
/// end).
fn scan(seg: &Arc<Segment>, rehash: &Rehash<'_>, now_ms: u64) -> Scanned {
    let mut scanned = Scanned {
        items: Vec::new(),
        corrupt: 0,
    };
    let Some(whole) = seg.bytes(0, seg.len()) else {
        return scanned;
    };
    let bytes = &whole[..];
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < codec::HEADER_LEN || rest[..4] == [0; 4] {
            break; // the unwritten tail
        }
        let len = match codec::record_len(rest) {
            Ok(len) => len,
            Err(DecodeError::Truncated { .. }) => break, // a torn tail
            Err(_) => {
                // A damaged header: its length cannot be trusted, so
                // nothing after it can be found.
                scanned.corrupt += 1;
                break;
            }
        };
        let (Ok(item_offset), Ok(item_len)) = (u32::try_from(offset), u32::try_from(len)) else {
            break;
        };
        match codec::decode(rest) {
            Err(_) => scanned.corrupt += 1,
            Ok((record, _)) => match rehash(whole.slice_ref(record.key)) {
                None => scanned.corrupt += 1,
                Some(hash) => scanned.items.push(Item {
                    hash,
                    offset: item_offset,
                    len: item_len,
                    live: !record.tombstone && record.expires_at_ms.is_none_or(|at| at > now_ms),
                }),
            },
        }
        offset += len;
    }
    scanned
}

/// The directory's hasher seeds: read from its meta file, or made (and
/// written) if the file is missing or damaged.
fn read_or_create_meta(dir: &Path) -> Result<[u64; 4], SpillError> {
    let path = dir.join(META_FILE);
    if let Ok(bytes) = fs::read(&path) {
        if let Some(seeds) = parse_meta(&bytes) {
            return Ok(seeds);
        }
    }
    let mut seeds = [0u64; 4];
    let state = ahash::RandomState::new();
    for (i, seed) in seeds.iter_mut().enumerate() {
        *seed = state.hash_one((i, std::process::id(), std::time::SystemTime::now()));
    }
    let mut bytes = META_MAGIC.to_vec();
    for seed in seeds {
        bytes.extend_from_slice(&seed.to_le_bytes());
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    write_atomically(&path, &bytes)?;
    Ok(seeds)
}

fn parse_meta(bytes: &[u8]) -> Option<[u64; 4]> {
    if bytes.len() != 48 || &bytes[..8] != META_MAGIC {
        return None;
    }
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if xxhash_rust::xxh3::xxh3_64(&bytes[..40]) != word(40) {
        return None;
    }
    Some([word(8), word(16), word(24), word(32)])
}

/// Writes `path` through a temporary file and a rename, so that a crash
/// leaves the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SpillError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_error("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(io_error("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_error("rename", path))
}
