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
//! counters can be smaller. A key's estimate is its counters' minimum plus
//! one if the doorkeeper holds it.
//!
//! Layout (ideas from Caffeine's `FrequencySketch`, Apache-2.0, and moka's
//! port of it; the code is ours): the counter table is an array of `u64`
//! words, sixteen 4-bit counters each, grouped into 64-byte blocks of eight
//! words. A key's four counters all live in one block, so an update touches
//! one cache line:
//!
//! ```text
//!  block = hash % blocks          one 64-byte block = 8 words x 16 counters
//!  +------+------+------+------+------+------+------+------+
//!  | w0   | w1   | w2   | w3   | w4   | w5   | w6   | w7   |
//!  +------+------+------+------+------+------+------+------+
//!     ^ counter i of the key: word (h >> 8i) & 7, nibble (h >> 8i+3) & 15
//! ```
//!
//! Updates are conservative (only the counters at the current minimum are
//! raised), which keeps over-estimates from collisions small.

/// Counters per expected entry: the table holds `entries * 8` 4-bit
/// counters (4 bytes per entry).
const WORDS_PER_ENTRY_SHIFT: u32 = 1; // words = next_pow2(entries) >> 1
/// Doorkeeper bits per expected entry.
const DOOR_BITS_PER_ENTRY: usize = 8;
/// The counter table never has fewer words than this (32 KiB), nor the
/// doorkeeper fewer than half as many: below that, small caches lose hit
/// ratio to collisions (LIRS glimpse at 250 entries gained 4-10 points).
const MIN_WORDS: usize = 4096;
/// Aging happens after this many additions per expected entry. Caffeine
/// halves after 10 x capacity *accesses*; here additions are the misses
/// plus the hits folded in lazily, and a longer memory measured better on
/// every Zipf row (e.g. +1.5 points at 1,000 entries, s = 1.0), with the
/// hill climber recovering recency-heavy traces.
const SAMPLE_FACTOR: u64 = 70;
/// Counters saturate here.
const MAX_COUNT: u64 = 15;
const RESET_MASK: u64 = 0x7777_7777_7777_7777;

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[u64]>,
    door: Box<[u64]>,
    /// Number of 8-word blocks minus one.
    block_mask: u64,
    door_mask: u64,
    additions: u64,
    sample_size: u64,
    entries: usize,
}

impl FrequencySketch {
    /// A sketch sized for about `entries` cached entries.
    pub(crate) fn new(entries: usize) -> Self {
        let entries = entries.clamp(16, 1 << 30).next_power_of_two();
        let words = (entries >> WORDS_PER_ENTRY_SHIFT).max(MIN_WORDS);
        let door_words = (entries * DOOR_BITS_PER_ENTRY / 64).max(MIN_WORDS / 2);
        Self {
            table: vec![0; words].into_boxed_slice(),
            door: vec![0; door_words].into_boxed_slice(),
            block_mask: (words / 8 - 1) as u64,
            door_mask: (door_words * 64 - 1) as u64,
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

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.table.len() + self.door.len()) * 8
    }

    /// Records one access of the key with this hash.
    pub(crate) fn increment(&mut self, hash: u64) {
        let h = spread(hash);
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.age();
        }
        if self.door_insert(h) {
            return;
        }
        let block = ((h & self.block_mask) * 8) as usize;
        let mut min = MAX_COUNT;
        let mut slots = [(0usize, 0u32); 4];
        let probe = h.rotate_right(32);
        for (i, slot) in slots.iter_mut().enumerate() {
            let bits = probe >> (i * 8);
            let word = block + (bits & 7) as usize;
            let shift = (((bits >> 3) & 15) * 4) as u32;
            *slot = (word, shift);
            min = min.min((self.table[word] >> shift) & 15);
        }
        if min == MAX_COUNT {
            return;
        }
        for (word, shift) in slots {
            if (self.table[word] >> shift) & 15 == min {
                self.table[word] += 1 << shift;
            }
        }
    }

    /// The estimated access count of the key with this hash (0..=16).
    pub(crate) fn frequency(&self, hash: u64) -> u64 {
        let h = spread(hash);
        let block = ((h & self.block_mask) * 8) as usize;
        let probe = h.rotate_right(32);
        let mut min = MAX_COUNT;
        for i in 0..4 {
            let bits = probe >> (i * 8);
            let word = block + (bits & 7) as usize;
            let shift = ((bits >> 3) & 15) * 4;
            min = min.min((self.table[word] >> shift) & 15);
        }
        min + u64::from(self.door_contains(h))
    }

    /// Halves every counter and empties the doorkeeper.
    pub(crate) fn age(&mut self) {
        for word in self.table.iter_mut() {
            *word = (*word >> 1) & RESET_MASK;
        }
        self.door.fill(0);
        self.additions /= 2;
    }

    fn door_bits(&self, h: u64) -> [(usize, u64); 2] {
        let a = (h >> 17) & self.door_mask;
        let b = h.rotate_left(23) & self.door_mask;
        [
            ((a / 64) as usize, 1 << (a % 64)),
            ((b / 64) as usize, 1 << (b % 64)),
        ]
    }

    fn door_contains(&self, h: u64) -> bool {
        self.door_bits(h)
            .iter()
            .all(|&(word, bit)| self.door[word] & bit != 0)
    }

    /// Puts the key into the doorkeeper; true if it was not there yet.
    fn door_insert(&mut self, h: u64) -> bool {
        let mut added = false;
        for (word, bit) in self.door_bits(h) {
            added |= self.door[word] & bit == 0;
            self.door[word] |= bit;
        }
        added
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
    fn sized_at_five_bytes_per_entry_above_a_floor() {
        let sketch = FrequencySketch::new(1 << 20);
        assert_eq!(sketch.heap_bytes(), (1 << 20) * 5);
        let small = FrequencySketch::new(100);
        assert_eq!(small.heap_bytes(), MIN_WORDS * 8 * 3 / 2);
    }
}
