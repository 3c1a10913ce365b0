#!/usr/bin/env bash
# Demo: starts finesse-sim (two Finesse nodes, each with its own real Prosody), signs the
# demo agent in over REST, routes a task, then injects failures and shows the simulator's
# truth after each one. The finesse-taskd daemon joins this demo once its core lands.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --bin finesse-sim
out=$(mktemp); err=$(mktemp)
./target/debug/finesse-sim --config config/sim.toml --spawn-prosody >"$out" 2>"$err" &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null; rm -f "$out" "$err"' EXIT
for _ in $(seq 1 600); do [ -s "$out" ] && break; sleep 0.1; done
[ -s "$out" ] || { cat "$err"; exit 1; }
info=$(head -n1 "$out")
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$info" "$1"; }
admin=$(field 'd["admin"]'); ca=$(field 'd["ca_file"]'); a=$(field 'd["nodes"][0]["rest"]'); b=$(field 'd["nodes"][1]["rest"]')
rest() { curl -s --cacert "$ca" -u 1001001:agent-1001001-secret -H 'content-type: application/xml' "$@"; echo; }
adm() { curl -s -H 'content-type: application/json' "$@"; echo; }
step() { printf '\n== %s\n' "$*"; }
media() { rest "$1/finesse/api/User/1001001/Media/5002"; }

step "simulator up: $info"
step "sign in on side A (maxDialogLimit 3, ACCEPT, CLOSE), then READY"
rest -X PUT -d '<Media><state>LOGIN</state><maxDialogLimit>3</maxDialogLimit><interruptAction>ACCEPT</interruptAction><dialogLogoutAction>CLOSE</dialogLogoutAction></Media>' "$a/finesse/api/User/1001001/Media/5002" -o /dev/null -w '%{http_code}'
rest -X PUT -d '<Media><state>READY</state></Media>' "$a/finesse/api/User/1001001/Media/5002" -o /dev/null -w '%{http_code}'
media "$a"
step "CCE routes a chat task to the agent"
adm -X POST -d '{"callVariables":{"callVariable1":"ticket-42"}}' "$admin/admin/agents/1001001/media/5002/offer"
step "fault: node A's XMPP server is killed, then restarted on the same ports"
adm -X POST "$admin/admin/nodes/A/prosody/kill"
adm -X POST "$admin/admin/nodes/A/prosody/restart"
step "fault: node A loses CTI (OUT_OF_SERVICE): REST answers 503"
adm -X PUT -d '{"out_of_service":true}' "$admin/admin/nodes/A/faults"
media "$a"
adm -X PUT -d '{"out_of_service":false}' "$admin/admin/nodes/A/faults"
step "side B knows nothing of the sign-in: WORK_NOT_READY with default settings"
media "$b"
step "settings drift on A, then a corrective sign-in: 'already logged in' is the expected answer"
adm -X POST -d '{"node":"A"}' "$admin/admin/agents/1001001/media/5002/drift"
media "$a"
adm -X PUT -d '{"arm_errors":"sync"}' "$admin/admin/behaviour" >/dev/null
rest -X PUT -d '<Media><state>LOGIN</state><maxDialogLimit>3</maxDialogLimit><interruptAction>ACCEPT</interruptAction><dialogLogoutAction>CLOSE</dialogLogoutAction></Media>' "$a/finesse/api/User/1001001/Media/5002"
media "$a"
step "double PG failure: the dialog set changes with no notification"
adm -X POST -d '{"add":1}' "$admin/admin/agents/1001001/media/5002/double-pg-failure"
rest "$a/finesse/api/User/1001001/Media/5002/Dialogs"
step "the simulator's truth"
adm "$admin/admin/truth/1001001"
step "done; stopping the simulator (its Prosody instances stop with it)"
