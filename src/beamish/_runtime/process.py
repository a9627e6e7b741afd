"""The process record, and ``Actor``, the base of callback-driven processes.

Every process, whatever its shape, is one ``Process`` record: pid, mailbox, links, monitors,
name, flags. The two shapes differ only in what runs its messages:

- an **actor** (``spawn(MyActor())``) has ``actor`` set. The scheduler calls
  ``actor.handle(message)`` for each message; while idle it is this record and an empty
  mailbox, no coroutine. A handler may be ``async def``: the process then runs it in a task
  and takes no other message until it finishes.
- a **task-shaped process** (``spawn(async_fn)``, ``as_process()``) has ``actor`` None and
  runs in an asyncio task that takes messages with ``await receive()``.

The record is deliberately plain: the runtime and the scheduler manipulate its fields
directly, because this is the hot path. Fields that most processes never use (links,
monitors, timers) stay None until first needed.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from beamish._runtime import context as _context
from beamish._runtime.pid import Pid, Ref

if TYPE_CHECKING:
    from beamish._runtime.pairs import Pairs
    from beamish._runtime.runtime import Runtime

__all__ = ["INIT", "Actor", "Process"]


class Actor:
    """Base class of callback-driven processes: the cheapest kind of process.

    Subclass it, define ``handle``, and spawn an instance::

        class Counter(Actor):
            def __init__(self) -> None:
                self.count = 0

            def handle(self, message):
                match message:
                    case "increment":
                        self.count += 1
                    case ("get", reply_to):
                        send(reply_to, ("count", self.count))

        pid = spawn(Counter())

    ``handle`` runs once per message, in arrival order, inside the process (so ``self()``
    is its pid). It may be ``async def``; the process then finishes it before it takes its
    next message. ``started``, if defined, runs inside the process before the first message.
    An idle actor costs its record and its own attributes: no task and no coroutine.

    To stop, ``raise ProcessExit(reason)`` (``"normal"`` for a clean stop); an exception
    escaping ``handle`` crashes the process with ``Crash(exception)``.

    ``self.pid`` holds the actor's pid once spawned.
    """

    __slots__ = ("pid",)

    pid: Pid

    vsn: ClassVar[Any] = None
    """The version of this code: an upgrade tells ``code_change`` the running class's
    ``vsn`` as the old version (Erlang's ``-vsn``)."""

    def started(self) -> Awaitable[None] | None:
        """Runs inside the process before the first message. Optional."""
        return None

    def exited(self, reason: Any) -> None:
        """Runs on the loop once the process has exited, whatever the reason (even a kill).

        Optional. For releasing what the process holds outside beamish (a socket, a file)
        when ``terminate``-style cleanup cannot be relied on. It must not block, and it
        cannot stop or delay the exit; an exception in it is logged and ignored.
        """
        return None

    def mailbox_size(self) -> int:
        """How many messages wait in this actor's mailbox (0 once it has exited)."""
        proc = self.pid._proc
        mailbox = proc.mailbox if proc is not None else None
        return len(mailbox) if mailbox else 0

    def _upgrade_class(self) -> type:
        """The class whose code this process runs (an upgrade of its module concerns it)."""
        return type(self)

    def _upgrade(self, old_vsn: Any, extra: Any) -> Callable[[], None] | None:
        """Move this process's state to the code just loaded, inside the process, while it is
        held between two messages; return what undoes it (``beamish.upgrade``).

        A plain actor's ``code_change(old_vsn, extra)``, if it defines one, changes its
        attributes; undoing puts the attributes it had back (the objects, not copies: a
        ``code_change`` should give attributes new values rather than change the old ones
        in place). Behaviours override this to migrate their state."""
        change = getattr(self, "code_change", None)
        if change is None:
            return None
        saved = _attributes(self)
        change(old_vsn, extra)
        return lambda: _restore(self, saved)

    def handle(self, message: Any) -> Awaitable[None] | None:
        """Handle one message. Must be defined by the subclass."""
        raise NotImplementedError(
            f"{type(self).__qualname__} got the message {message!r} but defines no "
            "handle(self, message) method; every Actor subclass must define one"
        )


def _attributes(actor: Actor) -> dict[str, Any]:
    found = dict(getattr(actor, "__dict__", {}))
    for cls in type(actor).__mro__:
        for slot in vars(cls).get("__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(actor, slot):
                found[slot] = getattr(actor, slot)
    return found


def _restore(actor: Actor, saved: dict[str, Any]) -> None:
    held = getattr(actor, "__dict__", None)
    if held is not None:
        held.clear()
    for key, value in saved.items():
        object.__setattr__(actor, key, value)


class _Init:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<actor init>"


INIT: Any = _Init()
"""Placed first in a new actor's mailbox when the actor defines ``started``."""


class _Hibernate:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<hibernate>"


HIBERNATE: Any = _Hibernate()
"""Sent by an actor to itself (``api.hibernate``): taken by the scheduler, not the actor; if
the mailbox is empty once the actor's turn ends, the mailbox is given back (an idle actor
needs none: the next message makes a new one), as after ``INIT``."""


class Process:
    """The runtime's record of one process. Private: user code holds only the pid."""

    __slots__ = (
        "actor",
        "busy",
        "context",
        "exit_reason",
        "handled",
        "initial",
        "links",
        "mailbox",
        "monitors",
        "name",
        "parent",
        "pid",
        "runtime",
        "scheduled",
        "task",
        "timers",
        "trap_exit",
        "waiter",
        "watchers",
    )

    pid: Pid
    runtime: Runtime
    actor: Actor | None
    mailbox: deque[Any] | None
    task: asyncio.Task[Any] | None
    waiter: asyncio.Future[Any] | None
    context: contextvars.Context | None
    scheduled: bool
    busy: bool
    trap_exit: bool
    links: Pid | set[Pid] | None  # one link is kept as the pid itself
    monitors: Pairs[Ref, Pid]  # None, one (ref, pid), or a dict: see pairs.py
    watchers: Pairs[Ref, Process | Callable[[Ref, Pid, Any], None]]
    name: str | None
    handled: int
    parent: Pid | None
    timers: set[Ref] | None
    exit_reason: Any
    initial: Any

    def __init__(self, runtime: Runtime, pid: Pid, actor: Actor | None, initial: Any) -> None:
        self.pid = pid
        self.runtime = runtime
        self.actor = actor
        self.initial = initial
        self.mailbox = None
        self.task = None
        self.waiter = None
        self.context = None
        self.scheduled = False
        self.busy = False
        self.trap_exit = False
        self.links = None
        self.monitors = None
        self.watchers = None
        self.name = None
        self.handled = 0
        self.parent = None
        self.timers = None
        self.exit_reason = None

    @property
    def alive(self) -> bool:
        return self.pid._proc is not None

    def own_context(self) -> contextvars.Context:
        """A context in which this process is current (for its tasks)."""
        ctx = self.context
        if ctx is None:
            ctx = contextvars.Context()
            ctx.run(_context.CURRENT.set, self)
            self.context = ctx
        return ctx

    def __repr__(self) -> str:
        kind = type(self.actor).__qualname__ if self.actor is not None else "task"
        return f"<Process {self.pid!r} {kind}{' ' + self.name if self.name else ''}>"


_context.PROCESS_TYPE = Process
