//! The admission state saved with the segments on a clean shutdown: each
//! shard's frequency sketch and window size, so that a restarted cache
//! admits like the one before it.
//!
//! ```text
//! "STRASTAT" | version u32 | shards u32 | hasher fingerprint 4 × u64
//! per shard: capacity | window | sketch entries | additions | words n | n × u64
//! XXH3-64 of everything before
//! ```
//!
//! All numbers little-endian u64 unless marked. The sketch indexes by key
//! hash, so the state is only meaningful to a cache whose hasher gives the
//! same hashes: the fingerprint (the hashes of four fixed probes) checks
//! that, and a mismatch (or any damage) means the state is ignored.

use xxhash_rust::xxh3::xxh3_64;

pub(crate) const STATE_FILE: &str = "strata.state";
const MAGIC: &[u8; 8] = b"STRASTAT";
const VERSION: u32 = 1;
/// No sketch is larger than 2^30 entries / 8 per word... in words:
const MAX_WORDS: u64 = 1 << 28;

/// One shard's saved state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ShardState {
    pub(crate) capacity: u64,
    pub(crate) window: u64,
    pub(crate) entries: u64,
    pub(crate) additions: u64,
    pub(crate) table: Vec<u64>,
}

pub(crate) fn encode(fingerprint: [u64; 4], shards: &[ShardState]) -> Vec<u8> {
    let words: usize = shards.iter().map(|s| 5 + s.table.len()).sum();
    let mut out = Vec::with_capacity(16 + 32 + words * 8 + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(shards.len() as u32).to_le_bytes());
    for word in fingerprint {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for shard in shards {
        for word in [
            shard.capacity,
            shard.window,
            shard.entries,
            shard.additions,
            shard.table.len() as u64,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for word in &shard.table {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    let checksum = xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// The shard states in `bytes`, if intact and made with `fingerprint` for
/// `shards` shards.
pub(crate) fn decode(
    bytes: &[u8],
    fingerprint: [u64; 4],
    shards: usize,
) -> Option<Vec<ShardState>> {
    let (body, checksum) = bytes.split_last_chunk::<8>()?;
    if xxh3_64(body) != u64::from_le_bytes(*checksum) {
        return None;
    }
    let mut reader = Reader { rest: body };
    if reader.take(8)? != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
    let count = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
    if version != VERSION || count as usize != shards {
        return None;
    }
    for word in fingerprint {
        if reader.u64()? != word {
            return None;
        }
    }
    let mut states = Vec::with_capacity(shards.min(1 << 16));
    for _ in 0..shards {
        let (capacity, window, entries, additions, words) = (
            reader.u64()?,
            reader.u64()?,
            reader.u64()?,
            reader.u64()?,
            reader.u64()?,
        );
        if words > MAX_WORDS || words.saturating_mul(8) > reader.rest.len() as u64 {
            return None;
        }
        let table = (0..words)
            .map(|_| reader.u64())
            .collect::<Option<Vec<_>>>()?;
        states.push(ShardState {
            capacity,
            window,
            entries,
            additions,
            table,
        });
    }
    reader.rest.is_empty().then_some(states)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_le_bytes(*head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ShardState> {
        (0..3)
            .map(|i| ShardState {
                capacity: 100 + i,
                window: 1 + i,
                entries: 128,
                additions: 7 * i,
                table: (0..16).map(|w| w * i).collect(),
            })
            .collect()
    }

    #[test]
    fn round_trips_and_checks_what_it_must() {
        let fp = [1, 2, 3, 4];
        let bytes = encode(fp, &sample());
        assert_eq!(decode(&bytes, fp, 3), Some(sample()));
        assert_eq!(decode(&bytes, [1, 2, 3, 5], 3), None, "another hasher");
        assert_eq!(decode(&bytes, fp, 4), None, "another shard count");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], fp, 3), None);
        }
        let mut flipped = bytes.clone();
        flipped[60] ^= 4;
        assert_eq!(decode(&flipped, fp, 3), None);
    }
}
