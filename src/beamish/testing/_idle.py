"""``wait_until_idle``: let every process do what it can before time has to pass.

How it works. The runtime counts every wake-up it causes (``Runtime.wakeups``: a message
for a waiting receive, a reply, a spawn, a timer, an exit; see ``_runtime/wakeups.py``), and
the loop runs queued steps first in, first out. So the caller reads the count, yields one
loop turn, and looks again: if the count has not moved, the scheduler's run queue is empty
and no ``send_after`` timer is due, every process woken before it looked has had its turn
and nothing the runtime knows of is about to run. It asks for that a few turns in a row
(``_QUIET_TURNS``): each extra turn lets one more hop run that the runtime does not see, a
step queued with ``call_soon`` or ``create_task``, or through an ``asyncio`` future put
between a process and what it waits for. Each look costs a few attribute reads, whatever
the number of processes.

A process waiting for a message, a timer not yet due, a call's reply or I/O is idle, so
``wait_until_idle`` never waits for time to pass; with a virtual clock it never moves the
clock. Its own timeout is in real seconds, a guard against processes that never settle (two
that message each other forever).
"""

from __future__ import annotations

import asyncio

from beamish._runtime.context import current_process, current_runtime
from beamish._runtime.pid import Pid
from beamish._runtime.runtime import Runtime
from beamish.testing._leftovers import describe_processes

__all__ = ["wait_until_idle"]

_QUIET_TURNS = 3


async def wait_until_idle(runtime: Runtime | None = None, *, timeout: float = 5.0) -> None:
    """Wait until no process is runnable: every message sent so far has been handled.

    Use it where a test needs the system to have reacted before it looks::

        beamish.send(server, "work")       # or a cast, an exit signal, a crash...
        await wait_until_idle()
        assert beamish.process_info(server).message_queue_len == 0

    Messages already sent are taken, exits already signalled are processed, the processes
    they start have started, calls made meanwhile are answered, and timers set with
    ``send_after`` that are already due have fired; processes waiting on a timer not yet
    due, on I/O or for a message are left waiting. The caller does not count as runnable.
    ``runtime`` defaults to the current one.

    Exact for everything the runtime does itself: messages, exit signals, replies, spawns,
    receive and call timeouts, ``sleep`` and ``send_after`` on its clock. What it learns
    of only by waiting a few loop turns: work handed on through plain asyncio (a task made
    with ``create_task``, a callback queued with ``call_soon``, an ``asyncio.Event``, a
    future behind ``gather`` or ``wait_for``), up to two such hops in a row. What it does not
    wait for: threads (``offload``), I/O, subprocesses, loop timers other than the runtime's
    (``asyncio.sleep``, ``loop.call_later``), timers of the runtime's clock that are not due
    yet, and asyncio tasks that are no process and are woken by no process.

    Raises ``TimeoutError`` naming the processes still running if the node has not settled
    after ``timeout`` real seconds (a virtual clock does not stretch it).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"wait_until_idle() needs a timeout in seconds > 0, got {timeout!r}")
    rt = runtime if runtime is not None else current_runtime()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet = 0
    seen = rt.wakeups
    while quiet < _QUIET_TURNS:
        await asyncio.sleep(0)  # not counted: the caller is not runnable meanwhile
        if not rt.running:
            return
        wakeups = rt.wakeups
        if wakeups != seen or rt.scheduler.runq or _timer_due(rt):
            seen = wakeups
            quiet = 0
            if loop.time() >= deadline:
                raise TimeoutError(await _gave_up(rt, timeout))
        else:
            quiet += 1


def _timer_due(rt: Runtime) -> bool:
    """True if a ``send_after`` timer's time has come but it has not fired yet."""
    timers = rt._timers
    if not timers:
        return False
    now = rt.clock.now()
    return any(entry[3] <= now for entry in timers.values())


async def _gave_up(rt: Runtime, timeout: float) -> str:
    me = current_process()
    caller = me.pid if me is not None and me.runtime is rt else None
    before = _look(rt, caller)
    for _ in range(_QUIET_TURNS):  # a process woken but not yet run shows as waiting
        await asyncio.sleep(0)
    after = _look(rt, caller)
    active = [
        pid for pid, (runnable, handled, queued) in after.items()
        if runnable or before.get(pid, (False, handled, queued))[1:] != (handled, queued)
    ]
    lines = [f"wait_until_idle() gave up after {timeout}s: the node never settled."]
    if active:
        lines.append(f"{len(active)} process(es) kept running or messaging:")
        lines.append(describe_processes(rt, active))
    if rt.running and rt.scheduler.runq:
        lines.append(f"{len(rt.scheduler.runq)} actor(s) wait in the scheduler's run queue.")
    lines.append(
        "A process that is always runnable keeps the node busy: look for processes that "
        "message each other forever, or a loop that yields without waiting for anything."
    )
    return "\n".join(lines)


def _look(rt: Runtime, caller: Pid | None) -> dict[Pid, tuple[bool, int, int]]:
    """Each process: whether it is runnable, how many messages it took, how many wait."""
    procs = {}
    for pid in rt.processes() if rt.running else ():
        info = rt.process_info(pid) if pid != caller else None
        if info is not None:
            procs[pid] = (info.status == "runnable", info.messages_handled,
                          info.message_queue_len)
    return procs
