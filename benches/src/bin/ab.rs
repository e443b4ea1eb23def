//! Interleaved A/B throughput of strata against one peer, for a noisy
//! machine: both caches live in one process, and short rounds alternate
//! between them, so that a neighbour's load hits both alike. Prints the
//! median of each engine's rounds and their ratio.
//!
//! ```text
//! cargo run --release -p strata-benches --bin ab -- [mixed|hits] [threads] [peer] [rounds]
//! ```
//!
//! Workloads as in the criterion `throughput` bench (`benches/throughput.rs`):
//! `mixed` is 90% `get` / 10% `insert` over Zipf(1.0) on 1,000,000 keys with
//! capacity 100,000, warmed with 1,000,000 cache-aside accesses; `hits` is
//! `get` only over Zipf(1.0) on 50,000 keys, all inserted first. Values are
//! `u64`. The peer is `quick_cache` (default) or `moka`. A round is
//! 4,000,000 ops per thread.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use strata_benches::{scramble, zipf_keys, Accounting, BenchCache, Peer};

const OPS_PER_ROUND: usize = 4_000_000;

fn round(cache: &dyn BenchCache<u64>, streams: &[Vec<u64>], mixed: bool) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for stream in streams {
            scope.spawn(move || {
                let mask = stream.len() - 1;
                let mut sum = 0u64;
                for op in 0..OPS_PER_ROUND {
                    let key = stream[op & mask];
                    if mixed && op % 10 == 9 {
                        cache.insert(key, key);
                    } else if let Some(value) = cache.get(key) {
                        sum = sum.wrapping_add(value);
                    }
                }
                std::hint::black_box(sum);
            });
        }
    });
    // Millions of ops per second over all threads.
    #[allow(clippy::cast_precision_loss)]
    let ops = (OPS_PER_ROUND * streams.len()) as f64;
    ops / started.elapsed().as_secs_f64() / 1e6
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mixed = match args.first().map(String::as_str) {
        None | Some("mixed") => true,
        Some("hits") => false,
        Some(other) => {
            eprintln!("unknown workload {other:?}; use mixed or hits");
            return ExitCode::FAILURE;
        }
    };
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let peer = match args.get(2).map(String::as_str) {
        None | Some("quick_cache") => Peer::QuickCache,
        Some("moka") => Peer::Moka,
        Some(other) => {
            eprintln!("unknown peer {other:?}; use quick_cache or moka");
            return ExitCode::FAILURE;
        }
    };
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(7);
    let key_count = if mixed { 1_000_000 } else { 50_000 };
    let streams: Vec<Vec<u64>> = (0..threads as u64)
        .map(|t| zipf_keys(key_count, 1.0, 1 << 20, 0xAB ^ t))
        .collect();

    let caches = [Peer::Strata, peer].map(|p| p.build::<u64>(100_000, Accounting::Lazy));
    for cache in &caches {
        if mixed {
            for &key in streams[0].iter().cycle().take(1_000_000) {
                if cache.get(key).is_none() {
                    cache.insert(key, key);
                }
            }
        } else {
            for rank in 1..=key_count {
                cache.insert(scramble(rank), scramble(rank));
            }
        }
        cache.settle();
    }
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (cache, runs) in caches.iter().zip(runs.iter_mut()) {
            runs.push(round(cache.as_ref(), &streams, mixed));
        }
    }
    let [strata, other] = runs.map(median);
    println!(
        "{} t{threads}: strata {strata:.1} M ops/s, {} {other:.1} M ops/s, ratio {:.2}",
        if mixed { "mixed" } else { "hits" },
        peer.name(),
        strata / other
    );
    ExitCode::SUCCESS
}
