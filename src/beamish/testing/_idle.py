"""``wait_until_idle``: let every process do what it can before time has to pass.

How it works. The loop is given turns (``await asyncio.sleep(0)``) until, for a few turns in
a row, the scheduler's run queue is empty and no process but the caller is ``"runnable"`` by
``process_info``: no actor has messages waiting for its turn, no task-shaped process has
been woken or is about to start. A process waiting for a message, a timer, a call's reply or
I/O is idle, so ``wait_until_idle`` never waits for time to pass; with a virtual clock it
never moves the clock. Its own timeout is in real seconds, a guard against processes that
never settle (two that message each other forever).
"""

from __future__ import annotations

import asyncio

from beamish._runtime.context import current_process, current_runtime
from beamish._runtime.pid import Pid
from beamish._runtime.runtime import Runtime
from beamish.testing._leftovers import describe_processes

__all__ = ["wait_until_idle"]

_QUIET_TURNS = 3  # a woken process shows as runnable only from the turn after its wake-up


async def wait_until_idle(runtime: Runtime | None = None, *, timeout: float = 5.0) -> None:
    """Wait until no process is runnable: every message sent so far has been handled.

    Use it where a test needs the system to have reacted before it looks::

        beamish.send(server, "work")       # or a cast, an exit signal, a crash...
        await wait_until_idle()
        assert beamish.process_info(server).message_queue_len == 0

    Messages already sent are taken, exits already signalled are processed and the processes
    they start have started; processes waiting on a timer, on I/O or for a message are left
    waiting. The caller does not count as runnable. ``runtime`` defaults to the current one.

    Raises ``TimeoutError`` naming the processes still runnable if the node has not settled
    after ``timeout`` real seconds (a virtual clock does not stretch it).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"wait_until_idle() needs a timeout in seconds > 0, got {timeout!r}")
    rt = runtime if runtime is not None else current_runtime()
    me = current_process()
    caller = me.pid if me is not None and me.runtime is rt else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet = 0
    last = _Look(rt)
    while True:
        await asyncio.sleep(0)
        now = _Look(rt)
        if now.busy_since(last):  # the node's counters moved: no need to look at each one
            quiet = 0
            active: list[Pid] = []
        else:
            now.scan(rt, caller)
            active = now.active_since(last)
            if last.procs is not None and not active:
                quiet += 1
                if quiet >= _QUIET_TURNS:
                    return
            else:
                quiet = 0
        if quiet == 0 and loop.time() >= deadline:
            if now.procs is None:
                now.scan(rt, caller)
                active = now.active_since(now)
            raise TimeoutError(_gave_up(rt, active, now.run_queue, timeout))
        last = now


class _Look:
    """One look at the node: its counters and, if scanned, what each process has done.

    ``process_info`` shows a task-shaped process that was just woken as ``"waiting"`` until
    it runs, so a process that took or got a message since the last look counts as active
    too: the process it woke gets the next turn.
    """

    __slots__ = ("counters", "procs", "run_queue")

    def __init__(self, rt: Runtime) -> None:
        self.procs: dict[Pid, tuple[bool, int, int]] | None = None
        if rt.running:
            stats = rt.statistics()
            self.run_queue = stats.run_queue
            self.counters = (stats.spawned, stats.exited, stats.messages_dispatched)
        else:
            self.run_queue = 0
            self.counters = (0, 0, 0)

    def busy_since(self, before: _Look) -> bool:
        return self.run_queue > 0 or self.counters != before.counters

    def scan(self, rt: Runtime, caller: Pid | None) -> None:
        procs = self.procs = {}
        for pid in rt.processes() if rt.running else ():
            info = rt.process_info(pid) if pid != caller else None
            if info is not None:
                procs[pid] = (
                    info.status == "runnable", info.messages_handled, info.message_queue_len
                )

    def active_since(self, before: _Look) -> list[Pid]:
        """Processes that can run, or that took or got messages since ``before``."""
        assert self.procs is not None
        earlier = before.procs or {}
        return [
            pid for pid, (runnable, handled, queued) in self.procs.items()
            if runnable or earlier.get(pid, (False, handled, queued))[1:] != (handled, queued)
        ]


def _gave_up(rt: Runtime, active: list[Pid], run_queue: int, timeout: float) -> str:
    lines = [f"wait_until_idle() gave up after {timeout}s: the node never settled."]
    if active:
        lines.append(f"{len(active)} process(es) kept running or messaging:")
        lines.append(describe_processes(rt, active))
    if run_queue:
        lines.append(f"{run_queue} actor(s) wait in the scheduler's run queue.")
    lines.append(
        "A process that is always runnable keeps the node busy: look for processes that "
        "message each other forever, or a loop that yields without waiting for anything."
    )
    return "\n".join(lines)
