#!/usr/bin/env bash
# Runs every benchmark and prints one Markdown table (measure, figure, floor or reference,
# ratio, goal, pass/short): notification throughput (criterion, benches/notifications.rs),
# detection, recovery against its round-trip floor, blips, idle footprint, binary size and the
# 200-daemon fleet herd. Takes about 15 minutes after the release build. Not part of CI (CI
# only runs `cargo bench --no-run`). Options go to scripts/bench.py (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bins --locked
python3 scripts/bench.py "$@"
