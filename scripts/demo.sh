#!/usr/bin/env bash
# Demo: finesse-sim (two Finesse nodes, each with its own real Prosody) plus finesse-taskd for
# agent 1001001. Failures are injected one by one; after each, the daemon's /v1/state and the
# simulator's truth are shown side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --bins
work=$(mktemp -d)
sim_pid=""; daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

./target/debug/finesse-sim --config config/sim.toml --spawn-prosody >"$work/sim.json" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 600); do [ -s "$work/sim.json" ] && break; sleep 0.1; done
[ -s "$work/sim.json" ] || { cat "$work/sim.log"; exit 1; }
info=$(head -n1 "$work/sim.json")
field() { echo "$info" | python3 scripts/demo_view.py field "$1"; }
admin=$(field 'd["admin"]'); ca=$(field 'd["ca_file"]')
node_a=$(field 'd["nodes"][0]["rest"]'); node_b=$(field 'd["nodes"][1]["rest"]')

umask 077
echo "agent-1001001-secret" >"$work/password"
sed -e "s|@NODE_A@|$node_a|; s|@NODE_B@|$node_b|; s|@CA@|$ca|; s|@PASSWORD_FILE@|$work/password|" \
  config/demo.toml >"$work/agent.toml"
./target/debug/finesse-taskd --config "$work/agent.toml" 2>"$work/daemon.log" &
daemon_pid=$!
api="http://127.0.0.1:9471"

adm() { curl -s -H 'content-type: application/json' "$@"; echo; }
state() {
  curl -s "$api/v1/state" | python3 scripts/demo_view.py daemon
  curl -s "$admin/admin/truth/1001001" | python3 scripts/demo_view.py truth
}
wait_steady() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$api/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "  (not steady after 30 s)"
}
step() { printf '\n== %s\n' "$*"; }

step "simulator up: $info"
step "daemon starts: SystemInfo, XMPP, subscriptions, sign-in, READY"
wait_steady; state
step "CCE routes a chat task"
adm -X POST -d '{"callVariables":{"callVariable1":"ticket-42"}}' "$admin/admin/agents/1001001/media/5002/offer" >/dev/null
sleep 0.5; state
step "fault: node A's XMPP server is killed, and back 3 s later"
adm -X POST "$admin/admin/nodes/A/prosody/kill" >/dev/null; sleep 1; state
sleep 2; adm -X POST "$admin/admin/nodes/A/prosody/start" >/dev/null
wait_steady; state
step "fault: node A loses CTI (OUT_OF_SERVICE) for 2 s"
adm -X PUT -d '{"out_of_service":true}' "$admin/admin/nodes/A/faults" >/dev/null; sleep 1; state
sleep 1; adm -X PUT -d '{"out_of_service":false}' "$admin/admin/nodes/A/faults" >/dev/null
wait_steady; state
step "fault: settings drift on A (maxDialogLimit reset); one corrective sign-in, 'already logged in' expected"
adm -X POST -d '{"node":"A","notify":true}' "$admin/admin/agents/1001001/media/5002/drift" >/dev/null
sleep 1; wait_steady; state
step "fault: double PG failure (dialogs change silently), then a short OUT_OF_SERVICE forces a resync"
adm -X POST -d '{"add":1}' "$admin/admin/agents/1001001/media/5002/double-pg-failure" >/dev/null
adm -X PUT -d '{"out_of_service":true}' "$admin/admin/nodes/A/faults" >/dev/null; sleep 1
adm -X PUT -d '{"out_of_service":false}' "$admin/admin/nodes/A/faults" >/dev/null
wait_steady; state
step "fault: node A dies (REST refused, XMPP killed): failover to B, one sign-in there"
adm -X PUT -d '{"rest":"refused"}' "$admin/admin/nodes/A/faults" >/dev/null
adm -X POST "$admin/admin/nodes/A/prosody/kill" >/dev/null
sleep 7; wait_steady; state
step "sign-ins the simulator received, per node"
curl -s "$admin/admin/requests" | python3 scripts/demo_view.py signins
step "done: stopping the daemon (SIGTERM) and the simulator"
