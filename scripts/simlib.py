"""Shared parts of the scripts that drive finesse-sim and finesse-taskd (bench.py, herd.py,
demo.py): JSON calls, polling, the simulator and daemon processes with their logs and metrics,
/proc readings, and the benchmark table."""
import base64
import datetime
import http.client
import json
import os
import ssl
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
        with urllib.request.urlopen(req, timeout=30) as r:
            t = r.read().decode()
            return r.status, (json.loads(t) if t else None)
    except urllib.error.HTTPError as e:
        t = e.read().decode()
        return e.code, (json.loads(t) if t.startswith("{") else t)


def wait(cond, limit=60.0, step=0.005, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if cond():
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(step)
    raise SystemExit(f"bench: timeout waiting for {what}")


def ts(text):
    """A log or sim timestamp (RFC 3339, UTC) as seconds since the epoch."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Sim:
    """finesse-sim with its two Prosody servers; `agents` extra agents for the herd."""

    def __init__(self, bins, work, agents=0, args=()):
        config = f"{ROOT}/config/sim.toml"
        if agents:
            config = f"{work}/sim.toml"
            text = open(f"{ROOT}/config/sim.toml").read()
            for i in range(agents):
                text += f'\n[[agents]]\nid = "{2000000 + i}"\npassword = "herd-{i}-secret"\nmrds = [5002]\n'
            open(config, "w").write(text)
        self.proc = subprocess.Popen([f"{bins}/finesse-sim", "--config", config, "--spawn-prosody", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.admin = self.info["admin"]
        self.nodes = [n["rest"] for n in self.info["nodes"]]
        call("PUT", f"{self.admin}/admin/behaviour", {"forced_logout_after_ms": 0})

    def call(self, method, path, body=None):
        return call(method, f"{self.admin}{path}", body)

    def requests(self):
        """(requests, connections accepted per node)."""
        body = self.call("GET", "/admin/requests")[1]
        return body["requests"], body["connections"]

    def rtt(self, n=50):
        """Median time of one simple HTTPS request (GET SystemInfo) on a warm connection."""
        ctx = ssl.create_default_context(cafile=self.info["ca_file"])
        host, port = self.nodes[0].split("//")[1].rstrip("/").split(":")
        conn = http.client.HTTPSConnection(host, int(port), context=ctx)
        times = []
        for i in range(n + 5):
            t = time.perf_counter()
            conn.request("GET", "/finesse/api/SystemInfo")
            conn.getresponse().read()
            if i >= 5:
                times.append(time.perf_counter() - t)
        conn.close()
        return statistics.median(times)

    def replay(self, records, user="1001001", password="agent-1001001-secret", rounds=5):
        """Median time a bare HTTPS client (warm connection) takes for the same REST calls."""
        ctx = ssl.create_default_context(cafile=self.info["ca_file"])
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        conns = {}
        for n in self.info["nodes"]:
            host, port = n["rest"].split("//")[1].rstrip("/").split(":")
            conns[n["name"]] = http.client.HTTPSConnection(host, int(port), context=ctx)
        times = []
        for i in range(rounds + 1):
            t = time.perf_counter()
            for r in records:
                headers = {"Authorization": auth, "Content-Type": "application/xml"}
                conns[r["node"]].request(r["method"], r["path"], body=r.get("body") or None, headers=headers)
                conns[r["node"]].getresponse().read()
            if i:
                times.append(time.perf_counter() - t)
        for c in conns.values():
            c.close()
        return statistics.median(times)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Daemon:
    """One finesse-taskd with JSON logs in a file; `listen` = host:port or unix:/path."""

    def __init__(self, bins, work, sim, name, agent="1001001", password="agent-1001001-secret",
                 ping="1s", timeout="1s", recovery="", listen=None, env=None, xmpp=""):
        self.dir = f"{work}/{name}"
        os.makedirs(self.dir, exist_ok=True)
        pw = f"{self.dir}/pw"
        with open(pw, "w", opener=lambda p, f: os.open(p, f, 0o600)) as f:
            f.write(password + "\n")
        # Port 0: the daemon binds and keeps its own port, and logs it (no bind-and-release race).
        self.listen = listen or "127.0.0.1:0"
        open(f"{self.dir}/agent.toml", "w").write(f"""[agent]
id = "{agent}"
password_file = "{pw}"
[finesse]
nodes = {json.dumps(sim.nodes)}
ca_file = "{sim.info['ca_file']}"
request_timeout = "2s"
[xmpp]
ping_interval = "{ping}"
ping_timeout = "{timeout}"
{xmpp}
[[media]]
id = 5002
max_dialog_limit = 3
interrupt_action = "ACCEPT"
[recovery]
{recovery}
[api]
listen = "{self.listen}"
[log]
format = "json"
""")
        self.log_path = f"{self.dir}/log.jsonl"
        self.proc = subprocess.Popen([f"{bins}/finesse-taskd", "--config", f"{self.dir}/agent.toml"], env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        self.api = f"http://{self.listen}" if self.listen.startswith("unix:") else f"http://{self._listening()}"

    def _listening(self, limit=30.0):
        """The address from the daemon's 'local API listening' line."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for e in self.log():
                f = e.get("fields", {})
                if f.get("message") == "local API listening":
                    return f["addr"]
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: the daemon exited during start-up; see {self.log_path}")
            time.sleep(0.01)
        raise SystemExit(f"bench: the daemon's API did not come up; see {self.log_path}")

    def state(self):
        return call("GET", f"{self.api}/v1/state")[1]

    def ready(self):
        return call("GET", f"{self.api}/readyz")[0] == 200

    def steady_and_up(self):
        return self.ready() and self.state()["links"]["xmpp"] == "up"

    def log(self):
        """Every JSON log line so far (read incrementally: polling it costs the daemon nothing)."""
        if not hasattr(self, "_lines"):
            self._lines, self._pos, self._rest = [], 0, b""
        with open(self.log_path, "rb") as f:
            f.seek(self._pos)
            chunk = f.read()
        self._pos += len(chunk)
        *complete, self._rest = (self._rest + chunk).split(b"\n")
        for line in complete:
            try:
                self._lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return self._lines

    def steady_after(self, t):
        """Time of the first 'phase Steady' line at or after t, or None (read from the end)."""
        found = None
        for e in reversed(self.log()):
            stamp = ts(e["timestamp"])
            if stamp < t:
                break
            f = e.get("fields", {})
            if f.get("message") == "phase" and f.get("phase") == "Steady":
                found = stamp
        return found

    def metric(self, name):
        with urllib.request.urlopen(f"{self.api}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stop_all(daemons):
    """Stops many daemons at once: all are told first, then each is waited for."""
    for d in daemons:
        d.proc.terminate()
    for d in daemons:
        d.stop()


def proc_stats(pid):
    """(cpu ticks, RSS KiB, peak RSS KiB, voluntary+involuntary context switches, threads)."""
    st = open(f"/proc/{pid}/stat").read().split(")")[-1].split()
    status = open(f"/proc/{pid}/status").read().splitlines()
    field = lambda k: int([l for l in status if l.startswith(k)][0].split()[1])
    switches = 0
    tasks = os.listdir(f"/proc/{pid}/task")
    for tid in tasks:
        for l in open(f"/proc/{pid}/task/{tid}/status").read().splitlines():
            if "ctxt_switches" in l:
                switches += int(l.split()[1])
    return int(st[11]) + int(st[12]), field("VmRSS"), field("VmHWM"), switches, len(tasks)


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores, {model}"


def table(rows):
    out = ["| measure | figure | floor or reference | ratio | goal | result |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def workdir():
    return tempfile.mkdtemp(prefix="taskd-bench-")
