#!/usr/bin/env bash
# A long chaos soak: scripts/soak.sh [CYCLES] [SEED]. Prints each cycle and a final report
# (violations, panics, time to ready, sign-ins per cycle, RSS and FDs at start and end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export SOAK_CYCLES="${1:-500}"
[ -n "${2:-}" ] && export SOAK_SEED="$2"
cargo test --locked --test soak -- --nocapture
