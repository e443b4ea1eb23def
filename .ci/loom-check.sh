#!/usr/bin/env bash
# Keeps the engine ready for loom: every lock, atomic and Arc comes through
# `engine/src/sync.rs`, and the engine builds and lints with that shim
# switched to loom (`--cfg strata_loom`). Its own target dir keeps the
# RUSTFLAGS change from invalidating the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Library code only: each file up to its `mod tests`.
offenders=$(for file in engine/src/*.rs engine/src/*/*.rs; do
    [ -f "$file" ] && [ "$file" != engine/src/sync.rs ] || continue
    awk -v f="$file" '/^mod tests/ { exit } { print f ":" FNR ": " $0 }' "$file"
done | grep -E 'std::sync::|parking_lot::|loom::|std::thread::spawn|core::sync::' || true)
if [ -n "$offenders" ]; then
    echo "concurrency primitives must come from crate::sync:" >&2
    echo "$offenders" >&2
    exit 1
fi

export CARGO_TARGET_DIR=target/loom
RUSTFLAGS="--cfg strata_loom" cargo clippy -p strata --features spill --locked -- -D warnings
