"""What one connection has read from its client and not yet handled: its backlog.

A client can send faster than its channels handle: a channel whose ``handle_in`` takes
20 ms handles 50 messages a second, and a client pushing 20,000 would otherwise fill that
channel's mailbox with all of them (200 MB for 10 KB frames), then keep the channel busy for
minutes after it left. A ``Backlog`` counts, for one connection, the client messages that
were read and not yet handled (by the transport itself, or by the channel it forwarded them
to) and their bytes; it bounds both (``max_backlog``, ``max_backlog_bytes``).

How it works. It is one small object that the connection's reader, its transport process
and its channel processes share, as Erlang processes share a ``counters`` array: every one
of them runs on the node's one loop, so an update is a few attribute writes, and no message
is sent for the bookkeeping.

- The **reader** (the server's task that reads the WebSocket) counts each frame when it reads
  it (``read``). At the limit it stops reading (``wait``) until the backlog is down to half
  the limit: the server's receive loop waits, the socket's buffers fill, and TCP slows the
  client down. Nothing more is read, so nothing more is held.
- The **transport** hands a frame on to a channel with its count: each joined channel has a
  ``Share`` of the backlog, so that whatever a channel leaves behind when it stops
  (``Share.forget``) is given back. A frame it handles itself is given back at once
  (``release``). A LongPoll post is not read by a reader; the transport counts its frames
  when it hands them on.
- A **channel** gives a frame's count back when it takes the frame (``Share.take``). When
  the connection is gone (``close``), a channel drops what its client sent and it has not
  handled yet, without running ``handle_in``: nobody is there to read the answers.

``over_since`` says since when the backlog has been at its limit without falling back to
half of it; the transport closes a connection that stays so for ``backlog_timeout``.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Backlog", "Share"]


class Backlog:
    """One connection's backlog: client messages read and not yet handled (see above)."""

    __slots__ = (
        "_clock",
        "_low_bytes",
        "_low_count",
        "_waiter",
        "bytes",
        "closed",
        "count",
        "max_bytes",
        "max_count",
        "over_since",
        "shares",
    )

    def __init__(self, max_count: int, max_bytes: int, clock: Any) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._low_count = max_count // 2
        self._low_bytes = max_bytes // 2
        self._clock = clock
        self.count = 0
        self.bytes = 0
        self.shares: list[Share] = []  # a list: one joined channel is the common case
        self.over_since: float | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Backlog {self.count}/{self.max_count} messages, {self.bytes}/{self.max_bytes} "
            f"bytes{' closed' if self.closed else ''}>"
        )

    def share(self, topic: str) -> Share:
        """The part of a newly joined channel (on ``topic``)."""
        share = Share(self, topic)
        self.shares.append(share)
        return share

    def read(self, size: int) -> bool:
        """The reader read a frame of ``size`` bytes; True if it must now ``wait``."""
        self.count += 1
        self.bytes += size
        if self.over_since is None and (
            self.count >= self.max_count or self.bytes >= self.max_bytes
        ):
            self.over_since = self._clock.now()
        return self.over_since is not None

    def release(self, size: int) -> None:
        """The transport handled a frame the reader counted (a heartbeat, a join...)."""
        self.count -= 1
        self.bytes -= size
        if self.over_since is not None:
            self.resume_if_down()

    def close(self) -> None:
        """The connection is gone: channels drop what is left, and the reader stops."""
        self.closed = True
        self._wake()

    def wait(self) -> asyncio.Future[None]:
        """Resolved when the backlog is down to half its limit, or closed (for the reader)."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        if self.over_since is None or self.closed:
            waiter.set_result(None)
        return waiter

    def resume_if_down(self) -> None:
        if self.count <= self._low_count and self.bytes <= self._low_bytes:
            self.over_since = None
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Share:
    """One channel's part of its connection's backlog: frames handed to it, not yet taken."""

    __slots__ = ("backlog", "bytes", "count", "gone", "topic")

    def __init__(self, backlog: Backlog, topic: str) -> None:
        self.backlog = backlog
        self.topic = topic
        self.count = 0
        self.bytes = 0
        self.gone = False

    def __repr__(self) -> str:
        return f"<Share of {self.topic!r}: {self.count} messages, {self.bytes} bytes>"

    def give(self, size: int, *, read: bool) -> None:
        """The transport hands the channel a frame. ``read``: the reader counted it already;
        otherwise (LongPoll) it is counted now."""
        if not read:
            self.backlog.read(size)
        self.count += 1
        self.bytes += size

    def take(self, size: int) -> None:
        """The channel took a frame it was handed."""
        if self.gone:  # given back already by forget()
            return
        self.count -= 1
        self.bytes -= size
        backlog = self.backlog
        backlog.count -= 1
        backlog.bytes -= size
        if backlog.over_since is not None:
            backlog.resume_if_down()

    def forget(self) -> None:
        """The channel is gone: what was handed to it and not taken is given back."""
        if self.gone:
            return
        self.gone = True
        backlog = self.backlog
        if self in backlog.shares:
            backlog.shares.remove(self)
        backlog.count -= self.count
        backlog.bytes -= self.bytes
        self.count = self.bytes = 0
        if backlog.over_since is not None:
            backlog.resume_if_down()
