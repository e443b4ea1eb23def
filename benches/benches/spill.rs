//! Warm reads from the spill tier against a raw read of the same bytes
//! from a plain memory map of the same segment files, same run: 4 KiB and
//! 1 MiB values, 64 MiB of each, all pages resident. Each read hands the
//! value's bytes to the same consumer (a wrapping sum of its words), so
//! both sides touch every byte.
//!
//! ```text
//! cargo bench -p strata-benches --features spill --bench spill
//! ```
//!
//! Cold reads, writes and restart are measured by the `spill_io` binary.
#![deny(unsafe_code)]
// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_benches::spill::{disk_keys, fill, raw_values, touch, Scratch};

fn bench(c: &mut Criterion) {
    for (label, size, count) in [("4KiB", 4 << 10, 16 << 10), ("1MiB", 1 << 20, 64)] {
        let scratch = Scratch::new("bench");
        let cache = fill(scratch.path(), size, count);
        let raw = raw_values(scratch.path());
        assert_eq!(raw.len(), count - 1, "all but one value on disk");
        let keys = disk_keys(&cache, count);
        // Fault every page in on both sides before timing.
        for key in &keys {
            black_box(touch(&cache.peek(key).expect("on disk")));
        }
        for value in raw.iter() {
            black_box(touch(value));
        }
        let mut group = c.benchmark_group(format!("spill_read_warm/{label}"));
        group
            .throughput(Throughput::Bytes(size as u64))
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let mut i = 0;
        group.bench_function("strata_spill", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let value = cache.peek(&keys[i]).expect("on disk");
                black_box(touch(&value))
            });
        });
        let mut i = 0;
        group.bench_function("raw_mmap", |b| {
            b.iter(|| {
                i = (i + 1) % raw.len();
                black_box(touch(raw.get(i)))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
