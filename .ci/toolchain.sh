#!/usr/bin/env bash
# Makes sure rustfmt and clippy are there (a bare toolchain may lack them).
set -euo pipefail
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
cargo --version
rustc --version
