"""What the WebSocket clients of bench/web.py spend per broadcast, server by server.

    .venv/bin/python bench/ws_clients.py [--kinds starlette,beamish] [--connections 10000]

In ``bench/web.py`` the client processes share the two cores with the server, so what they
spend per broadcast bounds the receipt latency as much as the server does. This script
runs ``bench/web.py``'s servers and client fleet (4 processes), sends one warm-up broadcast
and then 5 more, and reports each server's CPU and the clients' CPU per broadcast, plus the
system calls of one client process over the 5 (``strace -c``, attached after the warm-up;
strace slows that process, so its CPU is reported apart from the other three's).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average

from web import Fleet, Server, cpu_seconds

BROADCASTS = 5


def syscalls(path: str) -> dict[str, int]:
    """strace -c's table: calls per system call."""
    counts = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


def measure(kind: str, connections: int, processes: int) -> dict[str, object]:
    with Server(kind) as server, Fleet(kind, server, processes, connections // processes,
                                       BROADCASTS + 1) as fleet:
        fleet.wait_all("ready", 300)
        time.sleep(1.0)
        server.trigger()
        fleet.wait_all("got 1", 60)
        time.sleep(0.5)
        traced = fleet.processes[0].pid
        with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as out:
            report = out.name
        strace = subprocess.Popen(["strace", "-c", "-f", "-p", str(traced), "-o", report],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        others = [p.pid for p in fleet.processes[1:]]
        c0, t0, s0 = (sum(cpu_seconds(p) for p in others), cpu_seconds(traced),
                      cpu_seconds(server.process.pid))
        for k in range(2, BROADCASTS + 2):
            server.trigger()
            fleet.wait_all(f"got {k}", 60)
            time.sleep(0.5)
        c1, t1, s1 = (sum(cpu_seconds(p) for p in others), cpu_seconds(traced),
                      cpu_seconds(server.process.pid))
        strace.terminate()
        strace.wait()
        calls = syscalls(report)
        os.unlink(report)
        fleet.wait_all("result", 60)
    return {
        "server": (s1 - s0) / BROADCASTS,
        "clients": (c1 - c0) / BROADCASTS / len(others),
        "traced": (t1 - t0) / BROADCASTS,
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="starlette,beamish")
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("bench/ws_clients.py needs strace: apt-get install -y strace")
    kinds = [k.strip() for k in args.kinds.split(",")]
    load = load_average()
    results = {kind: measure(kind, args.connections, 4) for kind in kinds}
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
          f"{cpu_model()}; load average before: {load}")
    print(f"- {args.connections:,} connections from 4 client processes, {BROADCASTS} "
          "broadcasts after a warm-up; CPU in ms per broadcast")
    print()
    print("| server | server CPU | CPU of each untraced client process | traced client's CPU "
          "| its reads | its epoll waits | its other calls |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        calls = r["calls"]
        assert isinstance(calls, dict)
        reads = calls.get("read", 0) + calls.get("recvfrom", 0)
        waits = calls.get("epoll_wait", 0) + calls.get("epoll_pwait", 0)
        other = sum(calls.values()) - reads - waits
        print(f"| {kind} | {r['server'] * 1e3:.0f} | {r['clients'] * 1e3:.0f} | "
              f"{r['traced'] * 1e3:.0f} | {reads:,} | {waits:,} | {other:,} |")


if __name__ == "__main__":
    main()
