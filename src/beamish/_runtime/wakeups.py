"""Wake-ups: how the runtime knows that no process is about to run.

A process can run in one of two ways. An actor with messages waits in the scheduler's run
queue. A task-shaped process, or an actor finishing an ``async`` handler, runs in an asyncio
task: it becomes runnable when the future it waits on is resolved, which queues the task's
next step on the loop. ``Runtime.wakeups`` (``statistics().wakeups``) counts each time the
runtime does that: a message or an exit for a process waiting in ``receive``, a reply (or a
failure) for a caller, the timer of a receive timeout or a ``sleep``, a task-shaped process
spawned, an async handler started, a task cancelled by an exit signal, a yield of
``sleep(0)`` or of a long receive loop, a start acknowledged to ``start_link``.

Why a count and not the number of processes runnable now: the loop runs queued steps in the
order they were queued (asyncio's and uvloop's ready queue is first in, first out). A task
that reads the count and then yields one turn runs again only after every step queued
before it. If, when it runs again, the count has not moved and the run queue is empty,
every process woken before it looked has had its turn, and none was woken or queued since:
nothing the runtime knows of is about to run. ``wait_until_idle`` is built on this. A
number of runnable processes would need each woken task to say when it resumed: a cost on
every wake-up, for what one integer increment already tells.

What the count cannot see: a step queued by other means than the runtime's own (an
``asyncio.Event`` or ``Queue``, a task created with ``create_task``, a callback queued with
``call_soon``, asyncio's combinators such as ``gather`` or ``wait_for`` putting a future
between a process and what it waits for). Each such hop takes one more loop turn, which is
why ``wait_until_idle`` waits for a few quiet turns in a row, not one.

``resolve`` and ``fail`` are for code above the kernel that parks a process on a future of
its own (a behaviour's start acknowledgement): they count the wake-up as the runtime does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamish._errors import NoRuntimeError
from beamish._runtime import context as _context

__all__ = ["fail", "resolve"]


def resolve(future: asyncio.Future[Any], value: Any = None) -> bool:
    """Resolve ``future`` with ``value`` if it is pending, and count the wake-up.

    Returns False (and does nothing) if it was already done.
    """
    if future.done():
        return False
    future.set_result(value)
    _count()
    return True


def fail(future: asyncio.Future[Any], error: BaseException) -> bool:
    """Fail ``future`` with ``error`` if it is pending, and count the wake-up."""
    if future.done():
        return False
    future.set_exception(error)
    _count()
    return True


def _count() -> None:
    try:
        runtime = _context.current_runtime()
    except NoRuntimeError:  # resolved outside any runtime: nothing to count in
        return
    runtime.wakeups += 1
