//! Throughput of strata and every peer, measured interleaved: all engines
//! live in one process and take turns, round after round, so that load
//! from a noisy neighbour lands on all of them alike. Prints, per workload,
//! each engine's median over the rounds (million ops/s) and strata's ratio
//! to each, as markdown.
//!
//! ```text
//! cargo run --release -p strata-benches --bin interleaved [-- ROUNDS [WORKLOAD [THREADS]]]
//! ```
//!
//! `WORKLOAD` (`mixed` or `hits`) and `THREADS` (`1` or `2`) narrow the run
//! to those rows.
//!
//! The workloads are those of the criterion `throughput` bench
//! (`benches/throughput.rs`): `mixed` is 90% `get` / 10% `insert` (every
//! tenth op) over Zipf(1.0) on 1,000,000 keys, capacity 100,000, warmed with
//! 1,000,000 cache-aside accesses; `hits` is `get` only over Zipf(1.0) on
//! 50,000 keys, all inserted first. 1 and 2 threads; values `u64` and
//! `Arc<u64>`, cloned out on every `get`. A turn is 2,000,000 ops per
//! thread. criterion runs engines one after another, which on this shared
//! machine skews ratios by tens of percent either way; this runner is the
//! one to read ratios from.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use strata_benches::{scramble, zipf_keys, Accounting, BenchCache, Peer};

const OPS_PER_TURN: usize = 2_000_000;
const CAPACITY: u64 = 100_000;

/// One engine's turn: every thread replays its stream; returns M ops/s.
fn turn<V: From<u64>>(cache: &dyn BenchCache<V>, streams: &[Vec<u64>], mixed: bool) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for stream in streams {
            scope.spawn(move || {
                let mask = stream.len() - 1;
                for op in 0..OPS_PER_TURN {
                    let key = stream[op & mask];
                    if mixed && op % 10 == 9 {
                        cache.insert(key, V::from(key));
                    } else {
                        black_box(cache.get(black_box(key)));
                    }
                }
            });
        }
    });
    // Op counts far below 2^53 convert exactly.
    #[allow(clippy::cast_precision_loss)]
    let ops = (OPS_PER_TURN * streams.len()) as f64;
    ops / started.elapsed().as_secs_f64() / 1e6
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// Medians (M ops/s) of every engine in `Peer::ALL` order.
fn measure<V>(mixed: bool, threads: usize, rounds: usize) -> Vec<f64>
where
    V: From<u64> + Clone + Send + Sync + 'static,
{
    let key_count = if mixed { 1_000_000 } else { 50_000 };
    let streams: Vec<Vec<u64>> = (0..threads as u64)
        .map(|t| zipf_keys(key_count, 1.0, 1 << 20, 0x1EAF ^ t))
        .collect();
    let caches: Vec<Box<dyn BenchCache<V>>> = Peer::ALL
        .iter()
        .map(|peer| peer.build::<V>(CAPACITY, Accounting::Lazy))
        .collect();
    for cache in &caches {
        if mixed {
            for &key in streams[0].iter().cycle().take(1_000_000) {
                if cache.get(key).is_none() {
                    cache.insert(key, V::from(key));
                }
            }
        } else {
            for rank in 1..=key_count {
                cache.insert(scramble(rank), V::from(scramble(rank)));
            }
        }
        cache.settle();
    }
    let mut runs = vec![Vec::new(); caches.len()];
    for _ in 0..rounds {
        for (cache, runs) in caches.iter().zip(runs.iter_mut()) {
            runs.push(turn(cache.as_ref(), &streams, mixed));
        }
    }
    runs.into_iter().map(median).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.first().and_then(|r| r.parse().ok()).unwrap_or(5);
    let only_workload = args.get(1).map(String::as_str);
    let only_threads: Option<usize> = args.get(2).and_then(|t| t.parse().ok());
    let names: Vec<&str> = Peer::ALL.iter().map(|p| p.name()).collect();
    for (workload, mixed) in [("mixed", true), ("hits", false)] {
        if only_workload.is_some_and(|w| w != workload) {
            continue;
        }
        println!("### {workload} (interleaved, median of {rounds} turns, M ops/s)\n");
        println!(
            "| threads | value | {} | strata / quick_cache | strata / moka |",
            names.join(" | ")
        );
        println!("|---|---|{}---:|---:|", "---:|".repeat(names.len()));
        for threads in [1, 2] {
            if only_threads.is_some_and(|t| t != threads) {
                continue;
            }
            for value in ["u64", "arc_u64"] {
                let medians = if value == "u64" {
                    measure::<u64>(mixed, threads, rounds)
                } else {
                    measure::<Arc<u64>>(mixed, threads, rounds)
                };
                let of =
                    |peer: Peer| medians[Peer::ALL.iter().position(|&p| p == peer).unwrap_or(0)];
                let cells: Vec<String> = medians.iter().map(|m| format!("{m:.1}")).collect();
                println!(
                    "| {threads} | {value} | {} | {:.2}x | {:.2}x |",
                    cells.join(" | "),
                    of(Peer::Strata) / of(Peer::QuickCache),
                    of(Peer::Strata) / of(Peer::Moka),
                );
            }
        }
        println!();
    }
}
