"""System benchmarks against finesse-sim + real Prosody, printing one Markdown table:
detection of a silent dead link (ratio to ping_interval + ping_timeout), recovery after an
XMPP restart and after OUT_OF_SERVICE (time and REST/XMPP round trips counted from the sim's
log against the loopback RTT), short blips, and the idle footprint (RSS, CPU, wakeups).
Usage: python3 scripts/bench.py [--trials N] [--idle SECONDS] (after cargo build --release)."""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            t = r.read().decode()
            return r.status, (json.loads(t) if t else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def wait(cond, limit=60.0, step=0.005):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if cond():
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(step)
    raise SystemExit("bench: timeout")


def proc(pid):
    st = open(f"/proc/{pid}/stat").read().split(")")[-1].split()
    utime, stime = int(st[11]), int(st[12])
    status = open(f"/proc/{pid}/status").read()
    rss = int([l for l in status.splitlines() if l.startswith("VmRSS")][0].split()[1])
    hwm = int([l for l in status.splitlines() if l.startswith("VmHWM")][0].split()[1])
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        s = open(f"/proc/{pid}/task/{tid}/status").read()
        for l in s.splitlines():
            if "ctxt_switches" in l:
                switches += int(l.split()[1])
    return utime + stime, rss, hwm, switches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--idle", type=int, default=60)
    ap.add_argument("--profile", default="release")
    a = ap.parse_args()
    bins = f"{ROOT}/target/{a.profile}"
    work = tempfile.mkdtemp(prefix="taskd-bench-")
    sim = subprocess.Popen([f"{bins}/finesse-sim", "--config", f"{ROOT}/config/sim.toml", "--spawn-prosody"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    info = json.loads(sim.stdout.readline())
    admin = info["admin"]
    nodes = [n["rest"] for n in info["nodes"]]
    call("PUT", f"{admin}/admin/behaviour", {"forced_logout_after_ms": 0})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_addr = f"127.0.0.1:{s.getsockname()[1]}"
    pw = f"{work}/pw"
    with open(pw, "w", opener=lambda p, f: os.open(p, f, 0o600)) as f:
        f.write("agent-1001001-secret\n")
    ping, timeout = 1.0, 1.0
    open(f"{work}/agent.toml", "w").write(f"""[agent]
id = "1001001"
password_file = "{pw}"
[finesse]
nodes = {json.dumps(nodes)}
ca_file = "{info['ca_file']}"
request_timeout = "2s"
[xmpp]
ping_interval = "{ping}s"
ping_timeout = "{timeout}s"
[[media]]
id = 5002
max_dialog_limit = 3
interrupt_action = "ACCEPT"
[recovery]
first_retry_window = "0s"
backoff_initial = "50ms"
backoff_max = "1s"
systeminfo_poll = "100ms"
failover_after = "60s"
[api]
listen = "{api_addr}"
[log]
format = "json"
""")
    daemon = subprocess.Popen([f"{bins}/finesse-taskd", "--config", f"{work}/agent.toml"], stderr=subprocess.DEVNULL)
    api = f"http://{api_addr}"
    state = lambda: call("GET", f"{api}/v1/state")[1]
    ready = lambda: call("GET", f"{api}/readyz")[0] == 200
    rows = []
    try:
        wait(ready)
        # Loopback RTT of one simple request (SystemInfo over HTTPS is not simpler than this).
        rtts = []
        for _ in range(50):
            t = time.monotonic()
            call("GET", f"{admin}/admin/info")
            rtts.append(time.monotonic() - t)
        rtt = statistics.median(rtts)

        # 1. Detection of a silent dead link.
        ratios = []
        for _ in range(a.trials):
            wait(lambda: ready() and state()["links"]["xmpp"] == "up")
            time.sleep(random.uniform(0, 0.5))
            call("POST", f"{admin}/admin/nodes/A/prosody/freeze")
            t = time.monotonic()
            wait(lambda: state()["links"]["xmpp"] == "down", step=0.002)
            ratios.append((time.monotonic() - t) / (ping + timeout))
            call("POST", f"{admin}/admin/nodes/A/prosody/thaw")
        rows.append(("detection of a frozen XMPP server (ratio to ping_interval + ping_timeout)",
                     f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f} ({a.trials} trials)", "1.0", "<= 1.1",
                     "pass" if statistics.median(ratios) <= 1.1 else "short"))

        # 2. Recovery after an XMPP restart and after OUT_OF_SERVICE.
        def recovery(name, fault, clear):
            wait(ready)
            seq = len(call("GET", f"{admin}/admin/requests")[1]["requests"])
            fault()
            wait(lambda: not ready())
            t = time.monotonic()
            clear()
            took = wait(ready, step=0.001) + (time.monotonic() - t - 0)  # includes the clear call
            reqs = [r for r in call("GET", f"{admin}/admin/requests")[1]["requests"][seq:]]
            floor = max(len(reqs), 1) * rtt
            rows.append((f"recovery: {name}", f"{took * 1000:.0f} ms, {len(reqs)} REST calls", f"{floor * 1000:.1f} ms ({len(reqs)} x RTT {rtt * 1000:.2f} ms)",
                         "<= 1.5x floor, <= 50 ms", f"ratio {took / floor:.1f}"))
        recovery("XMPP server restart (time from start returning)",
                 lambda: call("POST", f"{admin}/admin/nodes/A/prosody/kill"),
                 lambda: call("POST", f"{admin}/admin/nodes/A/prosody/start"))
        recovery("OUT_OF_SERVICE return",
                 lambda: call("PUT", f"{admin}/admin/nodes/A/faults", {"out_of_service": True}),
                 lambda: call("PUT", f"{admin}/admin/nodes/A/faults", {"out_of_service": False}))

        # 3. Short blips.
        blips = []
        for _ in range(a.trials):
            wait(ready)
            kind = random.choice(["rest", "xmpp", "both"])
            hold = random.uniform(0.5, 5.0)
            if kind in ("rest", "both"):
                call("PUT", f"{admin}/admin/nodes/A/faults", {"rest": "refused"})
            if kind in ("xmpp", "both"):
                call("POST", f"{admin}/admin/nodes/A/prosody/kill")
            t0 = time.monotonic()
            time.sleep(hold)
            call("PUT", f"{admin}/admin/nodes/A/faults", {"rest": "up"})
            call("POST", f"{admin}/admin/nodes/A/prosody/start")
            wait(ready)
            blips.append(time.monotonic() - t0)
        rows.append((f"short blips 0.5-5 s ({a.trials}, REST/XMPP/both): fault start to steady",
                     f"median {statistics.median(blips):.1f} s, max {max(blips):.1f} s", "blip length", "all < 20 s",
                     "pass" if max(blips) < 20 else "short"))

        # 4. Idle footprint.
        wait(ready)
        time.sleep(2)
        c0, _, _, s0 = proc(daemon.pid)
        time.sleep(a.idle)
        c1, rss, hwm, s1 = proc(daemon.pid)
        hz = os.sysconf("SC_CLK_TCK")
        cpu = (c1 - c0) / hz / a.idle * 100
        wakeups = (s1 - s0) / a.idle
        rows.append((f"idle footprint over {a.idle} s", f"RSS {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f}), CPU {cpu:.3f} %, {wakeups:.1f} context switches/s",
                     "pings every 1 s", "RSS <= 12 MiB, CPU <= 0.1 %, <= 1 wakeup/s beyond pings", "see figures"))
        size = os.path.getsize(f"{bins}/finesse-taskd")
        rows.append(("binary size", f"{size / 1048576:.1f} MiB ({a.profile}, as built)", "-", "-", "-"))
    finally:
        daemon.terminate()
        sim.terminate()
        daemon.wait()
        sim.wait()
    print("| measure | figure | floor or reference | goal | result |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
