#!/usr/bin/env bash
# Runs every check and test, the same way CI does: formatting, clippy, then unit and
# integration tests against real Prosody instances and the simulator as a real process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Each integration test starts its own simulator and two Prosody processes on free ports;
# four at a time keeps a 2-core machine responsive.
cargo test --all-targets --locked -- --test-threads=4
