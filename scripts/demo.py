"""The finesse-taskd demo: finesse-sim (two nodes, real Prosody) and the daemon, with failures
injected one after another. Prints a timeline of what the daemon did and how long each
recovery took, and ends by checking that the daemon's state equals the simulator's truth.
Run through scripts/demo.sh, which installs and builds what is needed."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simlib import ROOT, call  # noqa: E402

START = time.monotonic()


def say(text):
    print(f"  t+{time.monotonic() - START:6.1f}s  {text}", flush=True)


def wait(what, cond, limit=30.0):
    """Polls cond() every 50 ms; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            if cond():
                return time.monotonic() - t0
        except (OSError, KeyError, IndexError, TypeError):
            pass
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.05)


def listening(proc, log_path, limit=30.0):
    """The daemon's API address, from its 'local API listening' log line (text format)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        text = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path).read())
        m = re.search(r"local API listening addr=(\S+)", text)
        if m:
            return m[1]
        if proc.poll() is not None:
            raise SystemExit(f"demo: the daemon exited during start-up; see {log_path}")
        time.sleep(0.01)
    raise SystemExit(f"demo: the daemon's API did not come up; see {log_path}")


def main():
    work = tempfile.mkdtemp(prefix="taskd-demo-")
    sim = subprocess.Popen(
        [f"{ROOT}/target/debug/finesse-sim", "--config", f"{ROOT}/config/sim.toml", "--spawn-prosody"],
        stdout=subprocess.PIPE, stderr=open(f"{work}/sim.log", "w"), text=True)
    daemon = None
    try:
        info = json.loads(sim.stdout.readline())
        admin, (a, b) = info["admin"], [n["rest"] for n in info["nodes"]]
        with open(f"{work}/password", "w", opener=lambda p, f: os.open(p, f, 0o600)) as f:
            f.write("agent-1001001-secret\n")
        cfg = open(f"{ROOT}/config/demo.toml").read()
        for k, v in {"@API_LISTEN@": "127.0.0.1:0", "@NODE_A@": a, "@NODE_B@": b, "@CA@": info["ca_file"], "@PASSWORD_FILE@": f"{work}/password"}.items():
            cfg = cfg.replace(k, v)
        open(f"{work}/agent.toml", "w").write(cfg)
        daemon = subprocess.Popen([f"{ROOT}/target/debug/finesse-taskd", "--config", f"{work}/agent.toml"],
                                  stderr=open(f"{work}/daemon.log", "w"))
        api = f"http://{listening(daemon, f'{work}/daemon.log')}"
        state = lambda: call("GET", f"{api}/v1/state")[1]
        truth = lambda: call("GET", f"{admin}/admin/truth/1001001")[1]["media"][0]
        steady = lambda: state()["phase"] == "steady"
        counter = lambda name: state()["counters"][name]
        dialogs = lambda: sorted(d["id"] for d in state()["dialogs"])
        truth_dialogs = lambda: sorted(d["id"] for d in truth()["dialogs"])
        faults = lambda node, f: call("PUT", f"{admin}/admin/nodes/{node}/faults", f)
        prosody = lambda node, op: call("POST", f"{admin}/admin/nodes/{node}/prosody/{op}")

        print(f"finesse-sim: admin {admin}, node A {a}, node B {b}")
        print("timeline (recovery times measured from the moment the fault cleared or was injected):")
        took = wait("first steady", steady)
        say(f"cold start: signed in on A, READY, dialogs listed in {took * 1000:.0f} ms")
        call("POST", f"{admin}/admin/agents/1001001/media/5002/offer", {"callVariables": {"callVariable1": "ticket-42"}})
        wait("offered dialog", lambda: len(dialogs()) == 1)
        say(f"task routed: daemon holds {dialogs()}")

        n = counter("drift_corrections")
        call("POST", f"{admin}/admin/agents/1001001/media/5002/drift", {"node": "A", "notify": True})
        took = wait("drift corrected", lambda: counter("drift_corrections") > n and steady())
        say(f"settings drift on A: one corrective sign-in ('already logged in' expected), steady in {took * 1000:.0f} ms")

        r = counter("reconnects")
        prosody("A", "kill")
        wait("xmpp down", lambda: state()["links"]["xmpp"] == "down")
        say("XMPP server of A killed: link.down (xmpp_lost)")
        time.sleep(2)
        prosody("A", "start")
        took = wait("reconnected", lambda: counter("reconnects") > r and steady() and state()["links"]["xmpp"] == "up")
        say(f"XMPP server back: reconnected, re-subscribed, resynced in {took * 1000:.0f} ms")

        prosody("A", "freeze")
        took = wait("dead link detected", lambda: state()["links"]["xmpp"] == "down")
        say(f"XMPP server of A frozen (silent dead link): detected by ping in {took * 1000:.0f} ms (ping 2 s + timeout 2 s)")
        prosody("A", "thaw")
        took = wait("steady after thaw", lambda: steady() and state()["links"]["xmpp"] == "up")
        say(f"thawed: steady again in {took * 1000:.0f} ms")

        s = counter("resyncs")
        faults("A", {"out_of_service": True})
        wait("out of service seen", lambda: state()["cause"] == "out_of_service")
        say("A OUT_OF_SERVICE (CTI lost): session kept, waiting")
        time.sleep(1)
        faults("A", {"out_of_service": False})
        took = wait("resynced", lambda: counter("resyncs") > s and steady())
        say(f"A IN_SERVICE: resynced without a sign-in in {took * 1000:.0f} ms")

        faults("A", {"rest": "refused"})
        prosody("A", "kill")
        took = wait("steady on B", lambda: steady() and state()["node"] == b)
        say(f"node A dead (REST refused, XMPP killed): failed over to B, one sign-in there, steady in {took * 1000:.0f} ms (failover_after 5 s)")

        call("POST", f"{admin}/admin/agents/1001001/media/5002/double-pg-failure", {"add": 1})
        say(f"double PG failure: truth now {truth_dialogs()}, daemon still {dialogs()} (no notification)")
        faults("B", {"out_of_service": True})
        wait("out of service seen", lambda: state()["cause"] == "out_of_service")
        faults("B", {"out_of_service": False})
        took = wait("dialogs equal truth", lambda: steady() and dialogs() == truth_dialogs())
        say(f"resync after a short outage: daemon dialogs {dialogs()} equal the truth in {took * 1000:.0f} ms")

        call("POST", f"{admin}/admin/agents/1001001/forced-logout", {})
        took = wait("signed in again", lambda: truth()["loginNode"] == "B" and truth()["base"] == "READY" and steady())
        say(f"forced logout (reason 255): signed in again and READY in {took * 1000:.0f} ms")

        ok = wait("final agreement", lambda: dialogs() == truth_dialogs() and state()["media"][0]["state"] == truth()["state"], 10)
        st, tr = state(), truth()
        print(f"final check: daemon {st['media'][0]['state']} {dialogs()} on {st['node']} == truth {tr['state']} {truth_dialogs()} on {tr['loginNode']}: OK")
        print(f"counters: {st['counters']}")
        del ok
    finally:
        for p in (daemon, sim):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"demo finished in {time.monotonic() - START:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
