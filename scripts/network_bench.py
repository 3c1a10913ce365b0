"""Recovery over a real network's round trips: finesse-sim's network (--rtt) between the daemon
and the nodes at 0 (loopback), 20 and 80 ms, over TCP and over WebSocket, release build.

For each recovery it prints the time from the start of the attempt that succeeded to steady,
in ms and in round trips (ms / RTT), beside the floor of its dependency chain (what must wait
for what; see FLOORS and benches/RESULTS.md) and beside the requests it made, counted as if
each waited for the one before (what a client that never overlaps would need). A figure below
its chain's floor means the clock started in the wrong place: it fails the benchmark. Then a
blackholed primary (new connections accepted, never answered; open ones reset) until steady
on the other node, and a silent (stalled) link until the daemon sees it.
Usage: python3 scripts/network_bench.py [--rtts 0 20 80] [--trials N] [--transports tcp ws]"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simlib import ROOT, Daemon, Sim, machine, table, ts, wait, workdir  # noqa: E402
import bench  # noqa: E402

# Each recovery's dependency chain, in round trips (a push from the server, such as the
# notification that answers a 202, is half of one). XMPP login over TCP and direct TLS: TCP,
# TLS 1.3, stream header and features, SCRAM's two exchanges, the restarted stream, bind = 7;
# over WebSocket the HTTP upgrade adds one. Subscriptions: one (all sent at once). Resync:
# one (every MRD's Media GET and Dialogs LIST at once).
LOGIN = {"tcp": 7, "ws": 8}
FLOORS = {
    # A lost XMPP session on a node whose REST still answers: log in, subscribe, resync.
    "restart": lambda t: LOGIN[t] + 1 + 1,
    # Back IN_SERVICE (the session was kept): the SystemInfo that sees it, then the resync.
    "oos": lambda t: 1 + 1,
    # A drift notification: the sign-in PUT, Finesse's notification (half), the GET that
    # confirms the settings.
    "drift": lambda t: 1 + 0.5 + 1,
    # To the other node: its SystemInfo, log in, subscribe, resync, sign in (PUT, word),
    # READY (PUT, word), each change confirmed by a GET.
    "failover": lambda t: 1 + LOGIN[t] + 1 + 1 + (1 + 0.5 + 1) * 2,
}
RECOVERY = bench.RECOVERY_NORMAL


def xmpp_toml(transport):
    return 'transport = "websocket"' if transport == "ws" else ""


def measure(sim, d, fault, clear, rtt, inject=False, from_attempt=False):
    """One recovery (bench.recover_once), a start taken from the simulator's request log moved
    back by the one-way delay (a request is logged there half a round trip after it was sent).
    With `from_attempt`, the start is the daemon's own line for the attempt that succeeded
    (`attempt started`): the server may listen before the call that restarts it returns, so
    the daemon's clock, not the harness's, says when the work began."""
    r = bench.recover_once(sim, d, fault, clear, inject, one_way=rtt / 2)
    r["overlapped"] = False
    if from_attempt:
        starts = [ts(e["timestamp"]) for e in d.log()
                  if e.get("fields", {}).get("message") == "attempt started" and ts(e["timestamp"]) <= r["t_steady"]]
        if starts and max(starts) >= r["t0"]:
            r["took"] = r["t_steady"] - max(starts)
        elif starts:
            # The attempt that succeeded began before the server was back (its TCP connection
            # already made, waiting): part of its chain ran before the clock could start, so
            # the chain's floor does not apply to this trial.
            r["overlapped"] = True
    return r


def row(name, transport, rtt, results, floor_rtts):
    took = statistics.median(r["took"] for r in results)
    trips = statistics.median(r["trips"] for r in results)
    whole = [r for r in results if not r.get("overlapped")]
    overlapped = len(results) - len(whole)
    low = min(r["took"] for r in whole) if whole else float("inf")
    if rtt == 0:
        return (f"{name} over {transport}, loopback", f"median {took * 1000:.1f} ms ({len(results)} trials)",
                f"{trips:.0f} requests in turn", "-", "the CPU's share", "-")
    in_rtts = took / rtt
    floor = floor_rtts * rtt
    if low < floor * 0.95:
        verdict = f"fail: {low * 1000:.0f} ms is below the chain's floor, the clock started late"
    else:
        verdict = bench.verdict(in_rtts <= floor_rtts + 1)
    note = f", {overlapped} begun before the server was back (no floor)" if overlapped else ""
    return (f"{name} over {transport} at {rtt * 1000:.0f} ms RTT",
            f"median {took * 1000:.0f} ms = {in_rtts:.1f} RTT, max {max(r['took'] for r in results) * 1000:.0f} ms ({len(results)} trials{note})",
            f"floor {floor_rtts:g} RTT = {floor * 1000:.0f} ms; {trips:.0f} requests in turn",
            f"{in_rtts - floor_rtts:+.1f} RTT", "<= floor + 1 RTT", verdict)


def one_setting(bins, work, rtt, transport, trials):
    args = ["--rtt", f"{int(rtt * 1000)}ms"] if rtt else []
    sim = Sim(bins, work, args=args)
    rows = []
    call = sim.call
    link = "rest" if transport == "ws" else "xmpp"
    try:
        d = Daemon(bins, work, sim, f"main-{transport}-{int(rtt * 1000)}", recovery=RECOVERY, xmpp=xmpp_toml(transport))
        try:
            wait(d.steady_and_up, what="first steady")
            runs = [measure(sim, d, lambda: call("POST", "/admin/nodes/A/prosody/kill"),
                            lambda: call("POST", "/admin/nodes/A/prosody/start"), rtt, from_attempt=True) for _ in range(trials)]
            rows.append(row("XMPP server restart", transport, rtt, runs, FLOORS["restart"](transport)))
            runs = [measure(sim, d, lambda: call("PUT", "/admin/nodes/A/faults", {"out_of_service": True}),
                            lambda: call("PUT", "/admin/nodes/A/faults", {"out_of_service": False}), rtt) for _ in range(trials)]
            rows.append(row("OUT_OF_SERVICE return", transport, rtt, runs, FLOORS["oos"](transport)))
            runs = [measure(sim, d, None, lambda: call("POST", "/admin/agents/1001001/media/5002/drift", {"node": "A", "notify": True}),
                            rtt, inject=True) for _ in range(trials)]
            rows.append(row("drift corrected", transport, rtt, runs, FLOORS["drift"](transport)))
            if rtt:
                rows.append(stall(sim, d, link, rtt, transport))
        finally:
            d.stop()
        d = Daemon(bins, work, sim, f"fo-{transport}-{int(rtt * 1000)}", recovery=RECOVERY.replace('"60s"', '"1s"'),
                   xmpp=xmpp_toml(transport))
        try:
            runs = []
            for i in range(trials):
                dead = "AB"[i % 2]
                wait(lambda: d.steady_and_up() and d.state()["node"] == sim.nodes["AB".index(dead)].rstrip("/"), what=f"steady on {dead}")
                runs.append(measure(sim, d, None, lambda: (call("PUT", f"/admin/nodes/{dead}/faults", {"rest": "refused"}),
                                                           call("POST", f"/admin/nodes/{dead}/prosody/kill")), rtt,
                                     from_attempt=True))
                call("PUT", f"/admin/nodes/{dead}/faults", {"rest": "up"})
                call("POST", f"/admin/nodes/{dead}/prosody/start")
            rows.append(row("failover to the other node", transport, rtt, runs, FLOORS["failover"](transport)))
        finally:
            d.stop()
        if rtt:
            # A daemon of its own: the failovers above left its backoff at its longest, and
            # a backoff wait is not what this row measures.
            d = Daemon(bins, work, sim, f"bh-{transport}-{int(rtt * 1000)}", recovery=RECOVERY.replace('"60s"', '"1s"'),
                       xmpp=xmpp_toml(transport))
            try:
                rows.append(blackhole(sim, d, rtt, transport))
            finally:
                d.stop()
    finally:
        sim.stop()
    return rows


def stall(sim, d, link, rtt, transport, ping=1.0, timeout=1.0):
    """A silent link: from the stall until the daemon says the XMPP link is down."""
    wait(d.steady_and_up, what="steady")
    time.sleep(0.3)
    t = time.monotonic()
    sim.call("PUT", f"/admin/nodes/A/network/{link}", {"stall": True})
    wait(lambda: d.state()["links"]["xmpp"] == "down", step=0.005, what="link down")
    took = time.monotonic() - t
    sim.call("PUT", f"/admin/nodes/A/network/{link}", {"stall": False})
    bound = ping + timeout
    return (f"silent (stalled) link found, over {transport} at {rtt * 1000:.0f} ms RTT",
            f"{took * 1000:.0f} ms", f"ping_interval + ping_timeout = {bound:.0f} s", f"{took / bound:.2f}",
            "<= 1.1", bench.verdict(took <= bound * 1.1))


def blackhole(sim, d, rtt, transport):
    """The node in use blackholed (new connections never answered, open ones reset): until
    steady on the other node. Expected: one connect_timeout (the first try there), then the
    failover's chain."""
    wait(d.steady_and_up, what="steady")
    here = d.state()["node"]
    dead = "A" if sim.nodes[0].rstrip("/") == here else "B"
    other = sim.nodes[1 - "AB".index(dead)].rstrip("/")
    time.sleep(0.3)
    t = time.time()
    sim.call("PUT", f"/admin/nodes/{dead}/network/all", {"blackhole": True, "reset": True})
    wait(lambda: d.steady_and_up() and d.state()["node"] == other, step=0.005, limit=120, what="steady on the other node")
    t_steady = d.steady_after(t)
    sim.call("PUT", f"/admin/nodes/{dead}/network/all", {"blackhole": False, "reset": False})
    took = t_steady - t
    connect = 2.0
    goal = connect + (FLOORS["failover"](transport) + 1) * rtt
    return (f"blackholed node until steady on the other, over {transport} at {rtt * 1000:.0f} ms RTT",
            f"{took * 1000:.0f} ms", f"connect_timeout {connect:.0f} s + failover floor + 1 RTT = {goal * 1000:.0f} ms",
            f"{took / goal:.2f}", "<= connect_timeout + floor + 1 RTT", bench.verdict(took <= goal))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtts", type=int, nargs="+", default=[0, 20, 80])
    ap.add_argument("--transports", nargs="+", default=["tcp", "ws"])
    ap.add_argument("--trials", type=int, default=5)
    a = ap.parse_args()
    bins = f"{ROOT}/target/release"
    work = workdir()
    rows = []
    for rtt in a.rtts:
        for transport in a.transports:
            rows += one_setting(bins, work, rtt / 1000, transport, a.trials)
    print(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}, release build, "
          f"simulated round trips {a.rtts} ms (finesse-sim --rtt).\n")
    print(table(rows))


if __name__ == "__main__":
    main()
