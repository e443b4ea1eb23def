//! Prints hit ratios (%) of strata and its peers, with exact LRU and
//! Belady's OPT as reference points, as markdown tables.
//!
//! Each cell is a single-threaded cache-aside replay: `get`, and on a miss
//! `insert`; every access counts. moka applies its pending tasks after each
//! insert so that it is judged at exactly its capacity.
//!
//! ```text
//! cargo run --release -p strata-benches --bin hit_ratio [-- --quick] [--runs N]
//! ```
//!
//! `--quick` keeps only the Zipf rows at capacities 1,000 and 10,000, plus
//! the traces. `--runs N` replays each engine N times and reports the mean
//! (every engine but foyer seeds its hasher randomly, which moves small rows
//! by a few tenths of a point from run to run). Traces are read from `$STRATA_TRACES` or `shared/traces`; a
//! missing file is reported and skipped.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use strata_benches::{
    arc_oltp, lirs_glimpse, lru_hits, opt_hits, traces_dir, zipf_keys, Accounting, Peer,
};

/// Seed of the Zipf streams (one stream per exponent).
const SEED: u64 = 0x5747_A7A0;
const ZIPF_KEYS: u64 = 1_000_000;
const ZIPF_ACCESSES: usize = 2_000_000;

/// Reads a recorded trace; `Ok(None)` when its file is absent.
type TraceReader = fn() -> io::Result<Option<Vec<u64>>>;

fn main() -> ExitCode {
    let mut quick = false;
    let mut runs = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.len()) {
            ("--quick", _) => quick = true,
            ("--runs", 1..) => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("--runs takes a positive whole number");
                    return ExitCode::FAILURE;
                }
            },
            (other, _) => {
                eprintln!("unknown argument {other:?}; usage: hit_ratio [--quick] [--runs N]");
                return ExitCode::FAILURE;
            }
        }
    }
    let started = Instant::now();
    println!("# Hit ratio (%)\n");
    println!(
        "Single-threaded cache-aside replay (get; on a miss, insert), every access counted; \
         each engine's cell is the mean of {runs} replay(s). \
         `leader` is the best of {}; `margin` is strata minus the best other engine, in points.\n",
        Peer::ENGINES.map(Peer::name).join(", ")
    );

    let zipf_capacities: &[u64] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    for s in [0.8, 0.9, 1.0] {
        let trace = zipf_keys(ZIPF_KEYS, s, ZIPF_ACCESSES, SEED);
        let title = format!(
            "Zipf s={s:.1}: {ZIPF_ACCESSES} accesses over {ZIPF_KEYS} keys, seed {SEED:#x}"
        );
        table(&title, &trace, zipf_capacities, runs);
    }

    let traces: [(&str, TraceReader, &[u64]); 2] = [
        (
            "ARC OLTP (arc-OLTP.lis.zst)",
            arc_oltp,
            &[250, 500, 1_000, 2_000, 10_000],
        ),
        (
            "LIRS glimpse (lirs-gli.trace.gz)",
            lirs_glimpse,
            &[250, 500, 1_000, 2_000],
        ),
    ];
    for (title, read, capacities) in traces {
        match read() {
            Ok(Some(trace)) => {
                let title = format!("{title}: {} accesses", trace.len());
                table(&title, &trace, capacities, runs);
            }
            Ok(None) => {
                println!(
                    "## {title}\n\nskipped: file not found in {}\n",
                    traces_dir().display()
                );
            }
            Err(e) => {
                eprintln!("{title}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!(
        "hit_ratio: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Hits of one engine replaying `trace` cache-aside with `capacity` entries.
fn replay(peer: Peer, trace: &[u64], capacity: u64) -> u64 {
    let cache = peer.build::<u64>(capacity, Accounting::Exact);
    let mut hits = 0;
    for &key in trace {
        if cache.get(key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
    }
    hits
}

/// Prints one markdown table: a row per capacity. Each engine's cell is the
/// mean over `runs` replays (hash seeds differ between replays).
fn table(title: &str, trace: &[u64], capacities: &[u64], runs: u64) {
    println!("## {title}\n");
    let engines = Peer::ENGINES.map(Peer::name).join(" | ");
    println!("| capacity | {engines} | LRU | OPT | leader | margin |");
    println!(
        "|---:|{}---:|---:|:---|---:|",
        "---:|".repeat(Peer::ENGINES.len())
    );
    // Converting counts to f64 for percentages is exact below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let percent = |hits: u64| 100.0 * hits as f64 / trace.len() as f64;
    for &capacity in capacities {
        let row_started = Instant::now();
        let hits = Peer::ENGINES.map(|peer| {
            (0..runs)
                .map(|_| replay(peer, trace, capacity))
                .sum::<u64>()
                / runs
        });
        let cap = usize::try_from(capacity).expect("capacity fits in usize");
        let (lru, opt) = (lru_hits(trace, cap), opt_hits(trace, cap));

        let best = hits.iter().copied().max().unwrap_or(0);
        let leaders: Vec<&str> = Peer::ENGINES
            .iter()
            .zip(&hits)
            .filter(|&(_, &h)| h == best)
            .map(|(peer, _)| peer.name())
            .collect();
        let strata = hits[0];
        let best_peer = hits[1..].iter().copied().max().unwrap_or(0);
        let margin = percent(strata) - percent(best_peer);

        let cells: Vec<String> = hits.iter().map(|&h| format!("{:.2}", percent(h))).collect();
        println!(
            "| {capacity} | {} | {:.2} | {:.2} | {} | {margin:+.2} |",
            cells.join(" | "),
            percent(lru),
            percent(opt),
            leaders.join(", "),
        );
        // Rows take seconds each; show them as they come.
        let _ = io::stdout().flush();
        eprintln!(
            "  {title}, capacity {capacity}: {:.1} s",
            row_started.elapsed().as_secs_f64()
        );
    }
    println!();
}
