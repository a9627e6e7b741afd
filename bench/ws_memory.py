"""Where the memory of a WebSocket connection goes: beamish's (joined to a channel) against
Starlette's (a connection held by its endpoint), on uvicorn, in one run.

    .venv/bin/python bench/ws_memory.py [--connections 2000] [--markdown]

Each server runs ``bench/web.py``'s app with Python's allocation tracing on
(``PYTHONTRACEMALLOC``) and a ``SIGUSR1`` handler that writes a ``tracemalloc`` snapshot
(``BENCH_TRACEMALLOC``). After a warm-up fleet of 20 connections has come and gone, one
snapshot is taken; then ``--connections`` clients connect (and join, for beamish), and a
second one once they have been idle for ``--idle`` seconds (1 by default). Their
difference, grouped by the file that allocated, is put under the component it belongs to
(uvicorn, websockets, asyncio, Starlette, beamish's transport, its channel process, ...):
bytes per connection of each, which is what "where each kilobyte
goes" asks. The resident set's growth per connection is given too; with tracing on it
includes tracemalloc's own bookkeeping (about 20-30% more than without), so compare it only
across the two servers of one run (``bench/web.py`` gives it without tracing).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

from web import Fleet, Server

COMPONENTS = (  # (what a path contains, the component), the first that matches; beamish's
    # own files are listed one by one (component() below)
    ("uvicorn/", "uvicorn"),
    ("websockets/", "websockets (sans-I/O protocol)"),
    ("starlette/", "Starlette"),
    ("asyncio/", "asyncio"),
    ("uvloop", "uvloop"),
)


def component(path: str) -> str:
    if "/src/beamish/" in path:
        return "beamish " + path.split("/src/beamish/", 1)[1]
    for part, name in COMPONENTS:
        if part in path:
            return name
    return "other (stdlib, the app)"


def short(path: str) -> str:
    """A file's path from its package on (``beamish/web/_transport.py``, ``asyncio/locks.py``)."""
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.split("/", 1)[1] if path.startswith(".") else path


def snapshot(server: Server, path: Path) -> tracemalloc.Snapshot:
    server.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not Path(f"{path}.done").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server wrote no snapshot to {path}")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(str(path))


def measure(kind: str, connections: int, where: Path, idle: float
            ) -> tuple[dict[str, float], float, list[tuple[str, float]]]:
    """Bytes per connection by component, the resident set's growth per connection, and
    the bytes per connection of each line that allocated, largest first."""
    os.environ["PYTHONTRACEMALLOC"] = "1"
    os.environ["BENCH_TRACEMALLOC"] = str(where / kind)
    try:
        server = Server(kind)
    finally:
        del os.environ["PYTHONTRACEMALLOC"], os.environ["BENCH_TRACEMALLOC"]
    with server:
        with Fleet(kind, server, 1, 20, 1) as warm:  # load the code paths, then measure
            warm.wait_all("ready", 60)
        time.sleep(1.0)
        before = snapshot(server, where / f"{kind}.1")
        rss_before = server.rss()
        processes = max(1, connections // 1000)
        with Fleet(kind, server, processes, connections // processes, 1) as fleet:
            fleet.wait_all("ready", 600)
            time.sleep(max(1.0, idle))
            after = snapshot(server, where / f"{kind}.2")
            rss_after = server.rss()
    by: dict[str, float] = {}
    for stat in after.compare_to(before, "filename"):
        name = component(stat.traceback[0].filename)
        by[name] = by.get(name, 0.0) + stat.size_diff / connections
    lines = [
        (f"{short(frame.filename)}:{frame.lineno}", stat.size_diff / connections)
        for stat in after.compare_to(before, "lineno")
        for frame in (stat.traceback[0],)
    ]
    lines.sort(key=lambda line: -line[1])
    return by, (rss_after - rss_before) / connections, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2_000)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--idle", type=float, default=1.0, metavar="SECONDS",
                        help="how long the connections stay idle before the second snapshot "
                        "(beamish's connections give back their mailboxes after 15-30 s idle)")
    parser.add_argument("--lines", type=int, default=0, metavar="N",
                        help="also list the N lines that allocated the most per connection, "
                        "for each server")
    options = parser.parse_args()
    load = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        results = {kind: measure(kind, options.connections, Path(tmp), options.idle)
                   for kind in ("starlette", "beamish")}
    names = sorted({n for by, _, _ in results.values() for n in by},
                   key=lambda n: -max(abs(results[k][0].get(n, 0.0)) for k in results))
    rows = [[name, *(f"{results[k][0].get(name, 0.0) / 1024:,.2f}" for k in results)]
            for name in names if max(abs(results[k][0].get(name, 0.0)) for k in results) >= 8]
    rows.append(["traced, in all",
                 *(f"{sum(results[k][0].values()) / 1024:,.2f}" for k in results)])
    rows.append(["resident set growth (tracing on)",
                 *(f"{results[k][1] / 1024:,.2f}" for k in results)])
    print(report([f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                  f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load} before",
                  f"{options.connections:,} connections, held (Starlette) or joined to one "
                  "channel topic (beamish), idle for "
                  f"{max(1.0, options.idle):g} s; KB per connection, by what allocated it"],
                 ["component", "Starlette on uvicorn (KB)", "beamish Socket + Channel (KB)"],
                 rows, options.markdown))
    for kind, (_, _, lines) in results.items() if options.lines else ():
        print(f"\n{kind}: the {options.lines} lines that allocated the most per connection\n")
        print(report([], ["line", "bytes per connection"],
                     [[where, f"{size:,.0f}"] for where, size in lines[: options.lines]],
                     options.markdown))


if __name__ == "__main__":
    main()
