"""Fleet benchmark: one `finesse-taskd fleet` process with N agents against one simulator
(its agents given as a range), release build. For each N: the idle footprint, steady for
`--idle` s (RSS per agent beyond an empty fleet's, CPU, wakeups per second). Then the same
kind of agents as single-agent processes, as many as `--singles` (the host cannot hold 2,000
of them), for the RSS ratio. Then the herd for the largest N: side A's Prosody killed and its
REST refused for 8 s, then back; the REST requests per 100 ms at the simulator (peak, median),
XMPP logins started per second (the fleet's "XMPP login started" lines, which the bucket
gates) beside those completed ("XMPP session up"), and the time until all are
steady, against the caps.
Usage: python3 scripts/fleet_bench.py [--n 100 500 2000] [--idle 60] [--singles 200]
       [--herd-only] [--logins 50] [--rtt 80]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simlib import ROOT, Daemon, call, machine, proc_stats, stop_all, table, ts, wait, workdir  # noqa: E402

WINDOW = 5.0
DOWN = 8.0
LOGINS = 50.0
REQUESTS = 200.0
FIRST = 2000000


class RangeSim:
    """finesse-sim whose agents are a range (`agents = { first, count }`)."""

    def __init__(self, bins, work, n, args=()):
        config = f"{work}/sim.toml"
        open(config, "w").write(f"""domain = "finesse.test"
agents = {{ first = {FIRST}, count = {max(n, 1)}, mrds = [5002], password = "herd-{{n}}-secret" }}
[[mrds]]
id = 5002
name = "Chat_MRD"
interruptible = true
""")
        self.proc = subprocess.Popen([f"{bins}/finesse-sim", "--config", config, "--spawn-prosody", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.admin = self.info["admin"]
        self.nodes = [n["rest"] for n in self.info["nodes"]]
        self.call("PUT", "/admin/behaviour", {"forced_logout_after_ms": 0})

    def call(self, method, path, body=None):
        return call(method, f"{self.admin}{path}", body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Fleet:
    def __init__(self, bins, work, sim, n, name="fleet", extra=""):
        self.dir = f"{work}/{name}"
        agents = f"{self.dir}/agents.d"
        os.makedirs(agents, exist_ok=True)
        for i in range(n):
            pw = f"{self.dir}/pw-{i}"
            with open(pw, "w", opener=lambda p, f: os.open(p, f, 0o600)) as f:
                f.write(f"herd-{i}-secret\n")
            open(f"{agents}/{FIRST + i}.toml", "w").write(
                f'[agent]\nid = "{FIRST + i}"\npassword_file = "{pw}"\n'
                '[[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = "ACCEPT"\n')
        open(f"{self.dir}/fleet.toml", "w").write(f"""[fleet]
agents_dir = "agents.d"
state_dir = "state"
max_logins_per_second = {LOGINS}
max_requests_per_second = {REQUESTS}
ready_ratio = 1.0
[finesse]
nodes = {json.dumps(sim.nodes)}
ca_file = "{sim.info['ca_file']}"
request_timeout = "10s"
[xmpp]
ping_interval = "10s"
ping_timeout = "5s"
[recovery]
first_retry_window = "{WINDOW:.0f}s"
backoff_initial = "1s"
backoff_max = "10s"
failover_after = "300s"
systeminfo_poll = "1s"
[api]
listen = "127.0.0.1:0"
[log]
format = "json"
{extra}
""")
        self.log_path = f"{self.dir}/log.jsonl"
        self.proc = subprocess.Popen([f"{bins}/finesse-taskd", "fleet", "--config", f"{self.dir}/fleet.toml"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        self.api = None
        wait(self._listening, limit=60, step=0.05, what="the fleet's API")

    def lines(self):
        out = []
        for line in open(self.log_path, "rb"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def _listening(self):
        for e in self.lines():
            f = e.get("fields", {})
            if f.get("message") == "local API listening":
                self.api = f"http://{f['addr']}"
                return True
        if self.proc.poll() is not None:
            raise SystemExit(f"bench: the fleet exited; see {self.log_path}")
        return False

    def steady(self):
        agents = call("GET", f"{self.api}/v1/agents")[1]["agents"]
        return sum(1 for a in agents if a["phase"] == "steady")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def idle(pid, seconds):
    """(RSS KiB, CPU %, wakeups/s) over `seconds`."""
    hz = os.sysconf("SC_CLK_TCK")
    c0, _, _, w0, _ = proc_stats(pid)
    time.sleep(seconds)
    c1, rss, _, w1, threads = proc_stats(pid)
    return rss, 100.0 * (c1 - c0) / hz / seconds, (w1 - w0) / seconds, threads


def footprint(bins, work, n, seconds, base_rss):
    sim = RangeSim(bins, work, n)
    fleet = Fleet(bins, work, sim, n)
    try:
        t = wait(lambda: fleet.steady() == n, limit=60 + 2 * n / LOGINS, step=0.5, what=f"{n} agents steady")
        time.sleep(2)
        rss, cpu, wakeups, threads = idle(fleet.proc.pid, seconds)
    finally:
        fleet.stop()
        sim.stop()
    per = (rss - base_rss) / n
    ok = per <= 256 and (n < 2000 or cpu <= 2.0)
    return (f"fleet idle footprint: {n} agents steady for {seconds} s (ping_interval 10 s)",
            f"RSS {rss / 1024:.1f} MiB = base {base_rss / 1024:.1f} MiB + {per:.0f} KiB per agent; CPU {cpu:.2f} % of a core; "
            f"{wakeups:.1f} wakeups/s ({wakeups / n:.3f} per agent, {threads} threads); all steady {t:.0f} s after start",
            "goal: <= 256 KiB per agent, <= 2 % of a core at 2,000", f"{per / 256:.2f}",
            "<= 256 KiB per agent" + (", CPU <= 2 %" if n >= 2000 else ""), "pass" if ok else "short"), per


def empty_base(bins, work, seconds=5):
    sim = RangeSim(bins, work, 1)
    fleet = Fleet(bins, work, sim, 0, name="empty")
    try:
        time.sleep(seconds)
        return proc_stats(fleet.proc.pid)[1]
    finally:
        fleet.stop()
        sim.stop()


def singles(bins, work, n, fleet_per_agent):
    sim = RangeSim(bins, work, n)
    daemons = []
    try:
        for i in range(n):
            daemons.append(Daemon(bins, work, sim, f"single{i}", agent=str(FIRST + i), password=f"herd-{i}-secret",
                                  ping="10s", timeout="5s", listen=f"unix:{work}/single{i}.sock"))
        wait(lambda: all(d.steady_after(0) for d in daemons), limit=300, step=0.5, what="singles steady")
        time.sleep(5)
        rss = [proc_stats(d.proc.pid)[1] for d in daemons]
    finally:
        stop_all(daemons)
        sim.stop()
    per = statistics.mean(rss)
    return ("the same agents as single-agent processes",
            f"{n} processes (the host cannot hold 2,000 at ~11.5 MiB each besides the simulator): "
            f"RSS {per / 1024:.1f} MiB per process, {sum(rss) / 1024 / 1024:.2f} GiB in all",
            f"fleet: {fleet_per_agent:.0f} KiB per agent", f"{per / max(fleet_per_agent, 1):.0f}x",
            "-", "-")


def sliding_peak(times, width):
    """The most of `times` (sorted or not) in any window of `width` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def herd(bins, work, n, rtt=0):
    sim = RangeSim(bins, work, n, args=["--rtt", f"{rtt}ms"] if rtt else [])
    fleet = Fleet(bins, work, sim, n, name="herd")
    try:
        wait(lambda: fleet.steady() == n, limit=60 + 2 * n / LOGINS, step=0.5, what="all steady")
        time.sleep(3)
        t_kill = time.time()
        sim.call("PUT", "/admin/nodes/A/faults", {"rest": "refused"})
        sim.call("POST", "/admin/nodes/A/prosody/kill")
        time.sleep(DOWN)
        t_back = time.time()
        since = sim.call("GET", "/admin/requests")[1]["requests"][-1]["seq"]
        sim.call("POST", "/admin/nodes/A/prosody/start")
        sim.call("PUT", "/admin/nodes/A/faults", {"rest": "up"})
        t_all = t_back + wait(lambda: fleet.steady() == n, limit=600, step=0.25, what="all steady again")
        reqs = sim.call("GET", f"/admin/requests?since={since}")[1]["requests"]
        lines = fleet.lines()
        starts = [ts(e["timestamp"]) for e in lines
                  if e.get("fields", {}).get("message") == "XMPP login started" and ts(e["timestamp"]) >= t_back]
        logins = [ts(e["timestamp"]) for e in lines
                  if e.get("fields", {}).get("message") == "XMPP session up" and ts(e["timestamp"]) >= t_back]
    finally:
        fleet.stop()
        sim.stop()
    times = [ts(r["time"]) for r in reqs if t_back <= ts(r["time"]) <= t_all]
    buckets = [0] * (int((t_all - t_back) / 0.1) + 1)
    for t in times:
        buckets[min(int((t - t_back) / 0.1), len(buckets) - 1)] += 1
    def per_second(times):
        per_s = [0] * (int(t_all - t_back) + 1)
        for t in times:
            per_s[min(int(t - t_back), len(per_s) - 1)] += 1
        return per_s
    starts = [t for t in starts if t <= t_all]
    per_s = [sliding_peak(starts, 1.0)]
    done_s = per_second(logins)
    burst = max(1, int(LOGINS / 10))
    busy = [b for b in buckets if b] or [0]
    cap_100ms = REQUESTS / 10 + max(1, REQUESTS / 10)
    goal_time = WINDOW + n / LOGINS + 10
    took = t_all - t_back
    at = f" at {rtt} ms RTT" if rtt else ""
    return [
        (f"fleet herd: {n} agents in one fleet{at}, side A down {DOWN:.0f} s then back: REST requests at the sim per 100 ms",
         f"peak {max(buckets)}, median of busy buckets {statistics.median(busy):.0f}, {len(busy)} busy buckets of {len(buckets)}; "
         f"{len(times)} requests",
         f"cap {REQUESTS:.0f}/s = {REQUESTS / 10:.0f} per 100 ms + a burst of {max(1, REQUESTS / 10):.0f} (spike would be ~{n})",
         f"{max(buckets) / cap_100ms:.2f}", "peak <= the cap, no spike to N", "pass" if max(buckets) <= cap_100ms else "short"),
        (f"fleet herd: XMPP logins started per second after side A is back ({n} agents{at})",
         f"peak {max(per_s)} in any 1 s, {len(starts)} started; completed ('XMPP session up'): peak {max(done_s)}/s, "
         f"{len(logins)} in all",
         f"cap {LOGINS:.0f} logins and sign-ins per second + a burst of {burst}",
         f"{max(per_s) / LOGINS:.2f}", "started <= the cap", "pass" if max(per_s) <= LOGINS + burst else "short"),
        (f"fleet herd: all {n} steady after side A is back{at}",
         f"{took:.1f} s; down at {t_kill - t_back:.0f} s",
         f"first_retry_window {WINDOW:.0f} s + N / max_logins_per_second {n / LOGINS:.0f} s + 10 s = {goal_time:.0f} s",
         f"{took / goal_time:.2f}", "<= first_retry_window + N / cap + 10 s", "pass" if took <= goal_time else "short"),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100, 500, 2000])
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--singles", type=int, default=200)
    ap.add_argument("--bins", default=f"{ROOT}/target/release")
    ap.add_argument("--herd-only", action="store_true", help="skip the idle footprints and singles")
    ap.add_argument("--logins", type=float, default=50.0, help="max_logins_per_second")
    ap.add_argument("--rtt", type=int, default=0, help="simulated round trip in ms for the herd (finesse-sim --rtt)")
    a = ap.parse_args()
    global LOGINS
    LOGINS = a.logins
    work = workdir()
    rows = []
    base = empty_base(a.bins, work)
    per = None
    for n in [] if a.herd_only else a.n:
        row, per = footprint(a.bins, work, n, a.idle, base)
        rows.append(row)
        print(table([row]), flush=True)
    if a.singles and not a.herd_only:
        rows.append(singles(a.bins, work, a.singles, per))
        print(table(rows[-1:]), flush=True)
    rows += herd(a.bins, work, max(a.n), a.rtt)
    print(f"\n{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
