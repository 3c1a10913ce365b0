#!/usr/bin/env bash
# The demo: installs what is missing (Prosody, with sudo if not root), builds, then runs
# finesse-sim (two nodes, each with a real Prosody) and finesse-taskd on config/demo.toml,
# injecting drift, an XMPP kill, a silent freeze, OUT_OF_SERVICE, failover to B, a double PG
# failure and a forced logout. Prints a timeline and ends with a state-equals-truth check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --bins --locked
exec python3 scripts/demo.py
