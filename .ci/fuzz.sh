#!/usr/bin/env bash
# Fuzz smoke run: each cargo-fuzz target for a bounded time, without a
# sanitizer (`-s none` works on stable; see ../shared/FEASIBILITY.md).
# FUZZ_SECONDS per target (default 20). A crash fails the step and leaves
# its input under fuzz/artifacts/<target>/ to commit with the fix; the
# replay test (engine/tests/fuzz_replay) then keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    # Run on a scratch copy: the stored corpus changes only by hand.
    scratch=$(mktemp -d)
    cp -r "corpus/$target/." "$scratch/"
    echo "fuzz $target for ${seconds} s"
    log="$scratch.log"
    status=0
    cargo fuzz run -s none "$target" "$scratch" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)|panicked|ERROR|SUMMARY' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
    fi
    rm -rf "$scratch" "$log"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed; see fuzz/artifacts/$target/"
        exit 1
    fi
done
