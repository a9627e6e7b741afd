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

It serves everything else exactly as uvicorn does; an ASGI server without it simply has no
``beamish.frames`` in its scopes, and beamish writes through ``send`` there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

__all__ = ["FRAMES", "FrameWrite", "FramedWebSocketProtocol", "frame_of"]

FRAMES = "beamish.frames"
"""The scope extension that holds a connection's ``write_frame``."""

FrameWrite = Callable[[bytes], bool]


def frame_of(data: str | bytes) -> bytes:
    """The unmasked, uncompressed WebSocket frame of one message: a text frame for ``str``,
    a binary frame for ``bytes``."""
    if isinstance(data, str):
        return Frame(Opcode.TEXT, data.encode()).serialize(mask=False)
    return Frame(Opcode.BINARY, bytes(data)).serialize(mask=False)


class FramedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with ``write_frame`` in the scope (module docstring)."""

    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        # The application's task is created, not yet run: its scope can still be added to.
        if self.response.status_code == 101 and not self.conn.extensions:
            extensions = cast(dict[str, object], self.scope["extensions"])
            extensions[FRAMES] = self.write_frame

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
