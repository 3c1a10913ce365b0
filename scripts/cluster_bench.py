"""Cluster benchmark: N agents (2,000 by default) over 3 `finesse-taskd fleet` processes in
cluster mode, a 3-member etcd on loopback and one simulator
(Finesse's 60 s forced logout on), release build.
1. kill -9 of one host: the time until every one of its agents is steady on a survivor,
   against lease_ttl + moved / max_logins_per_second + 10 s and the 60 s forced logout; the
   overlap (an agent steady on two hosts at one look; goal 0), sign-ins and forced logouts.
2. a host that joins (the killed one, started again): agents moved to it against N / members.
3. a planned stop (SIGTERM) of another host: each moved agent's routing gap (from its close
   on the stopping host to steady on its new owner: p50, p99, max) and forced logouts.
Usage: python3 scripts/cluster_bench.py [--n 2000] [--ttl 10] [--logins 50]"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_bench  # noqa: E402
from fleet_bench import FIRST, Fleet, RangeSim  # noqa: E402
from simlib import ROOT, call, machine, table, ts, wait, workdir  # noqa: E402

PREFIX = "/finesse-taskd/bench/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """Three etcd members on loopback (plain http: the benchmark measures ownership, not TLS)."""

    def __init__(self, work):
        if not shutil.which("etcd"):
            raise SystemExit("bench: etcd is not installed (scripts/install-deps.sh installs etcd-server)")
        self.members = [(f"e{i}", free_port(), free_port()) for i in range(3)]
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, _, p in self.members)
        self.procs = []
        for name, client, peer in self.members:
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", name, "--data-dir", f"{work}/etcd-{name}",
                 f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
                 f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                 f"--initial-cluster={cluster}", "--initial-cluster-state=new",
                 "--heartbeat-interval", "100", "--election-timeout", "1000"],
                stdout=subprocess.DEVNULL, stderr=open(f"{work}/etcd-{name}.log", "w")))
        self.endpoints = [f"http://127.0.0.1:{c}" for _, c, _ in self.members]
        wait(self._healthy, limit=30, step=0.2, what="etcd")

    def _healthy(self):
        return all(call("GET", f"{e}/health")[0] == 200 for e in self.endpoints)

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def host(bins, work, sim, etcd, n, k, ttl):
    extra = (f'[cluster]\nendpoints = {json.dumps(etcd.endpoints)}\nprefix = "{PREFIX}"\n'
             f'member = "host-{k}"\nlease_ttl = "{ttl}s"\n')
    f = Fleet(bins, work, sim, n, name=f"host-{k}", extra=extra)
    return f


def placement(hosts):
    """agent -> [(host index, phase)] over the hosts that answer."""
    out = {}
    for k, h in hosts.items():
        try:
            agents = call("GET", f"{h.api}/v1/agents")[1]["agents"]
        except OSError:
            continue
        for a in agents:
            out.setdefault(a["id"], []).append((k, a["phase"]))
    return out


def steady_once(p):
    return {a for a, on in p.items() if len(on) == 1 and on[0][1] == "steady"}


def overlaps(p):
    return sum(1 for on in p.values() if sum(1 for _, ph in on if ph == "steady") > 1)


def signed_out(sim, ids):
    truth = sim.call("GET", "/admin/truth")[1]
    agents = truth["agents"] if isinstance(truth, dict) and "agents" in truth else truth
    out = 0
    for a in agents:
        if a.get("id") in ids and any(m.get("state") == "LOGOUT" for m in a.get("media", [])):
            out += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--ttl", type=int, default=10)
    ap.add_argument("--logins", type=float, default=50.0)
    ap.add_argument("--bins", default=f"{ROOT}/target/release")
    a = ap.parse_args()
    fleet_bench.LOGINS = a.logins
    n, ttl = a.n, a.ttl
    work = workdir()
    sim = RangeSim(a.bins, work, n)
    sim.call("PUT", "/admin/behaviour", {"forced_logout_after_ms": 60000})
    etcd = Etcd(work)
    hosts = {}
    rows = []
    try:
        for k in range(3):
            hosts[k] = host(a.bins, work, sim, etcd, n, k, ttl)
        # Steady, each agent on one host, hand-overs done (no change for 5 s).
        last, stable_since = None, time.monotonic()
        def settled():
            nonlocal last, stable_since
            p = placement(hosts)
            now = {a: on[0][0] for a, on in p.items() if len(on) == 1 and on[0][1] == "steady"}
            if now != last:
                last, stable_since = now, time.monotonic()
            return len(now) == n and time.monotonic() - stable_since > 5
        wait(settled, limit=120 + 3 * n / a.logins, step=0.5, what="the cluster settled")
        victim = 1
        moved = {ag for ag, k in last.items() if k == victim}
        since = sim.call("GET", "/admin/requests")[1]["requests"][-1]["seq"]
        t_kill = time.monotonic()
        hosts[victim].proc.send_signal(signal.SIGKILL)
        hosts[victim].proc.wait()
        dead = hosts.pop(victim)
        worst = 0
        def taken():
            nonlocal worst
            p = placement(hosts)
            worst = max(worst, overlaps(p))
            return moved <= steady_once(p)
        took = wait(taken, limit=120, step=0.25, what="the dead host's agents steady on the survivors")
        reqs = sim.call("GET", f"/admin/requests?since={since}")[1]["requests"]
        sign_ins = sum(1 for r in reqs if r["method"] == "PUT" and "<state>LOGIN</state>" in r.get("body", ""))
        logouts = signed_out(sim, moved)
        goal = ttl + len(moved) / a.logins / 2 + 10
        rows.append((f"cluster: kill -9 of one host of 3, {n} agents: its {len(moved)} agents steady on the 2 survivors",
                     f"{took:.1f} s after the kill",
                     f"lease_ttl {ttl} s + {len(moved)} moved / (2 survivors x {a.logins:.0f} logins/s) + 10 s = {goal:.1f} s; < 60 s forced logout",
                     f"{took / goal:.2f}", "<= goal and < 60 s", "pass" if took <= goal and took < 60 else "short"))
        rows.append((f"cluster: after the kill, agents steady on two hosts at one look; sign-ins; forced logouts",
                     f"overlap {worst}, sign-ins {sign_ins}, forced logouts {logouts}",
                     "0, 0, 0", "-", "all 0", "pass" if worst == 0 and sign_ins == 0 and logouts == 0 else "short"))
        # The killed host comes back: a join.
        before = dict(last)
        hosts[victim] = host(a.bins, work, sim, etcd, n, victim, ttl)
        last, stable_since = None, time.monotonic()
        wait(settled, limit=120 + 3 * n / a.logins, step=0.5, what="the cluster settled after the join")
        to_new = sum(1 for ag, k in last.items() if k == victim)
        changed = sum(1 for ag, k in last.items() if before.get(ag) != k and before.get(ag) != victim)
        rows.append((f"cluster: a host joins 2 (the killed one, back): agents moved to it",
                     f"{to_new} moved to it, {changed} moved between the others",
                     f"N / members = {n / 3:.0f}", f"{to_new / (n / 3):.2f}", "about N / members, none elsewhere",
                     "pass" if changed == 0 and abs(to_new - n / 3) < n / 10 else "short"))
        # A planned stop of host-0: each moved agent's gap.
        leaving = 0
        moving = {ag for ag, k in last.items() if k == leaving}
        since = sim.call("GET", "/admin/requests")[1]["requests"][-1]["seq"]
        t_stop = time.time()
        hosts[leaving].proc.send_signal(signal.SIGTERM)
        hosts[leaving].proc.wait(timeout=60)
        stopped = hosts.pop(leaving)
        wait(lambda: moving <= steady_once(placement(hosts)), limit=120, step=0.25, what="the stopped host's agents steady elsewhere")
        closed = {}
        for e in stopped.lines():
            f = e.get("fields", {})
            if f.get("message", "").startswith("agent stopped here") and f.get("agent") in moving:
                closed[f["agent"]] = ts(e["timestamp"])
        up = {}
        for h in hosts.values():
            for e in h.lines():
                f = e.get("fields", {})
                span = e.get("span", {}).get("id")
                if f.get("message") == "phase" and f.get("phase") == "Steady" and span in moving and ts(e["timestamp"]) >= t_stop:
                    up.setdefault(span, ts(e["timestamp"]))
        gaps = sorted(up[ag] - closed[ag] for ag in moving if ag in up and ag in closed)
        reqs = sim.call("GET", f"/admin/requests?since={since}")[1]["requests"]
        sign_ins = sum(1 for r in reqs if r["method"] == "PUT" and "<state>LOGIN</state>" in r.get("body", ""))
        logouts = signed_out(sim, moving)
        p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
        rows.append((f"cluster: planned stop (SIGTERM) of a host with {len(moving)} agents: each agent's routing gap",
                     f"p50 {statistics.median(gaps):.2f} s, p99 {p99:.2f} s, max {gaps[-1]:.2f} s ({len(gaps)} measured); sign-ins {sign_ins}, forced logouts {logouts}",
                     "p99 <= 1 s, 0 forced logouts", f"{p99:.2f}", "p99 <= 1 s", "pass" if p99 <= 1.0 and logouts == 0 else "short"))
    finally:
        for h in hosts.values():
            h.stop()
        etcd.stop()
        sim.stop()
    print(f"\n{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
