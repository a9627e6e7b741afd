"""OTP benchmarks: GenServer calls, restarts after a crash, and 100,000 supervised servers.

Run ``.venv/bin/python bench/otp.py`` (``--quick`` for a scaled-down run, ``--markdown`` for
the table as Markdown). Each measurement runs in a fresh subprocess; throughput and latency
figures are the median of 3 runs. The peers, on the same workload in the same run:

- **Pykka**: ``ActorRef.ask`` from the main thread to a ``ThreadingActor`` (one OS thread
  per actor), the way Pykka is used for request/response;
- **naive asyncio**: a request/response actor written by hand: one task, one
  ``asyncio.Queue``, and a future per request for the reply;
- for reference, the floor under any call on asyncio: a future, one ``call_soon`` that
  resolves it, and ``await`` (no actor, no queue);
- **the BEAM**: ``gen_server:call``, a ``one_for_one`` supervisor's restarts and a
  ``simple_one_for_one`` supervisor's children, on OTP's ``erl`` (``bench/erlang/
  local_bench.erl``), on one scheduler (the anchor of the "vs BEAM" column) and on every
  core.

Targets (from the issue): >= 200,000 calls/s and >= 10x Pykka; restart p99 <= 1 ms; an idle
supervised GenServer <= 1,500 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pykka
from _beam import SCHEDULERS, beam_run, beam_version
from _report import cpu_model, load_average
from _report import report as report_table

import beamish
from beamish import DynamicSupervisor, GenServer, NoReply, Ok, Reply, Supervisor

Result = dict[str, float]

# -- the servers ------------------------------------------------------------------------------


class Echo(GenServer):
    __slots__ = ()

    def init(self, arg: Any) -> Ok:
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        return Reply(request, state)


class Crashy(GenServer):
    """Reports when its init ran; crashes on any cast."""

    __slots__ = ()

    def init(self, report: beamish.Pid) -> Ok:
        beamish.send(report, ("up", beamish.self(), time.perf_counter()))
        return Ok(report)

    def handle_cast(self, request: Any, state: Any) -> NoReply:
        raise beamish.ProcessExit("crash")


class Idle(GenServer):
    __slots__ = ()

    def init(self, arg: Any) -> Ok:
        return Ok(None)


# -- beamish measurements ---------------------------------------------------------------------


async def calls_main(n: int, callers: int) -> Result:
    server = await Echo.start_link(None)

    async def caller(count: int) -> None:
        for i in range(count):
            await GenServer.call(server, i)

    started = time.perf_counter()
    if callers == 1:
        await caller(n)
    else:
        await asyncio.gather(*(caller(n // callers) for _ in range(callers)))
    seconds = time.perf_counter() - started
    await GenServer.stop(server)
    return {"rate": n / seconds}


async def restart_main(n: int) -> Result:
    import logging

    logging.getLogger("beamish").setLevel(logging.CRITICAL)  # n crash reports otherwise
    me = beamish.self()
    sup = await Supervisor.start_link([(Crashy, me)], max_restarts=n * 2, max_seconds=3600)
    up = await beamish.receive(("up", beamish.ANY, beamish.ANY))
    latencies = []
    for _ in range(n):
        crashed_at = time.perf_counter()
        GenServer.cast(up[1], "crash")
        up = await beamish.receive(("up", beamish.ANY, beamish.ANY), timeout=5)
        latencies.append(up[2] - crashed_at)
    await Supervisor.stop(sup)
    latencies.sort()
    return {
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
        "max": latencies[-1],
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def supervised_main(n: int, traced: bool) -> Result:
    sup = await DynamicSupervisor.start_link()
    await DynamicSupervisor.start_child(sup, (Idle, None))  # warm up
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
    started = time.perf_counter()
    for _ in range(n):
        await DynamicSupervisor.start_child(sup, (Idle, None))
    seconds = time.perf_counter() - started
    after = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
    if traced:
        tracemalloc.stop()
    await DynamicSupervisor.stop(sup)
    return {"seconds": seconds, "bytes_per_server": (after - before) / n}


def run_beamish(main: Callable[..., Any], *args: Any) -> Result:
    result: Result = beamish.run(main, *args, long_schedule=None)
    return result


# -- naive asyncio: a request/response actor written by hand -----------------------------------


async def naive_calls_main(n: int, callers: int) -> Result:
    inbox: asyncio.Queue[tuple[Any, asyncio.Future[Any]] | None] = asyncio.Queue()

    async def server() -> None:
        while True:
            item = await inbox.get()
            if item is None:
                return
            request, reply = item
            reply.set_result(request)

    loop = asyncio.get_running_loop()
    task = loop.create_task(server())

    async def call(request: Any) -> Any:
        reply: asyncio.Future[Any] = loop.create_future()
        inbox.put_nowait((request, reply))
        return await asyncio.wait_for(reply, 5.0)  # a call has a timeout, like GenServer's

    async def caller(count: int) -> None:
        for i in range(count):
            await call(i)

    started = time.perf_counter()
    if callers == 1:
        await caller(n)
    else:
        await asyncio.gather(*(caller(n // callers) for _ in range(callers)))
    seconds = time.perf_counter() - started
    inbox.put_nowait(None)
    await task
    return {"rate": n / seconds}


def run_naive(n: int, callers: int) -> Result:
    with asyncio.Runner(loop_factory=beamish.new_event_loop) as runner:
        return runner.run(naive_calls_main(n, callers))


async def floor_main(n: int) -> Result:
    """No actor at all: a future, one ``call_soon`` that resolves it, ``await``. What one
    round trip through the event loop costs, under any call written on asyncio."""
    loop = asyncio.get_running_loop()

    def answer(future: asyncio.Future[int], value: int) -> None:
        future.set_result(value)

    started = time.perf_counter()
    for i in range(n):
        future = loop.create_future()
        loop.call_soon(answer, future, i)
        await future
    return {"rate": n / (time.perf_counter() - started)}


def run_floor(n: int) -> Result:
    with asyncio.Runner(loop_factory=beamish.new_event_loop) as runner:
        return runner.run(floor_main(n))


# -- Pykka ----------------------------------------------------------------------------------


class PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_calls(n: int, callers: int) -> Result:
    ref = PykkaEcho.start()

    def caller(count: int) -> None:
        for i in range(count):
            ref.ask(i, timeout=5.0)

    started = time.perf_counter()
    if callers == 1:
        caller(n)
    else:
        threads = [threading.Thread(target=caller, args=(n // callers,)) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.perf_counter() - started
    ref.stop()
    return {"rate": n / seconds}


# -- jobs, run each in a fresh subprocess ------------------------------------------------------

JOBS: dict[str, Callable[..., Result]] = {
    "calls-beamish": lambda n, callers: run_beamish(calls_main, n, callers),
    "calls-asyncio": run_naive,
    "calls-floor": run_floor,
    "calls-pykka": pykka_calls,
    "restart": lambda n: run_beamish(restart_main, n),
    "supervised": lambda n, traced: run_beamish(supervised_main, n, bool(traced)),
    "calls-beam": lambda n, callers, schedulers: beam_run(
        ["call", str(n), str(callers)], schedulers),
    "restart-beam": lambda n, schedulers: beam_run(["restart", str(n)], schedulers),
    "supervised-beam": lambda n, schedulers: beam_run(["supervised", str(n)], schedulers),
}


def run_job(name: str, **params: Any) -> Result:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        json.dumps({"job": name, "params": params}),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr.strip().splitlines()[-1:]}")
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(repeats: int, name: str, **params: Any) -> Result:
    runs = []
    for i in range(repeats):
        print(f"  {name} {params} run {i + 1}/{repeats}", file=sys.stderr, flush=True)
        runs.append(run_job(name, **params))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


# -- the report -----------------------------------------------------------------------------


def verdict(ok: bool, text: str) -> str:
    return f"{text}: {'met' if ok else 'NOT met'}"


def report(quick: bool, markdown: bool) -> str:
    load_before = load_average()
    repeats = 1 if quick else 3
    calls = 20_000 if quick else 200_000
    pykka_calls_n = 5_000 if quick else 20_000
    restarts = 200 if quick else 2_000
    servers = 10_000 if quick else 100_000
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    one_caller = 0.0

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}x" if base else ""

    for callers in (1, 100):
        beam = median_of(repeats, "calls-beamish", n=calls, callers=callers)["rate"]
        naive = median_of(repeats, "calls-asyncio", n=calls, callers=callers)["rate"]
        pyk = median_of(repeats, "calls-pykka", n=pykka_calls_n, callers=min(callers, 10))["rate"]
        erl = {s: median_of(repeats, "calls-beam", n=calls, callers=callers,
                            schedulers=s)["rate"] for s in SCHEDULERS}
        anchor = erl[SCHEDULERS[0]]
        label = (
            "call round trips, 1 caller"
            if callers == 1
            else ("call round trips, 100 callers (Pykka: 10 threads)")
        )
        if callers == 1:
            one_caller = beam
        target = (verdict(beam >= 200_000, ">= 200,000/s") + "; " +
                  verdict(beam >= 0.5 * anchor, ">= 0.5x the BEAM's")) if callers == 1 else ""
        scale = f"{calls:,} calls"
        rows.append((label, "beamish GenServer.call", scale, f"{beam:,.0f}/s", "1.00x",
                     ratio(beam, anchor), target))
        rows.append((label, "naive asyncio actor", scale, f"{naive:,.0f}/s",
                     ratio(naive, beam), ratio(naive, anchor), ""))
        rows.append((label, "Pykka ask", f"{pykka_calls_n:,} calls", f"{pyk:,.0f}/s",
                     f"{pyk / beam:.3f}x", ratio(pyk, anchor),
                     verdict(beam / pyk >= 10, f"beamish >= 10x this ({beam / pyk:.0f}x)")))
        for s, rate in erl.items():
            rows.append((label, f"BEAM gen_server:call (erl +S {s})", scale, f"{rate:,.0f}/s",
                         ratio(rate, beam), ratio(rate, anchor), ""))
    floor = median_of(repeats, "calls-floor", n=calls)["rate"]
    rows.append(
        (
            "event-loop round trip, for reference",
            "future + call_soon + await",
            f"{calls:,} round trips",
            f"{floor:,.0f}/s ({1e6 / floor:.1f} us each; a 1-caller GenServer.call adds "
            f"{1e6 / one_caller - 1e6 / floor:.1f} us)",
            f"{floor / one_caller:.2f}x",
            "",
            "",
        )
    )
    restart = median_of(repeats, "restart", n=restarts)
    erl_restart = {s: median_of(repeats, "restart-beam", n=restarts, schedulers=s)
                   for s in SCHEDULERS}
    anchor_p99 = erl_restart[SCHEDULERS[0]]["p99"]

    def latencies(found: Result) -> str:
        return (f"p50 {found['p50'] * 1e6:.0f} us, p99 {found['p99'] * 1e6:.0f} us, "
                f"max {found['max'] * 1e6:.0f} us")

    label = "crash to restart (one_for_one)"
    rows.append((label, "beamish Supervisor", f"{restarts:,} crashes", latencies(restart), "",
                 f"p99 {ratio(restart['p99'], anchor_p99)}",
                 verdict(restart["p99"] <= 0.001, "p99 <= 1 ms")))
    for s, found in erl_restart.items():
        rows.append((label, f"BEAM supervisor (erl +S {s})", f"{restarts:,} crashes",
                     latencies(found), f"p99 {ratio(found['p99'], restart['p99'])}",
                     f"p99 {ratio(found['p99'], anchor_p99)}", ""))
    timed = median_of(repeats, "supervised", n=servers, traced=0)
    traced = median_of(1, "supervised", n=servers, traced=1)
    erl_sup = median_of(repeats, "supervised-beam", n=servers, schedulers=SCHEDULERS[0])
    label = "GenServers under one DynamicSupervisor"
    rows.append(
        (
            label,
            "beamish",
            f"{servers:,} servers",
            f"started in {timed['seconds']:.2f} s, {timed['bytes_per_server']:,.0f} bytes/server "
            f"(RSS), {traced['bytes_per_server']:,.0f} (tracemalloc)",
            "",
            f"bytes {ratio(timed['bytes_per_server'], erl_sup['bytes_per_server'])}, "
            f"time {ratio(timed['seconds'], erl_sup['seconds'])}",
            verdict(
                max(timed["bytes_per_server"], traced["bytes_per_server"]) <= 1500, "<= 1,500 bytes"
            ),
        )
    )
    rows.append((label.replace("DynamicSupervisor", "simple_one_for_one supervisor"),
                 f"BEAM (erl +S {SCHEDULERS[0]})", f"{servers:,} servers",
                 f"started in {erl_sup['seconds']:.2f} s, {erl_sup['bytes_per_server']:,.0f} "
                 "bytes/server (erlang:memory(processes))", "", "1.00x", ""))
    version = importlib.metadata.version
    header = [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}",
        f"Python {platform.python_version()}, uvloop {version('uvloop')}, "
        f"pykka {version('pykka')}, beamish {version('beamish')}; the BEAM: {beam_version()}",
        f"Each figure is {'one run' if repeats == 1 else 'the median of 3 runs'}, each run in a "
        "fresh subprocess; ratios are per second, so scaled-down peers compare fairly; "
        f"vs BEAM: against the BEAM on {SCHEDULERS[0]} scheduler, in this run",
    ]
    columns = ("workload", "implementation", "scale", "result", "vs beamish",
               f"vs BEAM (+S {SCHEDULERS[0]})", "target")
    return report_table(header, columns, rows, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description="OTP benchmarks (see the module docstring).")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(JOBS[job["job"]](**job["params"])), flush=True)
        return
    print(report(args.quick, args.markdown))


if __name__ == "__main__":
    main()
