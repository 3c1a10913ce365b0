"""Fleet herd benchmark: N daemons (each a process with its own agent in the simulator), all
steady; side A dies (REST refused and Prosody killed) for a while and comes back. Reports the
request rate at the simulator per 100 ms bucket after the return (peak and spread) and the time
until all N are steady again, against first_retry_window.
Usage: python3 scripts/herd.py [N] (or through scripts/bench.py --herd N)."""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simlib import ROOT, Daemon, Sim, stop_all, table, ts, wait, workdir  # noqa: E402

WINDOW = 5.0
DOWN = 8.0


def run(bins, work, n):
    sim = Sim(bins, work, agents=n)
    recovery = f"""first_retry_window = "{WINDOW:.0f}s"
backoff_initial = "1s"
backoff_max = "10s"
failover_after = "300s"
systeminfo_poll = "1s"
"""
    daemons = []
    try:
        for i in range(n):
            name = f"herd{i}"
            daemons.append(Daemon(bins, work, sim, name, agent=str(2000000 + i), password=f"herd-{i}-secret",
                                  ping="10s", timeout="5s", recovery=recovery, listen=f"unix:{work}/{name}/api.sock"))
        wait(lambda: all(d.steady_after(0) for d in daemons), limit=300, step=0.5, what="all steady")
        time.sleep(2)
        t_kill = time.time()
        sim.call("PUT", "/admin/nodes/A/faults", {"rest": "refused"})
        sim.call("POST", "/admin/nodes/A/prosody/kill")
        time.sleep(DOWN)
        t_back = time.time()
        sim.call("POST", "/admin/nodes/A/prosody/start")
        sim.call("PUT", "/admin/nodes/A/faults", {"rest": "up"})
        pending = list(daemons)
        steady = []

        def all_back():
            for d in list(pending):
                t = d.steady_after(t_back)
                if t is not None:
                    steady.append(t)
                    pending.remove(d)
            return not pending

        wait(all_back, limit=300, step=0.5, what="all steady again")
        reqs, _ = sim.requests()
    finally:
        stop_all(daemons)
        sim.stop()
    end = max(steady)
    times = [ts(r["time"]) for r in reqs if t_back <= ts(r["time"]) <= end]
    attempts = [ts(r["time"]) for r in reqs if t_back <= ts(r["time"]) <= end and r["path"].endswith("/SystemInfo")]
    buckets = [0] * (int((end - t_back) / 0.1) + 1)
    for t in times:
        buckets[min(int((t - t_back) / 0.1), len(buckets) - 1)] += 1
    starts = [0] * (int((end - t_back)) + 1)
    for t in attempts:
        starts[min(int(t - t_back), len(starts) - 1)] += 1
    busy = [b for b in buckets if b]
    all_steady = end - t_back
    goal_rate = n / WINDOW
    ok_rate = max(starts) <= 2 * goal_rate
    return [
        (f"fleet herd: {n} daemons, side A down {DOWN:.0f} s then back: REST requests at the sim per 100 ms",
         f"peak {max(buckets)}, median of busy buckets {statistics.median(busy):.0f}, "
         f"{len(busy)} busy buckets of {len(buckets)}; recovery attempts (SystemInfo) peak {max(starts)}/s",
         f"N / first_retry_window = {goal_rate:.0f} attempts/s (spike would be {n} at once)",
         f"{max(starts) / goal_rate:.2f}", "peak near N / first_retry_window, no spike to N", "pass" if ok_rate else "short"),
        (f"fleet herd: all {n} steady after side A is back",
         f"{all_steady:.1f} s (first {min(steady) - t_back:.2f} s); down at {t_kill - t_back:.0f} s",
         f"first_retry_window {WINDOW:.0f} s + 10 s = {WINDOW + 10:.0f} s", f"{all_steady / (WINDOW + 10):.2f}",
         "<= first_retry_window + 10 s", "pass" if all_steady <= WINDOW + 10 else "short"),
    ]


if __name__ == "__main__":
    print(table(run(f"{ROOT}/target/release", workdir(), int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
