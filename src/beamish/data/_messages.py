"""The messages between a pool's callers, its manager and its connection processes.

Checkout (a call to the manager)::

    caller --Checkout(ref)--> manager            (request; waits in the manager's queue)
    manager --Leased(caller, ref)--> connection  (it monitors the caller from now on)
    manager --Connection--> caller               (the reply: the lease itself)

Checkin (casts)::

    caller --Checkin(ref, state)--> connection   (state: how the lease ended)
    connection --Idle(pid)--> manager            (after a rollback and reset if needed)

A connection process that connects sends ``Register(pid, conn)``; the manager monitors it.
A caller that stops waiting sends ``Cancel(ref)``: the manager drops its place in the queue,
or takes back what it handed out under ``ref`` in the same instant.
"""

from __future__ import annotations

from typing import Any

from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid, Ref

__all__ = [
    "ABORTED", "BROKEN", "CLOSED", "OPEN", "Cancel", "Checkin", "Checkout", "Idle", "Leased",
    "Register", "Tick",
]

# How a lease stands (kept on the Connection, sent with Checkin):
OPEN = "open"  # in use; checked in this way when its block ended normally
ABORTED = "aborted"  # its holder was cancelled or died: roll back and reset before reuse
BROKEN = "broken"  # the database connection is gone: the connection process exits
CLOSED = "closed"  # checked in; any further use is an error


@mark_shared
class Checkout:
    __slots__ = ("ref",)

    def __init__(self, ref: Ref) -> None:
        self.ref = ref

    def __repr__(self) -> str:
        return f"Checkout({self.ref!r})"


@mark_shared
class Leased:
    __slots__ = ("caller", "ref")

    def __init__(self, caller: Pid, ref: Ref) -> None:
        self.caller = caller
        self.ref = ref


@mark_shared
class Checkin:
    __slots__ = ("ref", "state")

    def __init__(self, ref: Ref, state: str) -> None:
        self.ref = ref
        self.state = state


@mark_shared
class Idle:
    __slots__ = ("pid",)

    def __init__(self, pid: Pid) -> None:
        self.pid = pid


@mark_shared
class Register:
    """``conn`` is the driver connection: owned by the connection process, lent by the
    manager to one caller at a time (hence shared on purpose)."""

    __slots__ = ("conn", "pid")

    def __init__(self, pid: Pid, conn: Any) -> None:
        self.pid = pid
        self.conn = conn


@mark_shared
class Cancel:
    __slots__ = ("ref",)

    def __init__(self, ref: Ref) -> None:
        self.ref = ref


@mark_shared
class Tick:
    """A timer message: ``kind`` is ``"sweep"`` (manager), ``"connect"`` or ``"ping"``."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Tick({self.kind!r})"
