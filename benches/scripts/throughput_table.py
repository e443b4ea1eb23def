#!/usr/bin/env python3
"""Turns criterion's estimates for the `throughput` bench into markdown.

Reads target/criterion/<workload>_t<threads>_<value>/<engine>/new/estimates.json
(criterion writes them on every `cargo bench`), and prints one table per
workload: million ops/s per engine (median), and strata's ratio to each peer.

    python3 benches/scripts/throughput_table.py [target/criterion]
"""
import json
import pathlib
import sys

ENGINES = ["strata", "quick_cache", "moka", "foyer_s3fifo", "foyer_lfu", "map"]


def median_ns(path):
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    for workload in ["mixed", "hits"]:
        print(f"### {workload}\n")
        print("| threads | value | " + " | ".join(ENGINES) + " | strata / quick_cache | strata / moka | strata / map |")
        print("|---|---|" + "---:|" * (len(ENGINES) + 3))
        for threads in [1, 2]:
            for value in ["u64", "arc_u64"]:
                # criterion turns the "/" of group names into "_" on disk.
                group = root / f"{workload}_t{threads}_{value}"
                mops = {}
                for engine in ENGINES:
                    est = group / engine / "new" / "estimates.json"
                    if est.exists():
                        # One iteration = one op on each thread.
                        mops[engine] = threads * 1e3 / median_ns(est)
                if "strata" not in mops:
                    continue
                cells = [f"{mops[e]:.1f}" if e in mops else "n/a" for e in ENGINES]
                ratio = lambda peer: f"{mops['strata'] / mops[peer]:.2f}x" if peer in mops else "n/a"
                print(f"| {threads} | {value} | " + " | ".join(cells)
                      + f" | {ratio('quick_cache')} | {ratio('moka')} | {ratio('map')} |")
        print()


if __name__ == "__main__":
    main()
