"""A response's head and its body in one write: one ``send()`` and one TCP segment, not two.

uvicorn's HTTP cycle writes a response's status line and headers to the transport as soon
as the application sends ``http.response.start``, and the body with a second write when
``http.response.body`` follows. On uvloop a write goes to the socket at once: two system
calls and two segments for every small response (``tests/web/test_joined.py`` counts one
write per response with this module). What that saves depends on the machine: on the
benchmark machine's loopback, about what this module's own Python costs (``bench/web.py``
found beamish's server CPU per request level with Starlette's; ``docs/benchmarks.md``).

``JoinedWrites`` is the transport a request's cycle writes to instead (``_edge.py`` gives it
to each cycle). It holds a response's first write, the head, and sends it together with
the next write (the body, in the same turn of the event loop for any response built at
once), as one ``transport.write``. If no write follows in that turn (a streamed response
whose first chunk is not ready, a server-sent event stream), the head goes out alone at
the end of the turn: a held head is noted with the server's ``EndOfTurn``, which schedules
one callback per turn of the loop for all its connections rather than one per response.
Writes keep their order whatever happens: a held head is sent before anything written after
it, and before the transport closes; the connection's protocol calls ``flush()`` before it
writes on the transport itself.

A header line of the server's own can go into the next response head without the ASGI
server's per-header checks: ``head_line(line)`` keeps a line (a whole ``name: value\r\n``,
already known to be valid) that is spliced into the next final head written (a status line
``HTTP/1.1`` and not ``1xx``), before its closing blank line. The endpoint puts its request
id on every response this way (``_request.py``); the protocol gives each request's scope
its ``JoinedWrites`` under ``SCOPE_KEY``.

Every response goes through five calls of these two classes (two writes, a note, two
flushes), so they are also written in C (``_cjoined.c``), which this module exports where it
is built; the Python classes here are the reference, kept as ``PyEndOfTurn`` and
``PyJoinedWrites`` and used when ``BEAMISH_PURE_PYTHON`` is set. The tests run both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

__all__ = ["SCOPE_KEY", "EndOfTurn", "JoinedWrites", "PyEndOfTurn", "PyJoinedWrites"]

SCOPE_KEY = "beamish.joined"  # a request's scope: the JoinedWrites its response goes through


class EndOfTurn:
    """The held heads of one server's connections, sent at the end of the loop's turn."""

    __slots__ = ("_held", "_scheduled")

    def __init__(self) -> None:
        self._held: list[JoinedWrites] = []
        self._scheduled = False

    def note(self, joined: JoinedWrites) -> None:
        self._held.append(joined)
        if not self._scheduled:
            self._scheduled = True
            joined.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        held, self._held = self._held, []
        for joined in held:
            joined.flush()  # most found their head already sent with its body


class JoinedWrites:
    """The transport a request cycle writes through (module docstring)."""

    __slots__ = ("_end_of_turn", "_held", "_line", "expect_head", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 end_of_turn: EndOfTurn) -> None:
        self.transport = transport
        self.loop = loop
        self._end_of_turn = end_of_turn
        self._held: bytes | None = None
        self._line: bytes | None = None  # a header line for the next final head
        self.expect_head = False  # set when a cycle starts: its first write is the head

    def head_line(self, line: bytes) -> None:
        """Splice ``line`` (``name: value\r\n``, valid) into the next final response head."""
        self._line = line

    def write(self, data: bytes) -> None:
        line = self._line
        if (line is not None and type(data) is bytes and data.startswith(b"HTTP/1.1 ")
                and data[9:10] != b"1" and data.endswith(b"\r\n\r\n")):
            self._line = None
            data = data[:-2] + line + b"\r\n"
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
        elif self.expect_head:
            self.expect_head = False
            self._held = data
            self._end_of_turn.note(self)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Send a held head now (before the protocol writes on the transport itself)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # anything else a cycle might ask of it
        return getattr(self.transport, name)


PyEndOfTurn, PyJoinedWrites = EndOfTurn, JoinedWrites  # the reference

if not os.environ.get("BEAMISH_PURE_PYTHON"):
    with contextlib.suppress(ImportError):  # not built: the Python classes serve
        from beamish.web._cjoined import EndOfTurn, JoinedWrites  # type: ignore[assignment]
