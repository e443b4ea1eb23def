//! Throughput of strata and its peers under concurrent, seeded Zipf loads.
//!
//! Groups are named `<workload>/t<threads>/<value>`, with one bench per
//! engine (`strata`, `moka`, `quick_cache`, `foyer_s3fifo`, `foyer_lfu`,
//! and `map`, a never-evicting sharded map that bounds what any cache could
//! reach):
//!
//! - `mixed`: 90% `get`, 10% `insert` (every 10th op, by op index) of keys
//!   drawn Zipf(1.0) over 1,000,000 keys, capacity 100,000. The cache is
//!   warmed cache-aside with 1,000,000 accesses of the same stream first.
//! - `hits`: only `get`s of keys drawn Zipf(1.0) over 50,000 keys, all of
//!   which were inserted beforehand into a cache of capacity 100,000.
//!
//! Threads ∈ {1, 2}; values are `u64` or `Arc<u64>`, cloned out on every
//! `get`. Each thread replays its own pre-generated stream of 2^20 keys
//! (wrapping around); the time of an iteration round is that of the slowest
//! thread, and throughput counts one op per thread per iteration.
//!
//! ```text
//! cargo bench -p strata-benches --bench throughput -- mixed/t1/u64
//! ```
#![forbid(unsafe_code)]
// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use strata_benches::{
    scramble, zipf_keys, Accounting, BenchCache, FoyerCache, FoyerEviction, MokaCache, QuickCache,
    ShardedMap, StrataCache,
};

/// Keys pre-generated per thread; op `i` uses key `i mod 2^20`.
const STREAM_LEN: usize = 1 << 20;
const CAPACITY: u64 = 100_000;
/// Accesses replayed cache-aside to fill the cache before a `mixed` bench.
const WARM_ACCESSES: usize = 1_000_000;
const MAX_THREADS: usize = 2;
const SEED: u64 = 0x7B_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Mixed,
    Hits,
}

impl Workload {
    const fn name(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::Hits => "hits",
        }
    }

    const fn key_count(self) -> u64 {
        match self {
            Self::Mixed => 1_000_000,
            Self::Hits => 50_000,
        }
    }

    /// One key stream per thread, seeded by workload and thread index.
    fn streams(self) -> Vec<Vec<u64>> {
        (0..MAX_THREADS as u64)
            .map(|t| {
                zipf_keys(
                    self.key_count(),
                    1.0,
                    STREAM_LEN,
                    SEED ^ (self.key_count() + t),
                )
            })
            .collect()
    }

    /// Fills `cache` as the workload expects it before timing starts.
    fn warm<V: From<u64>>(self, cache: &impl BenchCache<V>, stream: &[u64]) {
        match self {
            Self::Mixed => {
                for &key in stream.iter().cycle().take(WARM_ACCESSES) {
                    if cache.get(key).is_none() {
                        cache.insert(key, V::from(key));
                    }
                }
            }
            Self::Hits => {
                // zipf_keys draws ranks 1..=n and scrambles them.
                for rank in 1..=self.key_count() {
                    let key = scramble(rank);
                    cache.insert(key, V::from(key));
                }
            }
        }
        cache.settle();
    }
}

/// Runs `iters` ops of `workload` on `stream`, as one thread.
fn ops<V: From<u64>>(cache: &impl BenchCache<V>, workload: Workload, stream: &[u64], iters: u64) {
    let mask = stream.len() - 1;
    for op in 0..iters {
        // Truncation is harmless: only the low bits select the key.
        #[allow(clippy::cast_possible_truncation)]
        let key = stream[op as usize & mask];
        if workload == Workload::Mixed && op % 10 == 9 {
            cache.insert(key, V::from(key));
        } else {
            black_box(cache.get(black_box(key)));
        }
    }
}

/// Times `iters` ops on each of `streams.len()` threads started together;
/// returns the slowest thread's time.
fn timed<V: From<u64>>(
    cache: &impl BenchCache<V>,
    workload: Workload,
    streams: &[Vec<u64>],
    iters: u64,
) -> Duration {
    let start = Barrier::new(streams.len());
    thread::scope(|scope| {
        let workers: Vec<_> = streams
            .iter()
            .map(|stream| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    ops(cache, workload, stream, iters);
                    began.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn bench_one<V: From<u64>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    cache: &impl BenchCache<V>,
    workload: Workload,
    streams: &[Vec<u64>],
) {
    // criterion calls this closure only if the bench passes the CLI
    // filter, and then many times: warm up on the first call only.
    let mut warm = false;
    group.bench_function(cache.name(), |b| {
        if !warm {
            workload.warm(cache, &streams[0]);
            warm = true;
        }
        b.iter_custom(|iters| timed(cache, workload, streams, iters));
    });
}

fn group<V>(c: &mut Criterion, workload: Workload, streams: &[Vec<u64>], value: &str)
where
    V: Clone + Send + Sync + From<u64> + 'static,
{
    let threads = streams.len();
    let mut group = c.benchmark_group(format!("{}/t{threads}/{value}", workload.name()));
    group.throughput(Throughput::Elements(threads as u64));
    // Each engine is built, benched and dropped (end of statement) in turn.
    bench_one::<V>(&mut group, &StrataCache::new(CAPACITY), workload, streams);
    bench_one::<V>(
        &mut group,
        &MokaCache::new(CAPACITY, Accounting::Lazy),
        workload,
        streams,
    );
    bench_one::<V>(&mut group, &QuickCache::new(CAPACITY), workload, streams);
    bench_one::<V>(
        &mut group,
        &FoyerCache::new(CAPACITY, FoyerEviction::S3Fifo),
        workload,
        streams,
    );
    bench_one::<V>(
        &mut group,
        &FoyerCache::new(CAPACITY, FoyerEviction::Lfu),
        workload,
        streams,
    );
    bench_one::<V>(&mut group, &ShardedMap::new(CAPACITY), workload, streams);
    group.finish();
}

fn throughput(c: &mut Criterion) {
    for workload in [Workload::Mixed, Workload::Hits] {
        let streams = workload.streams();
        for threads in 1..=MAX_THREADS {
            group::<u64>(c, workload, &streams[..threads], "u64");
            group::<Arc<u64>>(c, workload, &streams[..threads], "arc_u64");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = throughput
}
criterion_main!(benches);
