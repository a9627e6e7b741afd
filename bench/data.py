"""Data benchmarks: primary-key queries through beamish's pool against asyncpg's own pool.

Run ``.venv/bin/python bench/data.py`` (``--quick`` for a scaled-down run, ``--markdown``
for the table as Markdown, ``--dsn`` for another server than the local ``test`` database).
Each measurement runs in a fresh subprocess; every figure is the median of 3 runs, taken
in rounds (each implementation once per round).

The workload: ``SELECT id, name FROM bench_data WHERE id = $1`` with a random id among
10,000 rows, from 1, 10 and 100 concurrent callers, through a pool of 10 connections:

- **beamish**: each caller is a beamish process calling ``db.fetch_one(...)``: a checkout
  call to the pool's manager, the query on the driver connection, a checkin message to the
  connection's process (no reset query: the connection goes back as it was);
- **asyncpg pool**: each caller is an asyncio task calling ``pool.fetchrow(...)`` on
  ``asyncpg.create_pool``: what an asyncpg user writes. On release asyncpg resets the
  connection with one more round trip (``Connection.reset``: ``RESET ALL``, ``UNLISTEN *``...);
- **asyncpg pool, no reset**: the same with ``reset=`` a no-op, so that release costs no
  round trip, as beamish's checkin: the like-for-like comparison.

Latency, at 1 caller, in one process, interleaved: the query on a bare asyncpg connection,
through beamish's pool, and through asyncpg's; beamish's added latency is its p99 minus the
bare connection's, and the time its checkout call and checkin take is measured on its own.

Targets (from the issue): beamish >= 85% of asyncpg's pool throughput at 10 and 100 callers;
p99 latency added by the message passing <= 0.5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from _report import cpu_model
from _report import report as report_table

import beamish
from beamish.data import Pool, Postgres

Result = dict[str, float]
DSN = "postgresql://postgres@127.0.0.1:5432/test"
ROWS = 10_000
SIZE = 10
QUERY = "SELECT id, name FROM bench_data WHERE id = $1"


# -- setup ------------------------------------------------------------------------------------


async def setup_main(dsn: str) -> Result:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_data")
        await conn.execute("CREATE TABLE bench_data (id integer PRIMARY KEY, name text NOT NULL)")
        await conn.copy_records_to_table(
            "bench_data", records=[(i, f"row {i}") for i in range(1, ROWS + 1)]
        )
        await conn.execute("ANALYZE bench_data")
    finally:
        await conn.close()
    return {}


def run_asyncio(main: Any) -> Result:
    with asyncio.Runner(loop_factory=beamish.new_event_loop) as runner:
        result: Result = runner.run(main)
        return result


# -- throughput -------------------------------------------------------------------------------


async def beamish_main(dsn: str, n: int, callers: int) -> Result:
    db = Pool(Postgres(dsn), name="bench", size=SIZE)
    await db.start_link()
    await warm_up(db.fetch_one)
    me = beamish.self()

    async def caller(count: int, seed: int) -> None:
        ids = random.Random(seed)
        for _ in range(count):
            await db.fetch_one(QUERY, ids.randint(1, ROWS))
        beamish.send(me, "done")

    started = time.perf_counter()
    for i in range(callers):
        beamish.spawn(caller, n // callers, i)
    for _ in range(callers):
        await beamish.receive("done", timeout=120)
    seconds = time.perf_counter() - started
    await db.stop()
    return {"rate": n // callers * callers / seconds}


async def asyncpg_main(dsn: str, n: int, callers: int, reset: bool) -> Result:
    async def no_reset(_conn: Any) -> None:
        return None

    options: dict[str, Any] = {} if reset else {"reset": no_reset}
    pool = await asyncpg.create_pool(dsn, min_size=SIZE, max_size=SIZE, **options)
    await warm_up(pool.fetchrow)

    async def caller(count: int, seed: int) -> None:
        ids = random.Random(seed)
        for _ in range(count):
            await pool.fetchrow(QUERY, ids.randint(1, ROWS))

    started = time.perf_counter()
    await asyncio.gather(*(caller(n // callers, i) for i in range(callers)))
    seconds = time.perf_counter() - started
    await pool.close()
    return {"rate": n // callers * callers / seconds}


async def warm_up(fetch_one: Callable[..., Any]) -> None:
    """Open every connection and prepare the statement on it."""
    await asyncio.gather(*(fetch_one(QUERY, i) for i in range(1, 4 * SIZE)))


# -- latency ----------------------------------------------------------------------------------


async def latency_main(dsn: str, n: int) -> Result:
    db = Pool(Postgres(dsn), name="bench", size=SIZE)
    await db.start_link()
    pool = await asyncpg.create_pool(dsn, min_size=SIZE, max_size=SIZE)
    bare = await asyncpg.connect(dsn)
    checkouts: list[float] = []
    samples: dict[str, list[float]] = {"bare": [], "beamish": [], "asyncpg": []}
    ways: dict[str, Callable[..., Any]] = {
        "bare": bare.fetchrow,
        "beamish": db.fetch_one,
        "asyncpg": pool.fetchrow,
    }
    ids = random.Random(1)
    for _ in range(3):
        await warm_up(db.fetch_one)
        await warm_up(pool.fetchrow)
    for _ in range(n // 1000):
        for name, fetch_one in ways.items():  # in rounds: drift hits all three alike
            times = samples[name]
            for _ in range(1000):
                started = time.perf_counter()
                await fetch_one(QUERY, ids.randint(1, ROWS))
                times.append(time.perf_counter() - started)
        for _ in range(1000):  # checkout call + checkin message, with no query between
            started = time.perf_counter()
            async with db.checkout():
                pass
            checkouts.append(time.perf_counter() - started)
    await bare.close()
    await pool.close()
    await db.stop()
    result: Result = {}
    for name, times in [*samples.items(), ("checkout", checkouts)]:
        times.sort()
        result[f"{name}_p50"] = times[len(times) // 2]
        result[f"{name}_p99"] = times[int(len(times) * 0.99)]
    return result


def run_beamish(main: Callable[..., Any], *args: Any) -> Result:
    result: Result = beamish.run(main, *args, long_schedule=None)
    return result


# -- jobs, run each in a fresh subprocess -------------------------------------------------------

JOBS: dict[str, Callable[..., Result]] = {
    "setup": lambda dsn: run_asyncio(setup_main(dsn)),
    "beamish": lambda dsn, n, callers: run_beamish(beamish_main, dsn, n, callers),
    "asyncpg": lambda dsn, n, callers: run_asyncio(asyncpg_main(dsn, n, callers, True)),
    "asyncpg-noreset": lambda dsn, n, callers: run_asyncio(asyncpg_main(dsn, n, callers, False)),
    "latency": lambda dsn, n: run_beamish(latency_main, dsn, n),
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
        raise RuntimeError(f"{name} failed: {done.stderr.strip().splitlines()[-3:]}")
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def rounds(repeats: int, names: list[str], **params: Any) -> dict[str, Result]:
    """Each job once per round, ``repeats`` rounds; the median of each figure."""
    runs: dict[str, list[Result]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names:
            print(f"  {name} {params} run {i + 1}/{repeats}", file=sys.stderr, flush=True)
            runs[name].append(run_job(name, **params))
    return {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }


# -- the report -------------------------------------------------------------------------------


def verdict(ok: bool, text: str) -> str:
    return f"{text}: {'met' if ok else 'NOT met'}"


def report(dsn: str, quick: bool, markdown: bool) -> str:
    repeats = 1 if quick else 3
    queries = 5_000 if quick else 50_000
    run_job("setup", dsn=dsn)
    rows: list[tuple[str, ...]] = []
    for callers in (1, 10, 100):
        found = rounds(
            repeats, ["beamish", "asyncpg", "asyncpg-noreset"], dsn=dsn, n=queries, callers=callers
        )
        beam = found["beamish"]["rate"]
        label = f"PK query, {callers} caller{'s' if callers > 1 else ''}"
        for name, title in (
            ("beamish", "beamish Pool (processes)"),
            ("asyncpg", "asyncpg pool"),
            ("asyncpg-noreset", "asyncpg pool, no reset"),
        ):
            rate = found[name]["rate"]
            target = ""
            if name == "asyncpg" and callers > 1:
                target = verdict(beam >= 0.85 * rate, f">= 85% of this ({beam / rate:.0%})")
            rows.append(
                (
                    label,
                    title,
                    f"{queries:,} queries",
                    f"{rate:,.0f}/s",
                    f"{rate / beam:.2f}x",
                    target,
                )
            )
    lat = rounds(repeats, ["latency"], dsn=dsn, n=queries // 5)["latency"]
    us = 1e6
    for name, title in (
        ("bare", "bare asyncpg connection"),
        ("beamish", "beamish Pool"),
        ("asyncpg", "asyncpg pool"),
    ):
        p50, p99 = lat[f"{name}_p50"] * us, lat[f"{name}_p99"] * us
        rows.append(
            (
                "latency, 1 caller",
                title,
                f"{queries // 5:,} queries",
                f"p50 {p50:,.0f} us, p99 {p99:,.0f} us",
                "",
                "",
            )
        )
    added = lat["beamish_p99"] - lat["bare_p99"]
    rows.append(
        (
            "latency added by the pool",
            "beamish Pool",
            "p99 - bare p99",
            f"{added * us:,.0f} us",
            "",
            verdict(added <= 0.0005, "<= 0.5 ms"),
        )
    )
    rows.append(
        (
            "checkout call + checkin message",
            "beamish Pool",
            f"{queries // 5:,} blocks",
            f"p50 {lat['checkout_p50'] * us:,.0f} us, p99 {lat['checkout_p99'] * us:,.0f} us",
            "",
            verdict(lat["checkout_p99"] <= 0.0005, "<= 0.5 ms"),
        )
    )
    version = importlib.metadata.version
    header = [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; PostgreSQL {server_version(dsn)} "
        "on the same machine (127.0.0.1)",
        f"Python {platform.python_version()}, uvloop {version('uvloop')}, asyncpg "
        f"{version('asyncpg')}, beamish {version('beamish')}",
        f"Pool size {SIZE} for both; each figure is "
        f"{'one run' if repeats == 1 else 'the median of 3 runs'}, each run in a fresh "
        "subprocess, in rounds",
    ]
    columns = ("workload", "implementation", "scale", "result", "vs beamish", "target")
    return report_table(header, columns, rows, markdown)


def server_version(dsn: str) -> str:
    async def ask() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(ask()).split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description="Data benchmarks (see the module docstring).")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(JOBS[job["job"]](**job["params"])), flush=True)
        return
    print(report(args.dsn, args.quick, args.markdown))


if __name__ == "__main__":
    main()
