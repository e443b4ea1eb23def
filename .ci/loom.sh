#!/usr/bin/env bash
# loom models of the engine's concurrent protocols (loom-tests/), on the
# engine's real code: release build, its own target dir (RUSTFLAGS differ),
# preemptions bounded (LOOM_MAX_PREEMPTIONS, default 3: the models are small enough), then clippy over
# the same configuration. Prints each model's time.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg strata_loom"
export CARGO_TARGET_DIR=target/loom
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}
cargo clippy -p strata-loom --all-targets --locked -- -D warnings
cargo test -p strata-loom --release --locked --no-run
for model in shard single_flight expiry tags spill fails; do
    start=$SECONDS
    cargo test -p strata-loom --release --locked --test "$model" -- --test-threads=1
    echo "loom $model: $((SECONDS - start)) s (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
done
