"""Leftover detection: a test must not leave processes running."""

from __future__ import annotations

from collections.abc import Sequence

from beamish._runtime.pid import Pid
from beamish._runtime.runtime import Runtime

__all__ = ["LeftoverError", "check_leftovers", "describe_processes"]


class LeftoverError(AssertionError):
    """A test left processes or asyncio tasks running."""


def describe_processes(runtime: Runtime, pids: Sequence[Pid], *, limit: int = 20) -> str:
    """One line per process (name, initial call, status, function, mailbox), for errors."""
    lines = []
    for pid in pids[:limit]:
        info = runtime.process_info(pid)
        if info is None:
            continue
        name = f" ({info.name})" if info.name else ""
        lines.append(
            f"  {pid!r}{name}: {info.initial_call}, {info.status} in {info.current_function}, "
            f"{info.message_queue_len} message(s) queued"
        )
    if len(pids) > limit:
        lines.append(f"  ... and {len(pids) - limit} more")
    return "\n".join(lines)


def check_leftovers(runtime: Runtime) -> None:
    """Raise LeftoverError if processes of ``runtime`` are still alive."""
    pids = runtime.processes()
    if pids:
        raise LeftoverError(
            f"the test left {len(pids)} process(es) running:\n"
            f"{describe_processes(runtime, pids)}\n"
            "Stop what a test starts: start servers with start_supervised (they are stopped "
            "after the test), link helpers to the test process (spawn_link: they are shut "
            "down with it), kill them with beamish.exit(pid, 'kill'), or mark the test "
            "@pytest.mark.beamish(allow_leftovers=True) if leaving them is the point."
        )
