"""Holding an actor between two messages: what an upgrade needs to change its code.

``hold(proc)`` stops the scheduler from giving the actor its next message: at once if it is
between messages, else when the handler it runs (an ``async def`` one) has finished, which
the returned future tells. Messages sent meanwhile wait in its mailbox, in order, and
``release(proc)`` lets it take them. A held actor is marked ``busy``, as one running an
async handler is, so neither the scheduler nor ``send`` (the C one included) needs a branch
of its own for it: holding costs the hot paths nothing. The runtime keeps its holds in
``runtime.holds`` (None when there are none), which the async-handler path reads once per
handler to keep a held actor busy when its handler ends.

Erlang's release handler suspends processes with ``sys:suspend`` (a system message the
process takes between two messages); beamish holds the actor in the scheduler instead, so
every actor can be held, not only the behaviours that speak the system protocol.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beamish._runtime.process import Process

__all__ = ["hold", "release"]


def hold(proc: Process) -> asyncio.Future[None] | None:
    """Hold the actor ``proc`` (see the module): None if it is held now, else a future done
    once its running handler has finished and it is held."""
    if proc.actor is None:
        raise ValueError(f"{proc!r} is not an actor: only an actor can be held between messages")
    runtime = proc.runtime
    holds = runtime.holds
    if holds is None:
        holds = runtime.holds = {}
    if proc in holds:
        raise ValueError(f"{proc!r} is held already")
    if not proc.busy:
        proc.busy = True
        holds[proc] = None
        return None
    waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    holds[proc] = waiting
    return waiting


def release(proc: Process) -> None:
    """Let a held actor take its messages again (a no-op if it is not held)."""
    runtime = proc.runtime
    holds = runtime.holds
    if holds is None or proc not in holds:
        return
    waiting = holds.pop(proc)
    if not holds:
        runtime.holds = None
    if waiting is not None and not waiting.done():
        waiting.cancel()  # its handler still runs: it ends as if never held
        return
    if proc.pid._proc is None:
        return  # it exited while held
    proc.busy = False
    if proc.mailbox and not proc.scheduled:
        proc.scheduled = True
        runtime.scheduler.enqueue(proc)


def handler_ended(proc: Process, holds: dict[Process, Any]) -> bool:
    """For the scheduler, when an async handler of ``proc`` ends and the runtime has holds:
    True if ``proc`` is held (it stays busy; the waiting upgrade is told)."""
    if proc not in holds:
        return False
    waiting = holds[proc]
    if waiting is not None and not waiting.done():
        waiting.set_result(None)
    return True
