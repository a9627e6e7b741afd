"""The BEAM as a peer: ``bench/erlang/local_bench.erl`` run by OTP's ``erl`` on the same
workloads as beamish, on one scheduler (``+S 1``: one core, as one beamish node) and on
all of them (``+S N``). Shared by ``runtime.py`` and ``otp.py``.

``erl`` comes with OTP (``apt-get install erlang-base``); without it the BEAM's rows say so
and the rest of the table is still measured.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["SCHEDULERS", "beam_run", "beam_version"]

HERE = Path(__file__).resolve().parent
SCHEDULERS = (1, os.cpu_count() or 1)


@functools.cache
def _compiled() -> str:
    erlc = shutil.which("erlc")
    if erlc is None or shutil.which("erl") is None:
        raise RuntimeError("erl is not installed (apt-get install erlang-base)")
    where = tempfile.mkdtemp(prefix="beamish-beam-")
    subprocess.run([erlc, "-o", where, str(HERE / "erlang" / "local_bench.erl")], check=True,
                   capture_output=True)
    return where


def beam_run(args: list[str], schedulers: int, timeout: float = 600) -> dict[str, float]:
    """Run one workload (``["pingpong", "1000000"]``) on a fresh BEAM with ``schedulers``
    schedulers; the figures it printed."""
    quoted = ", ".join(f'"{a}"' for a in args)
    done = subprocess.run(
        # +P: room for the million processes of the spawn workload (the default is 262,144)
        ["erl", "+S", f"{schedulers}:{schedulers}", "+P", "4000000", "-noshell",
         "-pa", _compiled(),
         "-eval", f"local_bench:main([{quoted}])"],
        capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"erl failed: {(done.stderr or done.stdout).strip()[-300:]}")
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if value:
            found[key] = float(value)
    return found


def beam_version() -> str:
    try:
        done = subprocess.run(
            ["erl", "-noshell", "-eval",
             'io:format("~s/erts-~s", [erlang:system_info(otp_release), '
             'erlang:system_info(version)]), halt().'],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return f"OTP {done.stdout.strip()}" if done.returncode == 0 else "not installed"
