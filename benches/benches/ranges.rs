//! Range reads from a 64 MiB object cached as 1 MiB chunks: random 256 KiB
//! ranges (seeded), as zero-copy parts (`read_range`), as one contiguous
//! buffer (`read_range` + `to_bytes`, which copies when a range spans two
//! chunks), and the upper bound: copying the same range out of one `Bytes`.
//!
//! ```text
//! cargo bench -p strata-benches --bench ranges
//! ```
#![forbid(unsafe_code)]
// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata::chunks::{ByteRange, ChunkStore};

const OBJECT: usize = 64 << 20;
const CHUNK: u32 = 1 << 20;
const RANGE: u64 = 256 << 10;

fn bench(c: &mut Criterion) {
    let data = Bytes::from((0..OBJECT).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let store: ChunkStore<u32> = ChunkStore::new(256 << 20, CHUNK).expect("store");
    store
        .put_object(1, "v1", data.clone())
        .expect("object fits");
    let mut rng = SmallRng::seed_from_u64(0x5EED);
    let starts: Vec<u64> = (0..4096)
        .map(|_| rng.random_range(0..OBJECT as u64 - RANGE))
        .collect();

    let mut group = c.benchmark_group("range_read/64MiB_object_1MiB_chunks/256KiB");
    group
        .throughput(Throughput::Bytes(RANGE))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut i = 0;
    let mut next_read = || {
        i = (i + 1) % starts.len();
        let start = starts[i];
        store
            .read_range(&1, ByteRange::FromTo(start, start + RANGE - 1))
            .expect("cached")
    };
    group.bench_function("strata_parts", |b| {
        b.iter(|| {
            let read = next_read();
            assert!(read.is_complete());
            black_box(read.parts)
        });
    });
    group.bench_function("strata_contiguous", |b| {
        b.iter(|| black_box(next_read().to_bytes().expect("complete")));
    });
    let mut i = 0;
    group.bench_function("copy_from_one_bytes", |b| {
        b.iter(|| {
            i = (i + 1) % starts.len();
            let start = starts[i] as usize;
            black_box(Bytes::copy_from_slice(&data[start..start + RANGE as usize]))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
