"""The seed's task list, persisted (examples/seed/task_list_persisted.py), runs and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "seed" / "task_list_persisted.py"


def run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no crash report, no warning
    return result.stdout


def test_task_list_persisted_keeps_the_tasks_across_a_restart():
    assert run() == (
        "- write the examples\n- run them in the tests\n2 tasks left\n"
        "after a restart: 2 tasks still there\n"
    )


def test_task_list_persisted_keeps_them_in_the_file_across_runs(tmp_path):
    path = str(tmp_path / "tasks.db")
    run(path)
    second = run(path)  # two more of each added: the first run's are still there
    assert second.splitlines()[-1] == "after a restart: 4 tasks still there"
