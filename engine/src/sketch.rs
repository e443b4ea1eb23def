//! TinyLFU's memory of how often keys were asked for.
//!
//! The idea (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient
//! Cache Admission Policy", ACM ToS 2017): keep an approximate access count
//! for every key seen recently, including keys no longer cached, and admit a
//! new entry only if it is asked for more often than the entry it would push
//! out. Counts are kept in a count-min sketch of 4-bit counters, halved every
//! `sample_size` additions so that old popularity fades ("aging").
//!
//! In front of the counters sits a *doorkeeper*: a Bloom filter that takes a
//! key's first access, so one-hit wonders never touch the counters and the
//! counters can be fewer. A key's estimate is its counters' minimum plus one
//! if the doorkeeper holds it.
//!
//! Layout (the one-cache-line block is an idea of Caffeine's
//! `FrequencySketch`, Apache-2.0; putting the doorkeeper in the same line is
//! ours, as is the code): the table is an array of 64-byte blocks of eight
//! `u64` words. Seven words hold sixteen 4-bit counters each; the eighth is
//! the block's share of the doorkeeper. A key's four counters and its two
//! doorkeeper bits all live in one block, so recording or estimating an
//! access touches one cache line:
//!
//! ```text
//!  block = hash % blocks
//!  +------+------+------+------+------+------+------+----------+
//!  | w0   | w1   | w2   | w3   | w4   | w5   | w6   | door     |
//!  +------+------+------+------+------+------+------+----------+
//!    counters of a key: 4 distinct words of w0..w6, a nibble in each
//!    doorkeeper: two bits of `door`, picked by a remix of h
//! ```
//!
//! Updates are conservative (only the counters below the new minimum are
//! raised), which keeps over-estimates from collisions small.

/// Blocks per expected entry: `next_pow2(entries) / 16` blocks of 64 bytes,
/// i.e. 4 bytes per entry: 7 counters and 4 doorkeeper bits each.
const ENTRIES_PER_BLOCK: usize = 16;
/// The table never has fewer blocks than this (32 KiB): below that, small
/// caches lose hit ratio to collisions (LIRS glimpse at 250 entries gained
/// 4 to 10 points).
const MIN_BLOCKS: usize = 512;
/// Aging happens after this many additions per expected entry. Caffeine
/// halves after 10 x capacity *accesses*; here additions are the misses
/// plus the hits folded in lazily, and a longer memory measured better on
/// every Zipf row (e.g. +1.5 points at 1,000 entries, s = 1.0), with the
/// hill climber recovering recency-heavy traces.
const SAMPLE_FACTOR: u64 = 70;
/// Counters saturate here.
const MAX_COUNT: u64 = 15;
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const COUNTER_WORDS: usize = 7;
const DOOR_WORD: usize = 7;

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[u64]>,
    block_mask: u64,
    additions: u64,
    sample_size: u64,
    entries: usize,
}

/// Where a key's counters and doorkeeper bits are.
struct Slots {
    counters: [(usize, u32); 4],
    door_word: usize,
    door_bits: u64,
}

impl FrequencySketch {
    /// A sketch sized for about `entries` cached entries.
    pub(crate) fn new(entries: usize) -> Self {
        let entries = entries.clamp(16, 1 << 30).next_power_of_two();
        let blocks = (entries / ENTRIES_PER_BLOCK).max(MIN_BLOCKS);
        Self {
            table: vec![0; blocks * 8].into_boxed_slice(),
            block_mask: (blocks - 1) as u64,
            additions: 0,
            sample_size: SAMPLE_FACTOR * entries as u64,
            entries,
        }
    }

    /// Grows the sketch (forgetting its counts) once the cache holds more
    /// entries than it was sized for. Never shrinks.
    pub(crate) fn ensure_capacity(&mut self, entries: usize) {
        if entries > self.entries && self.entries < 1 << 30 {
            *self = Self::new(entries);
        }
    }

    /// What a snapshot keeps: the sizing, the sample position and the
    /// counters.
    #[cfg(feature = "spill")]
    pub(crate) fn export(&self) -> (usize, u64, &[u64]) {
        (self.entries, self.additions, &self.table)
    }

    /// Restores a snapshot made by [`FrequencySketch::export`]; false (and
    /// no change) if it does not describe a sketch of a valid size.
    #[cfg(feature = "spill")]
    pub(crate) fn import(&mut self, entries: usize, additions: u64, table: &[u64]) -> bool {
        if !(16..=1 << 30).contains(&entries) || !entries.is_power_of_two() {
            return false;
        }
        let mut fresh = Self::new(entries);
        if fresh.table.len() != table.len() || fresh.entries != entries {
            return false;
        }
        fresh.table.copy_from_slice(table);
        fresh.additions = additions.min(fresh.sample_size);
        *self = fresh;
        true
    }

    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.len() * 8
    }

    fn slots(&self, hash: u64) -> Slots {
        let h = spread(hash);
        let base = ((h & self.block_mask) * 8) as usize;
        // Four distinct counter words of the block, from a start in 0..7,
        // and a nibble in each.
        let start = ((((h >> 32) & 0xff) * COUNTER_WORDS as u64) >> 8) as usize;
        let mut counters = [(0usize, 0u32); 4];
        for (i, slot) in counters.iter_mut().enumerate() {
            let mut word = start + i;
            if word >= COUNTER_WORDS {
                word -= COUNTER_WORDS;
            }
            let shift = (((h >> (40 + 4 * i)) & 15) * 4) as u32;
            *slot = (base + word, shift);
        }
        // Independent bits for the doorkeeper.
        let d = h.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Slots {
            counters,
            door_word: base + DOOR_WORD,
            door_bits: (1 << (d >> 58)) | (1 << ((d >> 52) & 63)),
        }
    }

    /// Records one access of the key with this hash; true if that aged
    /// the sketch (see [`FrequencySketch::increment_by`]).
    pub(crate) fn increment(&mut self, hash: u64) -> bool {
        self.increment_by(hash, 1)
    }

    /// Records `count` accesses of the key with this hash at once (the
    /// doorkeeper takes the first if it has not seen the key). Returns true
    /// if the sample period ended and the sketch aged first, so that the
    /// caller can age what it counts outside the sketch alike.
    pub(crate) fn increment_by(&mut self, hash: u64, count: u8) -> bool {
        let mut count = u64::from(count);
        self.additions += count;
        let aged = self.additions >= self.sample_size;
        if aged {
            self.age();
        }
        let slots = self.slots(hash);
        let door = &mut self.table[slots.door_word];
        if *door & slots.door_bits != slots.door_bits {
            *door |= slots.door_bits;
            count -= 1;
        }
        if count == 0 {
            return aged;
        }
        let min = self.min_count(&slots);
        // Conservative update: raise only the counters below the new
        // minimum, to it.
        let target = (min + count).min(MAX_COUNT);
        for (word, shift) in slots.counters {
            let current = (self.table[word] >> shift) & 15;
            if current < target {
                self.table[word] += (target - current) << shift;
            }
        }
        aged
    }

    /// The estimated access count of the key with this hash (0..=16).
    pub(crate) fn frequency(&self, hash: u64) -> u64 {
        let slots = self.slots(hash);
        let door = self.table[slots.door_word] & slots.door_bits == slots.door_bits;
        self.min_count(&slots) + u64::from(door)
    }

    fn min_count(&self, slots: &Slots) -> u64 {
        slots
            .counters
            .iter()
            .map(|&(word, shift)| (self.table[word] >> shift) & 15)
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter and empties the doorkeeper.
    pub(crate) fn age(&mut self) {
        for block in self.table.chunks_exact_mut(8) {
            for word in &mut block[..COUNTER_WORDS] {
                *word = (*word >> 1) & RESET_MASK;
            }
            block[DOOR_WORD] = 0;
        }
        self.additions /= 2;
    }
}

/// A second mix of the hash, so that the sketch's indices do not line up
/// with the hash table's or the shard selector's bits.
fn spread(hash: u64) -> u64 {
    let h = (hash ^ (hash >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> u64 {
        i.wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(17)
    }

    #[test]
    fn first_access_only_reaches_the_doorkeeper() {
        let mut sketch = FrequencySketch::new(1024);
        assert_eq!(sketch.frequency(hash(1)), 0);
        sketch.increment(hash(1));
        assert_eq!(sketch.frequency(hash(1)), 1);
        sketch.increment(hash(1));
        assert_eq!(sketch.frequency(hash(1)), 2);
    }

    #[test]
    fn increment_by_matches_repeated_increments() {
        let mut one = FrequencySketch::new(1024);
        let mut bulk = FrequencySketch::new(1024);
        for (key, n) in [(1u64, 1u8), (2, 3), (3, 9), (4, 40)] {
            for _ in 0..n {
                one.increment(hash(key));
            }
            bulk.increment_by(hash(key), n);
            assert_eq!(
                one.frequency(hash(key)),
                bulk.frequency(hash(key)),
                "key {key}"
            );
        }
        assert_eq!(one.additions, bulk.additions);
    }

    #[test]
    fn counts_saturate_at_fifteen_plus_the_doorkeeper() {
        let mut sketch = FrequencySketch::new(1024);
        for _ in 0..100 {
            sketch.increment(hash(7));
        }
        assert_eq!(sketch.frequency(hash(7)), 16);
    }

    #[test]
    fn hot_keys_outrank_cold_ones() {
        let mut sketch = FrequencySketch::new(4096);
        for round in 0..10 {
            for key in 0..50 {
                sketch.increment(hash(key));
            }
            for key in 0..400 {
                sketch.increment(hash(1000 + round * 400 + key));
            }
        }
        let hot: u64 = (0..50)
            .map(|k| sketch.frequency(hash(k)))
            .min()
            .unwrap_or(0);
        let cold: u64 = (0..4000)
            .map(|k| sketch.frequency(hash(1000 + k)))
            .max()
            .unwrap_or(0);
        assert!(hot > cold, "hot min {hot} vs cold max {cold}");
    }

    #[test]
    fn aging_halves_counts() {
        let mut sketch = FrequencySketch::new(16);
        for _ in 0..12 {
            sketch.increment(hash(3));
        }
        let before = sketch.frequency(hash(3));
        // Fill up the sample with other keys to trigger aging.
        let mut key = 100;
        while sketch.additions != 0 && sketch.additions < sketch.sample_size - 1 {
            sketch.increment(hash(key));
            key += 1;
        }
        sketch.increment(hash(key));
        let after = sketch.frequency(hash(3));
        assert!(after <= before / 2 + 1, "{before} -> {after}");
    }

    #[test]
    fn sized_at_four_bytes_per_entry_above_a_floor() {
        let sketch = FrequencySketch::new(1 << 20);
        assert_eq!(sketch.heap_bytes(), (1 << 20) * 4);
        let small = FrequencySketch::new(100);
        assert_eq!(small.heap_bytes(), MIN_BLOCKS * 64);
    }

    #[test]
    fn a_key_touches_one_block() {
        let sketch = FrequencySketch::new(1 << 12);
        for key in 0..1000 {
            let slots = sketch.slots(hash(key));
            let block = slots.door_word / 8;
            assert_eq!(slots.door_word % 8, DOOR_WORD);
            assert!(slots
                .counters
                .iter()
                .all(|&(w, _)| w / 8 == block && w % 8 < COUNTER_WORDS));
            assert_eq!(
                slots.door_bits.count_ones().clamp(1, 2),
                slots.door_bits.count_ones()
            );
        }
    }
}
