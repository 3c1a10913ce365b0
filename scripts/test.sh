#!/usr/bin/env bash
# Runs every check and test, the same way CI does: formatting, clippy, unit and integration
# tests (real Prosody instances, the simulator and the daemon as real processes), the Debian
# package check, and the demo as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Each integration test starts its own simulator (two Prosody processes) and often a daemon,
# on free ports; four at a time keeps a 2-core machine responsive.
# The chaos soak (tests/soak.rs) runs 25 cycles here with a fixed seed, so CI is repeatable;
# scripts/soak.sh runs long ones with fresh seeds.
# (Threads through RUST_TEST_THREADS: the criterion bench, run once here as a check, takes
# no libtest flags.)
SOAK_SEED="${SOAK_SEED:-20261122}" RUST_TEST_THREADS=4 cargo test --all-targets --locked
# The recovery scenarios and the login gate once more, with ejabberd serving the simulated
# nodes instead of Prosody (a second real XMPP server, with its own SASL, channel binding and
# pubsub), and SSO (tokens as ejabberd passwords, changed at each refresh).
FINESSE_TEST_XMPP_SERVER=ejabberd RUST_TEST_THREADS=4 cargo test --locked --test daemon_recovery --test login_gate --test sso --test fleet --test fleet_safety --test fleet_recovery --test hostile_xmpp --test network --test cluster
# The recovery scenarios over XMPP over WebSocket (RFC 7395) through the simulated node's HTTPS
# front end, with the same assertions, against Prosody and ejabberd (cluster mode's hosts too).
FINESSE_TEST_XMPP_TRANSPORT=websocket RUST_TEST_THREADS=4 cargo test --locked --test daemon_recovery --test websocket --test sso --test login_gate --test xmpp_hygiene --test hostile_xmpp --test cluster
FINESSE_TEST_XMPP_TRANSPORT=websocket FINESSE_TEST_XMPP_SERVER=ejabberd RUST_TEST_THREADS=4 cargo test --locked --test daemon_recovery
# The recovery scenarios and the network faults once more at 40 ms of round trip between the
# agent and the nodes (the simulator's network, as a home agent's VPN-less desktop sees
# Finesse), over TCP and over WebSocket: the same outcomes, no extra sign-in, no lost dialog.
FINESSE_TEST_RTT=40ms RUST_TEST_THREADS=4 cargo test --locked --test daemon_recovery --test network --test cluster
FINESSE_TEST_RTT=40ms FINESSE_TEST_XMPP_TRANSPORT=websocket RUST_TEST_THREADS=4 cargo test --locked --test daemon_recovery --test network
# The benches must keep compiling. The dev profile reuses the test build: the release profile
# (fat LTO) would add minutes of dependency builds; scripts/bench.sh builds it for real runs.
cargo bench --no-run --locked --profile dev
scripts/package.sh --profile dev
echo "demo smoke test:"
bash scripts/demo.sh
