//! Spill tier I/O figures that criterion cannot time well: cold reads
//! (page cache dropped before each round), writes, and restart (index
//! rebuild), each next to its raw baseline in the same round.
//!
//! ```text
//! cargo run --release -p strata-benches --features spill --bin spill_io [restart] [ROUNDS] [RESTART_ENTRIES]
//! ```
//!
//! With `restart`, only the restart is measured.
//!
//! Defaults: 5 rounds, 1,000,000 entries of 1 KiB for the restart.
//! Medians over the rounds are printed as a Markdown table.
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use strata_benches::spill::{
    disk_keys, drop_page_cache, fill, raw_values, spill_cache, touch, value, Scratch,
};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn gbps(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64() / 1e9
}

/// Cold reads: fill, drop the page cache, read every value once through
/// the spill tier; then drop it again and read the same bytes from fresh
/// plain maps.
fn cold_reads(size: usize, count: usize, rounds: usize) -> (f64, f64) {
    let (mut strata, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let scratch = Scratch::new("cold");
        let cache = fill(scratch.path(), size, count);
        let keys = disk_keys(&cache, count);
        drop_page_cache(scratch.path());
        let start = Instant::now();
        let mut sum = 0u64;
        for key in &keys {
            sum = sum.wrapping_add(touch(&cache.peek(key).expect("on disk")));
        }
        strata.push(gbps(keys.len() * size, start.elapsed()));
        drop(cache);
        drop_page_cache(scratch.path());
        let start = Instant::now();
        let values = raw_values(scratch.path());
        for v in values.iter() {
            sum = sum.wrapping_add(touch(v));
        }
        raw.push(gbps(values.len() * size, start.elapsed()));
        black_box(sum);
    }
    (median(strata), median(raw))
}

/// Writes: values pushed through a one-entry cache (each insert spills the
/// previous one), against `pwrite` appends of the same values to a file.
fn writes(size: usize, count: usize, rounds: usize) -> (f64, f64) {
    let (mut strata, mut raw) = (Vec::new(), Vec::new());
    let values: Vec<_> = (0..count as u64).map(|k| value(k, size)).collect();
    for _ in 0..rounds {
        let scratch = Scratch::new("write");
        let cache = spill_cache(
            scratch.path(),
            (size as u64 + 64) * count as u64 * 2 + (256 << 20),
        );
        let start = Instant::now();
        for (key, v) in values.iter().enumerate() {
            cache.insert(key as u64, v.clone()).expect("fits");
        }
        strata.push(gbps(count * size, start.elapsed()));
        drop(cache);
        let path = scratch.path().join("raw.dat");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("raw file");
        let start = Instant::now();
        let mut offset = 0;
        for v in &values {
            file.write_all_at(v, offset).expect("pwrite");
            offset += v.len() as u64;
        }
        raw.push(gbps(count * size, start.elapsed()));
    }
    (median(strata), median(raw))
}

/// Restart: a directory of `entries` 1 KiB entries, reopened `rounds`
/// times; entries indexed per second of `build()`.
fn restart(entries: usize, rounds: usize) -> (f64, f64) {
    let scratch = Scratch::new("restart");
    let budget = (entries as u64 * 1100 * 2).max(256 << 20);
    {
        let cache = spill_cache(scratch.path(), budget);
        let v = value(7, 1024);
        for key in 0..entries as u64 {
            cache.insert(key, v.clone()).expect("fits");
        }
        cache.persist().expect("persist");
    }
    let mut rates = Vec::new();
    let mut secs = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let cache = spill_cache(scratch.path(), budget);
        let took = start.elapsed();
        let recovered = cache.stats().spill.recovered;
        assert!(recovered as usize >= entries - 1, "recovered {recovered}");
        rates.push(recovered as f64 / took.as_secs_f64());
        secs.push(took.as_secs_f64());
    }
    (median(rates), median(secs))
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let only_restart = args.next_if_eq("restart").is_some();
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let entries: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("| measure | strata | raw baseline | ratio |");
    println!("|---|---|---|---|");
    let sizes: &[(&str, usize, usize)] = if only_restart {
        &[]
    } else {
        &[("4 KiB", 4 << 10, 16 << 10), ("1 MiB", 1 << 20, 64)]
    };
    for &(label, size, count) in sizes {
        let (s, r) = cold_reads(size, count, rounds);
        println!(
            "| cold read {label}, GB/s (raw: plain mmap) | {s:.2} | {r:.2} | {:.2} |",
            s / r
        );
    }
    for &(label, size, count) in sizes {
        let (s, r) = writes(size, count, rounds);
        println!(
            "| write {label}, GB/s (raw: pwrite append) | {s:.2} | {r:.2} | {:.2} |",
            s / r
        );
    }
    let (rate, secs) = restart(entries, rounds);
    println!(
        "| restart, {entries} entries of 1 KiB: entries/s (time) | {:.2} M/s ({secs:.3} s) | target 5 M/s | {:.2} |",
        rate / 1e6,
        rate / 5e6
    );
}
