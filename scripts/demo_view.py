"""Prints one line of the daemon's /v1/state or the simulator's truth for scripts/demo.sh."""
import json
import sys

kind = sys.argv[1]
doc = json.load(sys.stdin)
if kind == "daemon":
    m = doc["media"][0] if doc["media"] else {}
    dialogs = [d["id"] for d in doc["dialogs"]]
    print(f"  daemon: phase={doc['phase']} node={doc['node']} cause={doc['cause']} "
          f"xmpp={doc['links']['xmpp']} media={m.get('state')} limit={m.get('maxDialogLimit')} "
          f"dialogs={dialogs} counters={doc['counters']}")
elif kind == "truth":
    m = doc["media"][0]
    dialogs = [d["id"] for d in m["dialogs"]]
    print(f"  truth:  state={m['state']} loginNode={m['loginNode']} settings={m['settings']} dialogs={dialogs}")
elif kind == "signins":
    for r in doc["requests"]:
        if "LOGIN" in r["body"]:
            print(f"  node {r['node']}: HTTP {r['status']} {r['body']}")
elif kind == "field":
    print(eval(sys.argv[2], {"d": doc}))
