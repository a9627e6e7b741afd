"""What telemetry costs an HTTP request: the beamish hello-world server under wrk, with
nothing attached, then with one no-op handler on one event, then with beamish's default
metrics reported to Prometheus (and the poller), in rounds, in one run.

    .venv/bin/python bench/telemetry_cost.py [--rounds 3] [--seconds 5] [--against REF]

Variants (``bench/web.py``'s server, ``BENCH_TELEMETRY``):

- **off**: no handler; what the ``handlers`` tests on the request path cost;
- **timing only**: a no-op handler on ``beamish.endpoint.exception``, so the request is
  timed and its route noted, but no event is built (none crashes);
- **no-op on stop**: a no-op handler on ``beamish.endpoint.stop``: the timing, the event's
  two dicts and the handler call;
- **default metrics**: ``PrometheusReporter(default_metrics())`` and the ``Poller``, as
  ``bench/web.py``'s "with metrics" row.

``--against REF`` adds "off" on another commit of this repository (a git worktree of REF,
its own ``src`` and ``bench``; the C extension of this tree is copied in), for what the bus
costs with nothing attached. Needs ``wrk``. Figures: server CPU per request, median (min to
max) of the rounds, and each variant's difference from "off".
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--against", metavar="REF", help="also 'off' on this commit")
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
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
            print(f"round {r + 1}/{options.rounds} done", file=sys.stderr)
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
                  f"wrk -t1 -c64, {options.seconds} s a run after 1 s of warm-up; "
                  f"{options.rounds} rounds, the variants in turns"],
                 ["variant", "server CPU per request (µs)", "vs off (µs)", "ratio"],
                 rows, options.markdown))


if __name__ == "__main__":
    main()
