"""Telemetry of the pools: their events and their statistics.

Every pool emits through the telemetry bus (``beamish.telemetry``), in the process that
caused the event:

- ``beamish.data.query``: one statement run. Measurements ``query_time`` (seconds from
  sending it to having its result) and ``queue_time`` (seconds the caller waited for a
  connection before it, when the statement checked one out for itself; None inside a
  checkout or transaction block); metadata ``pool``, ``sql`` and ``error`` (the error's
  class name when it failed, else None).
- ``beamish.data.checkout``: a caller got a connection. Measurement ``queue_time``;
  metadata ``pool`` and how busy it is now: ``in_use`` of ``size`` checked out, ``waiting``
  callers queued.

Nothing is timed while no handler is attached to either.
"""

from __future__ import annotations

from dataclasses import dataclass

from beamish._runtime.events import event

__all__ = ["CHECKOUT", "QUERY", "PoolStatistics"]

QUERY = event("beamish", "data", "query")
CHECKOUT = event("beamish", "data", "checkout")


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
