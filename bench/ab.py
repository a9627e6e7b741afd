"""A/B of the hot paths: bench/runtime.py's beamish rows, for two source trees, in turns.

    .venv/bin/python bench/ab.py BEFORE_SRC AFTER_SRC [--rounds 5] [--only ping-pong ...]

Each tree is a checkout's ``src`` directory with its C extension built in place (for a fair
comparison build both the same way, e.g. ``gcc -shared -fPIC -O2 -I<python include>
src/beamish/_runtime/_speedups.c -o src/beamish/_runtime/_speedups<EXT_SUFFIX>``). The two
run alternately, ``--rounds`` times each, so the machine's noise falls on both; the table
gives each row's median, its spread (min to max) and the after/before ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).with_name("runtime.py")
ROW = re.compile(
    r"^(?P<workload>[a-z][\w ,:()'-]*?)\s{2,}(?P<peer>beamish \((?:actor|task)\))\s{2,}"
    r"(?P<size>.+?)\s{2,}(?P<value>[\d,.]+) (?P<unit>[\w/ ]+?)(?:\s{2,}|$)"
)


def run_once(src: str, only: list[str], quick: bool) -> dict[tuple[str, str], tuple[float, str]]:
    args = [sys.executable, str(BENCH), "--beamish-only"]
    for workload in only:
        args += ["--only", workload]
    if quick:
        args.append("--quick")
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m and "memory" not in m["workload"]:
            rows[(m["workload"].strip(), m["peer"])] = (
                float(m["value"].replace(",", "")), m["unit"].strip()
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", action="append", default=[],
                        choices=["spawn", "ping-pong", "fan-in", "ring"])
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    results: dict[str, dict[tuple[str, str], list[float]]] = {"before": {}, "after": {}}
    units: dict[tuple[str, str], str] = {}
    for n in range(options.rounds):
        for label in ("before", "after") if n % 2 == 0 else ("after", "before"):
            src = getattr(options, label)
            for key, (value, unit) in run_once(src, options.only, options.quick).items():
                results[label].setdefault(key, []).append(value)
                units[key] = unit
            print(f"round {n + 1}/{options.rounds}: {label} done", file=sys.stderr)
    load = os.getloadavg()
    print(f"A/B, {options.rounds} rounds each, load average {load[0]:.2f} {load[1]:.2f}")
    print(f"{'row':58} {'before (median, spread)':>30} {'after (median, spread)':>30} ratio")
    for key in sorted(results["before"]):
        before, after = results["before"][key], results["after"].get(key)
        if not after:
            continue
        b, a = statistics.median(before), statistics.median(after)
        name = f"{key[0]} / {key[1]} ({units[key]})"
        print(f"{name:58} {b:>14,.0f} ({min(before):,.0f}-{max(before):,.0f})"
              f" {a:>14,.0f} ({min(after):,.0f}-{max(after):,.0f}) {a / b:5.2f}")


if __name__ == "__main__":
    main()
