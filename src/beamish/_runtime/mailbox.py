"""Delivery: the one routine that puts a message in a mailbox and wakes its process.

``deliver(proc, message)`` appends an already isolated message to a live process's mailbox
and wakes the process if it is not awake: an idle actor is queued on the scheduler; an actor
whose async handler waits in ``receive`` and a task-shaped process waiting for a message
have their waiter resolved. ``send``, exit signals, downs and replies that go through the
mailbox all come here. The C send (``_speedups.c``, ``send``) is this routine's twin for the
cases that wake nobody or only queue an actor, inlined for speed; it hands the others (a
first message, a waiter to resolve) to the Python send, which calls ``deliver``.
``tests/runtime/test_mailbox.py`` checks that the two leave every kind of receiver in the
same state.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from beamish._runtime.process import Process

__all__ = ["deliver"]


def deliver(proc: Process, message: Any) -> None:
    mailbox = proc.mailbox
    if mailbox is None:
        mailbox = proc.mailbox = deque()
    mailbox.append(message)
    if proc.actor is not None:
        if not proc.scheduled:
            if not proc.busy:
                proc.scheduled = True
                proc.runtime.scheduler.enqueue(proc)
            else:  # busy: an async handler may wait in receive()
                waiting = proc.waiter
                if waiting is not None:
                    proc.waiter = None
                    if not waiting.done():
                        waiting.set_result(None)
                        proc.runtime.wakeups += 1
    else:
        waiter = proc.waiter
        if waiter is not None:
            proc.waiter = None
            if not waiter.done():
                waiter.set_result(None)
                proc.runtime.wakeups += 1
