"""Telemetry of a pool: the events its hooks receive and its statistics record.

A hook is attached to one running pool (``db.attach("query", hook)``) and called on the
loop, synchronously, in the process that caused the event: keep it short (count, record,
``send`` to a collector process). A hook that raises is detached and the error logged; an
instrument must never break a query. Nothing is timed while no hook is attached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["EVENTS", "CheckoutEvent", "Hooks", "PoolStatistics", "QueryEvent"]

_log = logging.getLogger("beamish.data")

EVENTS = ("checkout", "query")


@dataclass(frozen=True, slots=True)
class QueryEvent:
    """One statement run through a pool (``"query"`` hooks).

    ``query_time``: seconds from sending it to having its result. ``queue_time``: seconds
    the caller waited for a connection before it, when the statement checked one out for
    itself (None inside a checkout or transaction block: see the ``"checkout"`` event).
    ``error``: the error's class name when it failed, else None.
    """

    pool: str
    sql: str
    query_time: float
    queue_time: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class CheckoutEvent:
    """A caller got a connection (``"checkout"`` hooks): how long it waited, and how busy
    the pool is now (``in_use`` of ``size`` checked out, ``waiting`` callers queued)."""

    pool: str
    queue_time: float
    in_use: int
    size: int
    waiting: int


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a pool (``db.statistics()``), read without a message.

    ``size`` connections are supervised, ``connected`` of them open; ``idle`` wait for a
    caller, ``in_use`` are checked out, and ``waiting`` callers queue for one. The counters
    run from the pool's start: ``checkouts``, ``timeouts`` (``PoolTimeout`` raised),
    ``overloads`` (``PoolOverloaded`` raised), ``connect_errors`` (failed attempts to open a
    connection) and ``disconnects`` (connections lost or failing a health check);
    ``last_connect_error`` is the latest of those errors, as text.
    """

    pool: str
    size: int
    connected: int
    idle: int
    in_use: int
    waiting: int
    max_waiting: int
    checkouts: int
    timeouts: int
    overloads: int
    connect_errors: int
    disconnects: int
    last_connect_error: str | None


class Hooks:
    """The hooks attached to one pool, by event."""

    __slots__ = ("checkout", "query")

    def __init__(self) -> None:
        self.checkout: list[Callable[[CheckoutEvent], Any]] = []
        self.query: list[Callable[[QueryEvent], Any]] = []

    def attach(self, event: str, hook: Callable[[Any], Any]) -> Callable[[], None]:
        if event not in EVENTS:
            raise ValueError(
                f"unknown pool event {event!r}; the events are {', '.join(EVENTS)}"
            )
        if not callable(hook):
            raise TypeError(f"a pool hook must be callable, got {hook!r}")
        hooks: list[Callable[[Any], Any]] = getattr(self, event)
        hooks.append(hook)

        def detach() -> None:
            if hook in hooks:
                hooks.remove(hook)

        return detach

    @staticmethod
    def emit(hooks: list[Callable[[Any], Any]], event: Any) -> None:
        for hook in list(hooks):
            try:
                hook(event)
            except Exception:
                _log.exception("pool hook %r raised; it has been detached", hook)
                if hook in hooks:
                    hooks.remove(hook)
