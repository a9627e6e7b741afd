"""What telemetry costs an HTTP request, two ways, in one run:

    .venv/bin/python bench/telemetry_cost.py [--rounds 3] [--seconds 5] [--slices 15]
                                             [--against REF]

1. **Under wrk**: the beamish hello-world server of ``bench/web.py`` (``BENCH_TELEMETRY``
   picks the variant), server CPU per request, in rounds, the variants in turns. This is the
   whole cost of a request; on this shared machine its runs spread by +-15%, more than the
   differences sought.
2. **In one process**: the same endpoint (``bench/web.py``'s ``ENDPOINT``, its lifespan run)
   driven by raw ASGI calls on one event loop, the variants attached and detached in turns
   between slices of 3,000 requests: process CPU per request. No sockets, no HTTP parsing,
   the same code for the request's process, router and telemetry; its *differences* are
   what telemetry adds, measured without the noise of the first. The last column gives
   each difference as a share of the first part's "off".

Variants:

- **off**: no handler; what the ``handlers`` tests on the request path cost;
- **timing only**: a no-op handler on ``beamish.endpoint.exception``, so the request is
  timed and its route noted, but no event is built (none crashes);
- **no-op on stop**: a no-op handler on ``beamish.endpoint.stop``: the timing, the event's
  two dicts and the handler call;
- **default metrics**: ``PrometheusReporter(default_metrics())`` (and, under wrk, the
  ``Poller``), as ``bench/web.py``'s "with metrics" row.

``--against REF`` adds "off" (and, in one process, "default metrics") on another commit of
this repository (a git worktree of REF, its own ``src`` and ``bench``; the C extension of
this tree is copied in). Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "off": "",
    "timing only": "noop:beamish.endpoint.exception",
    "no-op on stop": "noop:beamish.endpoint.stop",
    "metrics, no poller": "metrics-only",
    "default metrics": "metrics",
}
ONE_RUN = (
    "import sys; sys.path.insert(0, {bench!r}); import web; "
    "print(web.http_run('beamish', {seconds}, 1, None)['cpu_per_request'])"
)


def run(src: Path, bench: Path, telemetry: str, seconds: int) -> float:
    """Server CPU seconds per request of one wrk run of the tree at ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src), BENCH_TELEMETRY=telemetry)
    done = subprocess.run(
        [sys.executable, "-c", ONE_RUN.format(bench=str(bench), seconds=seconds)],
        env=env, cwd=bench, capture_output=True, text=True, check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


IN_PROCESS_SLICE = 3_000  # requests a slice
SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")],
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
}


def in_process_child(slices: int, variants: list[str]) -> None:
    """Run in a child, in the tree's ``bench`` directory: print, per variant, one line of
    process CPU seconds per request, one figure per slice."""
    import asyncio

    import web  # bench/web.py of the tree under test
    from beamish import telemetry
    from beamish.testing import ASGIClient

    def switch(variant: str, on: bool) -> None:
        if variant in ("metrics", "metrics-only"):
            web.METRICS.attach() if on else web.METRICS.detach()
        elif variant.startswith("noop:"):
            if on:
                telemetry.attach("bench.noop", tuple(variant[5:].split(".")), _noop)
            else:
                telemetry.detach("bench.noop")

    async def main() -> dict[str, list[float]]:
        app = web.ENDPOINT
        request = {"type": "http.request", "body": b"", "more_body": False}

        async def receive() -> dict[str, object]:
            return request

        async def send(message: object) -> None:
            pass

        async def one_slice(count: int) -> float:
            began = time.process_time()
            for _ in range(count):
                await app(dict(SCOPE), receive, send)
            return (time.process_time() - began) / count

        found: dict[str, list[float]] = {v: [] for v in variants}
        async with ASGIClient(app):
            await one_slice(IN_PROCESS_SLICE)  # warm-up
            for _ in range(slices):
                for variant in variants:
                    switch(variant, True)
                    found[variant].append(await one_slice(IN_PROCESS_SLICE))
                    switch(variant, False)
        return found

    for variant, figures in asyncio.run(main()).items():
        print(variant, *figures)


def _noop(*args: object) -> None:
    pass


def in_process(src: Path, bench: Path, slices: int, variants: list[str]) -> dict[str, list[float]]:
    """Per variant, CPU seconds per request of each slice, from a child on the tree ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--in-process-child", str(slices),
         *variants], env=env, cwd=bench, capture_output=True, text=True, check=True,
    )
    found = {}
    for line in done.stdout.strip().splitlines():
        variant, *figures = line.split(" ")
        found[variant or "off"] = [float(f) for f in figures]
    return found


def worktree(ref: str, where: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(where), ref], cwd=ROOT,
                   check=True)
    for built in (ROOT / "src" / "beamish" / "_runtime").glob("_speedups*.so"):
        shutil.copy(built, where / "src" / "beamish" / "_runtime")
    return where


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1e6:.1f} ({min(values) * 1e6:.1f} to "
            f"{max(values) * 1e6:.1f})")


def main() -> None:
    if sys.argv[1:2] == ["--in-process-child"]:
        in_process_child(int(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds (default 3)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds a wrk run")
    parser.add_argument("--slices", type=int, default=15,
                        help="in-process slices of 3,000 requests a variant (default 15)")
    parser.add_argument("--against", metavar="REF", help="also 'off' on this commit")
    parser.add_argument("--only", action="append", choices=list(VARIANTS), default=[],
                        help="measure this variant (repeatable; 'off' always is)")
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
    if options.only:
        for name in [v for v in VARIANTS if v != "off" and v not in options.only]:
            del VARIANTS[name]
    if shutil.which("wrk") is None:
        raise SystemExit("bench/telemetry_cost.py needs wrk: apt-get install wrk")
    load = load_average()
    trees = {"": (ROOT / "src", ROOT / "bench")}
    scratch = tempfile.mkdtemp(prefix="beamish-against-")
    try:
        if options.against:
            old = worktree(options.against, Path(scratch) / "tree")
            trees[options.against] = (old / "src", old / "bench")
        results: dict[str, list[float]] = {}
        for r in range(options.rounds):
            for name, telemetry in VARIANTS.items():
                results.setdefault(name, []).append(run(*trees[""], telemetry, options.seconds))
            if options.against:
                label = f"off, on {options.against}"
                results.setdefault(label, []).append(
                    run(*trees[options.against], "", options.seconds))
            print(f"wrk round {r + 1}/{options.rounds} done", file=sys.stderr)
        specs = [spec or "off" for spec in VARIANTS.values()]
        figures = in_process(*trees[""], options.slices, specs)
        inside = {name: figures[spec or "off"] for name, spec in VARIANTS.items()}
        if options.against:
            before = in_process(*trees[options.against], options.slices, ["off", "metrics"])
            inside[f"off, on {options.against}"] = before["off"]
            inside[f"default metrics, on {options.against}"] = before["metrics"]
    finally:
        if options.against:
            subprocess.run(["git", "worktree", "remove", "--force", str(Path(scratch) / "tree")],
                           cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    off = statistics.median(results["off"])
    rows = [[name, spread(values), f"{(statistics.median(values) - off) * 1e6:+.1f}",
             f"{statistics.median(values) / off:.2f}x"] for name, values in results.items()]
    print(report([f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                  f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load} before",
                  f"1. under wrk -t1 -c64, {options.seconds} s a run after 1 s of warm-up; "
                  f"{options.rounds} rounds, the variants in turns"],
                 ["variant", "server CPU per request (µs)", "vs off (µs)", "ratio"],
                 rows, options.markdown))
    print()
    inside_off = statistics.median(inside["off"])
    rows = [[name, spread(values), f"{(statistics.median(values) - inside_off) * 1e6:+.2f}",
             f"{(statistics.median(values) - inside_off) / off * 100:+.1f}%"]
            for name, values in inside.items()]
    print(report([f"2. in one process: {options.slices} slices of {IN_PROCESS_SLICE:,} "
                  "requests a variant, in turns; the share is of part 1's 'off'"],
                 ["variant", "CPU per request (µs)", "vs off (µs)", "share of a request"],
                 rows, options.markdown))


if __name__ == "__main__":
    main()
