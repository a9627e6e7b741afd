"""Every core: one application on 1 node and on 2 (``beamish run --nodes``), under wrk.

    .venv/bin/python bench/scale.py [--rounds 3] [--seconds 10] [--markdown]

The application (``bench/scale_app.py``) answers ``GET /`` with a process per request, as
every beamish endpoint does. For each round, 1 node and then 2 nodes are started by
``beamish run --nodes N`` on one port, warmed up, and loaded by ``wrk -t1 -c64`` for
``--seconds``; the server's CPU is the user + system time of the parent and its nodes over
the measured window, from /proc. Rows: requests/s, server CPU per request, requests per
server CPU second, p50/p99, and for 2 nodes the ratios to 1:

- throughput: 2 nodes' requests/s over 1 node's, on this 2-core machine, where wrk itself
  takes part of a core (so 2.0x is out of reach here);
- per the same CPU budget: 2 nodes' requests per server CPU second, times 2 cores, over 1
  node's requests per server CPU second, times its 1 core: what 2 nodes serve on 2 whole
  cores against 1 node on 1, at the efficiencies measured (2.0x if spreading costs
  nothing); the target is 1.7x.

WebSockets (``--ws N --ws-nodes K``, and the same N on one node when N fits in one
process's 20,000 open files): N Phoenix-protocol clients in client processes of at most
15,000 connections each (bench/web.py's fleet), joined to one channel topic on
``bench/web.py``'s application run with ``--nodes K``; then ``--broadcasts`` broadcasts (one
more, first, as a warm-up), each a POST that one node receives and PubSub carries to every
node. Rows: server memory per connection (the resident memory of the parent and its nodes,
before and after connecting), the time to connect and join them all, and each client's
receipt latency over every broadcast: p50, p99, max.

Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

import web  # bench/web.py: wrk and its reading, free ports, CPU from /proc, client fleets
from web import free_port, wrk

ROOT = Path(__file__).resolve().parents[1]
BEAMISH = str(Path(sys.executable).with_name("beamish"))


def tree(pid: int) -> list[int]:
    """``pid`` and its children (a --nodes parent and its nodes)."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(c) for c in children.read().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a node that has just exited
            total += web.cpu_seconds(pid)
    return total


def measure(nodes: int, seconds: int) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # web.wrk asks for url + "/"
    proc = subprocess.Popen(
        [BEAMISH, "run", "scale_app:ScaleApp", "--app-dir", str(ROOT / "bench"), "--nodes",
         str(nodes), "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as answer:
                    answer.read()
                if len(tree(proc.pid)) == (1 + nodes if nodes > 1 else 1):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{nodes} node(s) did not start:\n"
                                   f"{proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.2)
        wrk(url, 3)  # warm up
        pids = tree(proc.pid)
        before = cpu_seconds(pids)
        figures = wrk(url, seconds)
        figures["cpu"] = cpu_seconds(pids) - before
        return figures
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


class Nodes:
    """``beamish run web:BenchWeb --nodes K`` (bench/web.py's application), for its fleet."""

    def __init__(self, nodes: int) -> None:
        self.port = free_port()
        self.nodes = nodes
        self.proc = subprocess.Popen(
            [BEAMISH, "run", "web:BenchWeb", "--app-dir", str(ROOT / "bench"), "--nodes",
             str(nodes), "--port", str(self.port), "--log-level", "warning",
             "--shutdown-timeout", "5"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Nodes:
        deadline = time.monotonic() + 60
        while len(tree(self.proc.pid)) < (1 + self.nodes if self.nodes > 1 else 1) or not \
                self._serves():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.nodes} node(s) did not start")
            time.sleep(0.2)
        time.sleep(1.0)  # the siblings meet (they announce themselves within a scan)
        return self

    def _serves(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as answer:
                answer.read()
        except OSError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            for pid in tree(self.proc.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()

    def rss(self) -> int:
        total = 0
        for pid in tree(self.proc.pid):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return total

    def trigger(self) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/broadcast", b"",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=120) as answer:
            answer.read()


def websockets(connections: int, nodes: int, broadcasts: int,
               light: bool = False) -> dict[str, float]:
    processes = math.ceil(connections / 15_000)
    with Nodes(nodes) as server:
        before = server.rss()
        began = time.perf_counter()
        with web.Fleet("beamish", server, processes, connections // processes,  # type: ignore[arg-type]
                   broadcasts + 1, sources=True, light=light) as fleet:
            fleet.wait_all("ready", 1200)
            connect_seconds = time.perf_counter() - began
            time.sleep(1.0)
            after = server.rss()
            pids = tree(server.proc.pid)
            for k in range(1, broadcasts + 2):
                if k == 2:  # the first broadcast is a warm-up
                    cpu, clients_cpu = cpu_seconds(pids), fleet.cpu_seconds()
                server.trigger()
                fleet.wait_all(f"got {k}", 300)
                if k == broadcasts + 1:
                    cpu = cpu_seconds(pids) - cpu
                    clients_cpu = fleet.cpu_seconds() - clients_cpu
                time.sleep(0.5)
            reports = fleet.wait_all("result", 300)
    receipts = sorted(latency for line in reports
                      for per_round in json.loads(line.split(" ", 1)[1])[1:]  # [0]: warm-up
                      for latency in per_round)
    total = connections // processes * processes
    if len(receipts) != broadcasts * total:
        raise RuntimeError(f"{len(receipts)} receipts, expected {broadcasts * total}")
    return {"connections": total, "bytes": (after - before) / total,
            "connect": connect_seconds, "p50": receipts[len(receipts) // 2],
            "p99": receipts[min(len(receipts) - 1, int(len(receipts) * 0.99))],
            "max": receipts[-1], "cpu": cpu / broadcasts, "clients_cpu": clients_cpu / broadcasts}


def spread(values: list[float], fmt: str) -> str:
    return (f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)} to "
            f"{format(max(values), fmt)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--ws", type=int, default=10_000, help="WebSocket connections (0: none)")
    parser.add_argument("--ws-nodes", type=int, default=6)
    parser.add_argument("--broadcasts", type=int, default=3)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--light-clients", action="store_true",
                        help="clients that only note arrival times (the websockets sans-I/O "
                        "protocol under a plain asyncio protocol): less client CPU per frame")
    options = parser.parse_args()
    if not options.no_http and shutil.which("wrk") is None:
        raise SystemExit("bench/scale.py needs wrk: apt-get install wrk")
    load = load_average()
    if options.ws:
        ws_rows = []
        plans = [(options.ws, options.ws_nodes)]
        if options.ws <= 15_000:
            plans.append((options.ws, 1))
        for connections, nodes in plans:
            f = websockets(connections, nodes, options.broadcasts, options.light_clients)
            print(f"websockets: {connections:,} on {nodes} node(s) done", file=sys.stderr)
            ws_rows.append([f"{f['connections']:,.0f} WebSockets", f"{nodes}",
                            f"{f['bytes'] / 1024:.1f} KB", f"{f['connect']:.1f} s",
                            f"{f['p50'] * 1e3:.0f}", f"{f['p99'] * 1e3:.0f}",
                            f"{f['max'] * 1e3:.0f}",
                            f"{f['cpu'] * 1e3:.0f} ms ({f['cpu'] / f['connections'] * 1e6:.1f} µs)",
                            f"{f['clients_cpu'] * 1e3:.0f} ms "
                            f"({f['clients_cpu'] / f['connections'] * 1e6:.1f} µs)"])
        print(report([f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                      f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load} "
                      "before", f"{options.broadcasts} broadcasts after a warm-up; latencies "
                      "over every client and broadcast; clients: "
                      + ("light (sans-I/O)" if options.light_clients else "websockets")],
                     ["clients joined to one topic", "nodes", "server memory per connection",
                      "time to connect all", "p50 (ms)", "p99 (ms)", "max (ms)",
                      "server CPU per broadcast (per connection)",
                      "clients' CPU per broadcast (per connection)"],
                     ws_rows, options.markdown))
        print()
    if options.no_http:
        return
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for r in range(options.rounds):
        for nodes in (1, 2):
            runs[nodes].append(measure(nodes, options.seconds))
            print(f"round {r + 1}/{options.rounds}: {nodes} node(s) done", file=sys.stderr)
    rows = []
    for nodes, results in runs.items():
        rate = [f["rate"] for f in results]
        per_cpu = [f["requests"] / f["cpu"] for f in results]
        rows.append([
            f"{nodes} node{'s' if nodes > 1 else ''}", spread(rate, ",.0f"),
            spread([f["cpu"] / f["requests"] * 1e6 for f in results], ".1f"),
            spread(per_cpu, ",.0f"),
            spread([f["p50"] * 1e3 for f in results], ".2f"),
            spread([f["p99"] * 1e3 for f in results], ".2f"),
            f"{sum(f['errors'] for f in results):.0f}",
        ])
    one_rate = statistics.median(f["rate"] for f in runs[1])
    two_rate = statistics.median(f["rate"] for f in runs[2])
    one_per_cpu = statistics.median(f["requests"] / f["cpu"] for f in runs[1])
    two_per_cpu = statistics.median(f["requests"] / f["cpu"] for f in runs[2])
    projected = two_per_cpu * 2 / one_per_cpu
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load} before",
        f"Python {sys.version.split()[0]}; wrk -t1 -c{web.WRK_CONNECTIONS}, "
        f"{options.seconds}s per run",
        f"{options.rounds} rounds per row: median (min to max)",
        f"2 nodes / 1 node: throughput {two_rate / one_rate:.2f}x; per the same CPU budget "
        f"(requests per server CPU second: 2 nodes x 2 cores / 1 node x 1 core) "
        f"{projected:.2f}x (target 1.70)",
    ]
    print(report(header, ["server", "requests/s", "server CPU per request (us)",
                          "requests per server CPU second", "p50 (ms)", "p99 (ms)", "errors"],
                 rows, options.markdown))


if __name__ == "__main__":
    main()
