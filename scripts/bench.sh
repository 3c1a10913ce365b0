#!/usr/bin/env bash
# Runs the benchmarks and prints one Markdown table (plus criterion's notification figures).
# Not part of CI (CI only checks that the benches compile).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bins --locked
cargo bench --locked --bench notifications -- --noplot 2>&1 | grep -E "notification throughput|time:|thrpt:" || true
python3 scripts/bench.py "$@"
