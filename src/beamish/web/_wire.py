"""The messages a socket's transport process takes from channels and broadcasts.

- ``Push(data)``: an encoded message to write as it is (``str``: a text frame, ``bytes``: a
  binary one). Channels send one per push and reply; a fastlane broadcast sends the same
  ``Push`` object to every transport it reaches, so a broadcast is encoded once, and its
  WebSocket frame (``Push.framed()``) is built once, by the first connection that needs it.
- ``SocketClose(pid, topic, join_ref)``: a channel stopping on purpose (a leave, a ``Stop``
  with a clean reason) tells its transport, which forgets it and writes ``phx_close``.
- ``Inbound(message, size, share)``: a client message the transport hands to a channel,
  with what it counts against the channel's share of the connection's backlog
  (``_backlog.py``); the channel gives the count back when it takes the message, or drops
  the message if the connection is gone.

All are immutable and pass between processes by reference (the backlog they point to is
shared on purpose).
"""

from __future__ import annotations

from typing import Any

from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish.web._backlog import Share
from beamish.web._serializer import Message
from beamish.web._ws_protocol import frame_of

__all__ = ["Inbound", "Push", "SocketClose"]


@mark_shared
class Push:
    """An encoded message for a transport to write."""

    __slots__ = ("_frame", "data", "key")
    __match_args__ = ("data",)

    def __init__(self, data: Any, key: tuple[str, str] | None = None) -> None:
        self.data = data
        self.key = key  # a broadcast's (topic, event): what a slow connection may coalesce
        self._frame: bytes | None = None

    def framed(self) -> bytes:
        """The message as one WebSocket frame, built on first use and kept (the same bytes
        for every connection: see ``_ws_protocol.py``)."""
        frame = self._frame
        if frame is None:
            frame = self._frame = frame_of(self.data)
        return frame

    def __repr__(self) -> str:
        return f"Push({self.data!r})"


@mark_shared
class SocketClose:
    """A channel's clean stop: the transport writes ``phx_close`` for ``join_ref``."""

    __slots__ = ("join_ref", "pid", "topic")
    __match_args__ = ("pid", "topic", "join_ref")

    def __init__(self, pid: Pid, topic: str, join_ref: str | None) -> None:
        self.pid = pid
        self.topic = topic
        self.join_ref = join_ref

    def __repr__(self) -> str:
        return f"SocketClose({self.pid!r}, {self.topic!r}, {self.join_ref!r})"


@mark_shared
class Inbound:
    """A client message for a channel, counted against the channel's ``share`` of its
    connection's backlog."""

    __slots__ = ("message", "share", "size")
    __match_args__ = ("message", "size")

    def __init__(self, message: Message, size: int, share: Share) -> None:
        self.message = message
        self.size = size
        self.share = share

    def __repr__(self) -> str:
        return f"Inbound({self.message!r}, {self.size})"
