"""The Python share of an HTTP request, without the kernel: uvicorn's protocol and the app
driven in-process, beamish's against Starlette's, in one run.

    .venv/bin/python bench/http_stack.py [--requests 16000] [--rounds 5] [--markdown]

Each case runs in a fresh subprocess: 8 connections of an HTTP protocol (uvicorn's
``HttpToolsProtocol``, or beamish's ``GuardedHttpToolsProtocol`` with its edge limits and
joined writes, sharing one ``EdgeState`` as a server's connections do) on a transport that
only counts what is written. Each turn of the loop, every connection is fed one
``GET / HTTP/1.1`` and the loop runs until the responses are written; the figure is the
thread's CPU time per request, round by round (the median and the range are printed).

- *uvicorn protocol, bare app* and *beamish protocol, bare app*: an ASGI app that answers
  hello at once: what the protocol costs.
- *Starlette* and *beamish*: ``bench/web.py``'s apps (Starlette's route; beamish's
  ``Endpoint`` and ``Router``, each request in its own process), each on its server's
  protocol, as ``bench/web.py`` serves them.

What this leaves out is what ``bench/web.py`` measures on top: the system calls (a read
and one or two writes a request), which on loopback cost as much as the Python here.

``--watchdog python`` runs the beamish case's long-schedule watchdog on its Python thread
instead of the C one (``_watchman.c``), ``--watchdog off`` without a watchdog; the table's
last column is the context switches a second of all the case's threads while it is timed
(Linux's ``/proc``), where a thread that fights the loop for the GIL shows.

``--instructions`` counts instead of timing: each case runs under valgrind's callgrind
(``apt-get install -y valgrind``), once with ``--requests`` and once with three times as
many, with ``PYTHONHASHSEED=0``; the difference of the two totals over the difference of
the requests is the instructions a request, start-up left out. The count moves by less than
0.1% from run to run, whatever else the machine does, so it shows a change the timings
cannot separate from the machine's noise (it does not see cache misses: a case can run
more slowly at the same count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

CASES = {
    "uvicorn-bare": "uvicorn protocol, bare app",
    "beamish-bare": "beamish protocol (edge, joined writes), bare app",
    "starlette": "Starlette on uvicorn's protocol",
    "beamish": "beamish Endpoint + Router on beamish's protocol",
}
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
CONNECTIONS = 8
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]}
_BODY = {"type": "http.response.body", "body": b"Hello, world!"}


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(_START)
    await send(_BODY)


class CountingTransport:
    """What a protocol needs of a transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def _started(app: Any) -> None:
    """Run the app's lifespan startup (beamish's endpoint starts its runtime there)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(scope, inbox.get, outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {message}")


def switches() -> int:
    """Voluntary and involuntary context switches of every thread of this process so far."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/status") as status:
            total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
    return total


def choose_watchdog(kind: str) -> None:
    """The beamish case's watchdog: C's thread (the default), Python's, or none."""
    if kind == "python":
        from beamish._runtime import watchdog

        watchdog._native_watchman = lambda: None  # what BEAMISH_PURE_PYTHON makes it do
    elif kind == "off":
        import web

        web.ENDPOINT.runtime_options["long_schedule"] = None


async def measure(case: str, requests: int, rounds: int) -> dict[str, Any]:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from beamish.web._edge import EdgeLimits, EdgeState, GuardedHttpToolsProtocol

    if case.endswith("-bare"):
        app: Any = bare
    else:
        import web

        app = web.ENDPOINT if case == "beamish" else web.STARLETTE
        await _started(app)
    config = Config(app=app, log_config=None, access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    edge = EdgeState(EdgeLimits())
    connections = []
    for _ in range(CONNECTIONS):
        if case.startswith("beamish"):
            protocol: Any = GuardedHttpToolsProtocol(
                config=config, server_state=state, app_state={}, edge=edge)
        else:
            protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
        transport = CountingTransport()
        protocol.connection_made(transport)
        connections.append((protocol, transport))
    per_request = []
    switched, timed = 0, 0.0
    for k in range(rounds + 1):  # the first round warms up
        began, began_switches, began_wall = time.thread_time(), switches(), time.monotonic()
        for _ in range(requests // CONNECTIONS):
            for protocol, _ in connections:
                protocol.data_received(REQUEST)
            for _ in range(4):  # the requests' tasks run, answer, and the turn ends
                await asyncio.sleep(0)
        if k:
            per_request.append((time.thread_time() - began) / requests * 1e6)
            switched += switches() - began_switches
            timed += time.monotonic() - began_wall
    writes = sum(transport.writes for _, transport in connections)
    return {"us": per_request, "writes_per_request": writes / (requests * (rounds + 1)),
            "switches_per_s": switched / timed}


def run_case(case: str, requests: int, rounds: int, watchdog: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", case, "--requests", str(requests),
         "--rounds", str(rounds), "--watchdog", watchdog],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def instructions(case: str, requests: int) -> int:
    """The instructions a request of ``case`` (callgrind, two sizes; module docstring)."""
    totals = []
    for n in (requests, 3 * requests):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--case", case, "--requests", str(n), "--rounds", "1"],
            capture_output=True, text=True, check=True, timeout=1800,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        ).stderr
        found = re.search(r"Collected : (\d+)", out)
        if found is None:
            raise RuntimeError(f"callgrind printed no total for {case}: {out[-500:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) // (2 * 2 * requests)  # each run is 2 rounds of n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", choices=sorted(CASES), action="append",
                        help="run only these cases (repeatable)")
    parser.add_argument("--watchdog", choices=("c", "python", "off"), default="c",
                        help="the beamish case's watchdog thread (default: C's)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions a request under callgrind instead")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        import uvloop

        choose_watchdog(args.watchdog)
        result = uvloop.run(measure(args.case, args.requests, args.rounds))
        print(json.dumps(result), flush=True)
        os._exit(0)  # the endpoint's runtime is not stopped: nothing to wait for
    load_before = load_average()
    wanted = [case for case in CASES if not args.only or case in args.only]
    for case in wanted:  # each ratio needs its base
        base_case = "starlette" if case in ("starlette", "beamish") else "uvicorn-bare"
        if base_case not in wanted:
            wanted.insert(0, base_case)
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("--instructions needs valgrind: apt-get install -y valgrind")
        requests = min(args.requests, 800)  # under callgrind a request is ~50x slower
        counts = {case: instructions(case, requests) for case in wanted}
        base_of = {"uvicorn-bare": "uvicorn-bare", "beamish-bare": "uvicorn-bare",
                   "starlette": "starlette", "beamish": "starlette"}
        header = [
            f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"Machine: {cpu_model()}; Python {sys.version.split()[0]}",
            f"Instructions a request (callgrind): the runs of {2 * requests:,} and "
            f"{6 * requests:,} requests, their difference over {4 * requests:,}",
            "vs: against uvicorn's protocol (bare app) or Starlette (the apps)",
        ]
        rows = [(CASES[case], f"{counts[case]:,}", f"{counts[case] / counts[base_of[case]]:.2f}x")
                for case in CASES if case in counts]
        print(report(header, ("case", "instructions a request", "vs"), rows, args.markdown))
        return
    results = {case: run_case(case, args.requests, args.rounds, args.watchdog)
               for case in wanted}
    base = {"uvicorn-bare": "uvicorn-bare", "beamish-bare": "uvicorn-bare",
            "starlette": "starlette", "beamish": "starlette"}
    rows = []
    for case, name in CASES.items():
        if case not in results:
            continue
        us = results[case]["us"]
        median = statistics.median(us)
        against = statistics.median(results[base[case]]["us"])
        rows.append((
            name, f"{median:.2f} us (rounds: {min(us):.2f} to {max(us):.2f})",
            f"{results[case]['writes_per_request']:.2f}", f"{median / against:.2f}x",
            f"{results[case]['switches_per_s']:,.0f}",
        ))
    header = [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {cpu_model()}; Python {sys.version.split()[0]}",
        f"{CONNECTIONS} connections, {args.requests:,} requests a round, {args.rounds} rounds "
        "after a warm-up one; thread CPU time per request; each case in a fresh process",
        "vs: against uvicorn's protocol (bare app) or Starlette (the apps)",
        f"beamish's long-schedule watchdog: {args.watchdog}",
        f"Load average before: {load_before}; after: {load_average()}",
    ]
    print(report(header, ("case", "CPU per request", "writes per request", "vs",
                          "context switches/s"), rows,
                 args.markdown))


if __name__ == "__main__":
    main()
