"""The runnable examples run, and say what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(relative: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / relative)], capture_output=True, text=True, timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_processes_demo_shows_a_crash_that_does_not_spread():
    out = run_example("examples/processes_demo.py")
    assert "spawned 100,000 actors" in out
    assert "the last one says: ('count', 1)" in out
    assert "carries on: ('count', 1)" in out
    assert "we trapped: Exit(" in out
    assert "after the restart: ('done', 'squarer', 64)" in out
    assert "crashed: TypeError" in out  # the crash was logged
