"""What one Server-Sent Events connection has queued, bounded by count and by bytes.

How it works. The stream's hub hands each event to the ``Outbox`` of every connection of
its topic (``offer``), in the hub's own process; the connection's process takes the queued
events out in chunks (``take``) and writes them. An event counts against the bounds from
the moment it is offered until its chunk has been handed to the server (``written``), so
the bound covers the chunk being written as well as those behind it.

The outbox wakes its connection with one message when it goes from having nothing to do
to having something (the connection says it is waiting), never one per event: the
connection's mailbox stays at a message or two however fast events come. An offer that
would take it past ``max_events`` or ``max_bytes`` *overflows* it instead: it drops
everything queued at once (the memory comes back now, not when the connection ends),
refuses every later offer, records what was waiting, and wakes the connection, which then
ends the stream. A client that cannot keep up is dropped rather than allowed to eat
memory; when it reconnects with its ``Last-Event-ID`` it gets the buffered events it
missed, or a gap event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from beamish._runtime.isolation import mark_shared
from beamish.web._sse_log import SSEEvent

__all__ = ["Outbox"]


@mark_shared
class Outbox:
    """One connection's queue (shared by reference between the hub and the connection)."""

    __slots__ = (
        "_items", "_wake", "bytes", "closed", "events", "max_bytes", "max_events",
        "overflow", "peak_bytes", "peak_events", "waiting",
    )

    def __init__(self, wake: Callable[[], Any], *, max_events: int, max_bytes: int) -> None:
        self._wake = wake
        self._items: deque[SSEEvent] = deque()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.events = 0  # queued or being written
        self.bytes = 0
        self.peak_events = 0
        self.peak_bytes = 0
        self.waiting = False  # the connection has nothing to do and asks to be woken
        self.closed = False
        self.overflow: tuple[int, int] | None = None  # (events, bytes) waiting when it did

    def __copy__(self) -> Outbox:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Outbox:
        return self

    def offer(self, event: SSEEvent) -> bool:
        """Queue ``event``; False if the outbox is closed or this offer overflowed it."""
        if self.closed:
            return False
        size = len(event.wire)
        events = self.events + 1
        nbytes = self.bytes + size
        if events > self.max_events or nbytes > self.max_bytes:
            self.overflow = (self.events, self.bytes)
            self.close()
            self._wake()
            return False
        self._items.append(event)
        self.events = events
        self.bytes = nbytes
        if events > self.peak_events:
            self.peak_events = events
        if nbytes > self.peak_bytes:
            self.peak_bytes = nbytes
        if self.waiting:
            self.waiting = False
            self._wake()
        return True

    def take(self, limit: int) -> tuple[bytes, int] | None:
        """The next chunk to write: whole events, up to ``limit`` bytes (at least one), and
        how many; None when nothing is queued. They still count until ``written``."""
        items = self._items
        if not items:
            return None
        first = items.popleft()
        if not items or len(first.wire) >= limit:
            return first.wire, 1
        parts = [first.wire]
        size = len(first.wire)
        while items and size + len(items[0].wire) <= limit:
            wire = items.popleft().wire
            parts.append(wire)
            size += len(wire)
        return b"".join(parts), len(parts)

    def written(self, events: int, nbytes: int) -> None:
        """A chunk taken from here has been handed to the server."""
        if self.closed:
            return
        self.events -= events
        self.bytes -= nbytes

    def close(self) -> None:
        """Drop what is queued and take nothing more."""
        self.closed = True
        self.waiting = False
        self._items.clear()
        self.events = 0
        self.bytes = 0
