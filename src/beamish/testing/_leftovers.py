"""Leftover detection: a test must not leave processes or tasks running."""

from __future__ import annotations

import asyncio
from typing import Any

from beamish._runtime.runtime import Runtime

__all__ = ["LeftoverError", "check_leftovers", "wait_until_idle"]


class LeftoverError(AssertionError):
    """A test left processes or asyncio tasks running."""


async def wait_until_idle(runtime: Runtime, *, turns: int = 3) -> None:
    """Let the loop run until the scheduler has nothing queued for ``turns`` turns in a row.

    Messages already sent are handled, exits already signalled are processed; processes
    waiting on timers or I/O are left waiting.
    """
    quiet = 0
    for _ in range(10_000):
        await asyncio.sleep(0)
        if runtime.scheduler.runq or runtime.scheduler.pending:
            quiet = 0
        else:
            quiet += 1
            if quiet >= turns:
                return


def _describe(runtime: Runtime, pids: list[Any]) -> str:
    lines = []
    for pid in pids[:20]:
        info = runtime.process_info(pid)
        if info is None:
            continue
        name = f" ({info.name})" if info.name else ""
        lines.append(
            f"  {pid!r}{name}: {info.initial_call}, {info.status} in {info.current_function}, "
            f"{info.message_queue_len} message(s) queued"
        )
    if len(pids) > 20:
        lines.append(f"  ... and {len(pids) - 20} more")
    return "\n".join(lines)


def check_leftovers(runtime: Runtime) -> None:
    """Raise LeftoverError if processes of ``runtime`` are still alive."""
    pids = runtime.processes()
    if pids:
        raise LeftoverError(
            f"the test left {len(pids)} process(es) running:\n{_describe(runtime, pids)}\n"
            "Stop what a test starts: link helpers to the test process (spawn_link: they are "
            "shut down with it), kill them with beamish.exit(pid, 'kill'), or mark the test "
            "@pytest.mark.beamish(allow_leftovers=True) if leaving them is the point."
        )
