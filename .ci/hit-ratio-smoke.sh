#!/usr/bin/env bash
# A short hit-ratio replay (small Zipf rows and the recorded traces) so that
# a broken policy shows up in CI, not only in benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -p strata-benches --bin hit_ratio -- --quick
