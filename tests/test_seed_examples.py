"""The seed document's examples (examples/seed/) run and print what their Elixir originals do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed" / name)], capture_output=True,
        text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no crash report, no warning
    return result.stdout


def test_concurrency_example_runs_ten_processes_at_once():
    lines = run_example("concurrency_example.py").splitlines()
    running = [f"Process {i} is running" for i in range(1, 11)]
    finished = [f"Process {i} has finished" for i in range(1, 11)]
    assert sorted(lines) == sorted(running + finished)
    # every process says it runs before any says it finished: the ten sleeps overlap
    assert set(lines[:10]) == set(running) and set(lines[10:]) == set(finished)


def test_counter_prints_its_value():
    assert run_example("counter.py") == "Counter value: 1\n"


def test_task_list_adds_removes_and_lists():
    assert run_example("task_list.py") == (
        "- write the examples\n- run them in the tests\n2 tasks left\n"
    )


def test_task_list_api_in_process():
    import beamish

    sys.path.insert(0, str(ROOT / "examples" / "seed"))
    try:
        from task_list import TaskList
    finally:
        sys.path.remove(str(ROOT / "examples" / "seed"))

    async def main() -> tuple[str, ...]:
        await TaskList.start_link(("a",))
        TaskList.add_task("b")
        TaskList.add_task("a")
        TaskList.remove_task("a")  # removes every "a"
        TaskList.add_task("c")
        return await TaskList.list_tasks()

    assert beamish.run(main) == ("b", "c")
