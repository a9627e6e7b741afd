"""The WebSocket server protocol beamish serves sockets on: uvicorn's, plus pre-framed writes.

uvicorn's sans-I/O WebSocket protocol (websockets' ``ServerProtocol`` under an asyncio
protocol) frames every ``websocket.send`` on its own: a broadcast to 10,000 sockets builds
the same frame 10,000 times, through the ASGI ``send`` coroutine each time. A server-to-client
frame without extensions is the same bytes on every connection (the server does not mask),
so beamish builds it once (``frame_of``, with websockets' own ``Frame.serialize``) and
writes those bytes to each connection's transport.

``FramedWebSocketProtocol`` is uvicorn's protocol with one addition: the scope of a
WebSocket it accepts carries ``scope["extensions"]["beamish.frames"]``, the connection's
``write_frame(frame) -> bool``. It writes a whole pre-built frame now and returns True, or
returns False, writing nothing, when the frame must go the ordinary way instead: the
handshake is not complete, the connection is closing or gone, its write buffer is over
the high-water mark (the ASGI ``send`` then waits for it to drain: backpressure is
unchanged), or an extension (permessage-deflate) was negotiated, which makes every frame
connection-specific. Frames written either way go to the same transport in the order they
are written, so the two ways mix without reordering.

It also holds less for each connection. uvicorn's protocol keeps an ``asyncio.Queue`` for
the messages the application has not yet received and an ``asyncio.Event`` for
"writable"; an empty ``Queue`` holds three ``deque``s and an ``Event`` one, 760 bytes each
(3 KB of every connection, most of it never used: uvicorn pauses reading after each
message, so the queue holds one or two, and nothing ever waits to put). ``_Inbox`` and
``_Flag`` are the parts of them uvicorn uses (``put_nowait``, ``get``, ``empty``; ``set``,
``clear``, ``is_set``, ``wait``), on a list and on a lazily made list of waiters. And
once the handshake is answered, the protocol lets go of the handshake's request and
response (their headers, parsed: 2-3 KB), which uvicorn keeps for the connection's life
but reads only until it sends the accept, and which websockets' parser keeps too (another
2.2 KB; see ``_forget_handshake``). And a connection whose application watches its
liveness itself (``IDLE_WATCHED``: a Channels socket, with Phoenix's heartbeat and idle
timeout, as on Cowboy, which sends no pings) gets none of uvicorn's keep-alive pings: no
timer handle per connection (0.54 KB) and no ping written to every socket every 20 s.

It serves everything else exactly as uvicorn does; an ASGI server without it simply has no
``beamish.frames`` in its scopes, and beamish writes through ``send`` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State

__all__ = ["FRAMES", "IDLE_WATCHED", "FrameWrite", "FramedWebSocketProtocol", "frame_of"]

FRAMES = "beamish.frames"
"""The scope extension that holds a connection's ``write_frame``."""

IDLE_WATCHED = "beamish.idle_watched"
"""Set in a connection's scope extensions, before its accept, by an application that
watches the connection's liveness itself (a Channels socket: the client's heartbeat and
the socket's idle timeout): the protocol then sends it no keep-alive pings."""

FrameWrite = Callable[[bytes], bool]


def frame_of(data: str | bytes) -> bytes:
    """The unmasked, uncompressed WebSocket frame of one message: a text frame for ``str``,
    a binary frame for ``bytes``."""
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, bytes(data)).serialize(mask=False)


def _between_frames(parser: Any) -> bool:
    """Whether websockets' parser waits for the first byte of a frame (in ``at_eof``), not
    in the middle of one whose first bytes it has taken from the reader."""
    inner = parser
    while (outer := getattr(inner, "gi_yieldfrom", None)) is not None:
        inner = outer
    return getattr(getattr(inner, "gi_code", None), "co_name", None) == "at_eof"


class _Inbox:
    """What uvicorn's protocol uses of ``asyncio.Queue``: one reader (the app's ``receive``),
    items kept in a list; 3 deques lighter than the queue it replaces. Like that queue it
    has no bound of its own: uvicorn stops reading the socket once a message waits in it,
    so it holds at most the messages of one read, and beamish's reader bounds what follows
    (``max_backlog``)."""

    __slots__ = ("_getter", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None
        return self._items.pop(0)


class _Flag:
    """What uvicorn's protocol uses of ``asyncio.Event``, with its waiters' list made only
    when one waits (a full write buffer) instead of a deque for every connection."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> bool:
        if self._is_set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with ``write_frame`` in the scope, on a lighter inbox
    and writable flag (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = cast(Any, _Inbox())
        self.writable = cast(Any, _Flag())
        self.writable.set()

    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        # The application's task is created, not yet run: its scope can still be added to.
        if self.response.status_code == 101 and not self.conn.extensions:
            extensions = cast(dict[str, object], self.scope["extensions"])
            extensions[FRAMES] = self.write_frame

    def start_keepalive(self) -> None:
        """Called by uvicorn once, right after it has written the accept: the handshake is
        let go here (and not after every ``send``, which would cost each message a
        coroutine frame), then the keep-alive pings start unless the app watches."""
        self._forget_handshake()
        if not self.scope["extensions"].get(IDLE_WATCHED):
            super().start_keepalive()

    def _forget_handshake(self) -> None:
        """Let go of the handshake once accepted: uvicorn's request and response, and the
        request that websockets' ``ServerProtocol.parse`` keeps in its generator's frame
        for the connection's life. Its parser is replaced by the frame parser it runs
        after the handshake (``Protocol.parse``, as websockets itself swaps in ``discard``
        at a close), when it waits between two frames with nothing unread (a client waits
        for the handshake's answer before it sends frames; one that did not is left with
        the parser it has)."""
        self.request = self.response = cast(Any, None)  # read until the accept is sent
        conn = self.conn
        reader = conn.reader
        if (
            conn.state is State.OPEN and not reader.buffer and not reader.eof
            and _between_frames(conn.parser)
        ):
            parser = Protocol.parse(conn)
            next(parser)  # to its first wait for data, as websockets starts its own
            conn.parser = parser

    def write_frame(self, frame: bytes) -> bool:
        """Write a pre-built frame now (True), or nothing if it must go through ``send``."""
        if (
            self.close_sent or self.disconnected or not self.handshake_complete
            or self.initial_response is not None or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
