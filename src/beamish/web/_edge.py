"""Limits at the server's edge: what guards a connection before a request exists.

How it works. uvicorn's httptools protocol reads a request's head without a bound: a client
may take as long as it likes to send it (slowloris), make it as large as it likes, send as
many header lines as it likes, and open connections until the process runs out of file
descriptors, at which point the node accepts nothing at all. The endpoint cannot help: it
sees a request only once its head is complete. ``GuardedHttpToolsProtocol`` is uvicorn's
protocol with four guards, set by one ``EdgeLimits`` record and sharing one ``EdgeState``
per server:

- **connection limit.** A connection accepted while ``max_connections`` are open (HTTP,
  WebSocket, busy, idle keep-alive and half-open alike: uvicorn's own table of connections)
  is answered ``503`` with ``retry-after`` at once, before it is read, and closed. The limit
  sits below the process's descriptor limit, so the node never reaches it and keeps serving
  the connections it holds.
- **head timeout.** A request's head (request line and headers) must be complete within
  ``header_timeout`` seconds: of the connection opening for its first request, of the
  request's first byte for later ones on a keep-alive connection. Past it, a connection that
  sent part of a head gets ``408``; one that sent nothing is closed.
- **head size.** A request line or head larger than ``max_header_bytes`` gets ``414`` or
  ``431``. A head that ends in the read it began in is at most that read, and is only
  added up (request target and header lines, as the parser reported them) when the read is
  larger than the limit; a head still open after a read is added up then, and each later
  read is counted whole, so what a connection can make the server hold is the limit plus
  one read (at most 256 KiB).
- **header count.** More than ``max_headers`` header lines get ``431``, counted as the
  parser reports each one (by the length of uvicorn's list of them), so that one read of
  thousands of tiny lines stops at the limit.

A refusal is written with ``connection: close`` (or, for a pipelined request whose head
breaks a limit while the one before it is still being answered, the connection ends after
that answer); the server then stops writing and reads
and drops what the client still sends until it closes (at most ``REFUSAL_LINGER`` seconds),
so the client reads the answer instead of a reset. At most ``MAX_LINGERING`` refused
connections past the limit linger at once; beyond that they are closed right after the
answer is written. Refusals are logged on ``beamish.web`` at most once per
``LOG_INTERVAL`` seconds for each kind, with counts: a flood does not flood the log.

The protocol also gives each request's cycle a ``JoinedWrites`` (``_joined.py``) to write
to, so that a response's head and body leave in one write, and puts it in the request's
scope (``beamish.joined``), where the endpoint adds its request id line to the head.
"""

from __future__ import annotations

import asyncio
import http
import logging
import math
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from beamish.web._joined import SCOPE_KEY as JOINED
from beamish.web._joined import EndOfTurn, JoinedWrites

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEADER_BYTES",
    "EdgeLimits",
    "EdgeState",
    "GuardedHttpToolsProtocol",
    "default_max_connections",
]

log = logging.getLogger("beamish.web")

DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request's head to arrive whole
DEFAULT_MAX_HEADER_BYTES = 32_768  # request line and headers, as nginx's default buffers
DEFAULT_MAX_HEADERS = 100  # header lines, as Cowboy and Apache
FALLBACK_MAX_CONNECTIONS = 16_384  # where the descriptor limit cannot be read
REFUSAL_LINGER = 1.0  # seconds a refused connection may keep sending before it is closed
MAX_LINGERING = 256  # refused connections past the limit that may linger at once
LOG_INTERVAL = 10.0  # seconds between two log lines about one kind of refusal


def default_max_connections() -> int:
    """The descriptor limit (``ulimit -n``) less a tenth, which stays free for the rest.

    Files, database connections, logs and the answers to refused connections need
    descriptors too; the tenth is at least 64 and, when the limit cannot be read (no
    ``resource`` module, or no limit), the default is 16,384.
    """
    try:
        import resource
    except ImportError:  # Windows
        return FALLBACK_MAX_CONNECTIONS
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return FALLBACK_MAX_CONNECTIONS
    return max(1, soft - max(64, soft // 10))


def _positive(name: str, value: Any, kind: type) -> None:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and (type(value) is not int or value < 1):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if kind is float and (not numeric or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLimits:
    """What a connection may do before its request reaches the endpoint.

    ``max_connections=None`` is ``default_max_connections()``, read when the server is made.
    """

    max_connections: int | None = None
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS

    def __post_init__(self) -> None:
        if self.max_connections is not None:
            _positive("max_connections", self.max_connections, int)
        _positive("header_timeout", self.header_timeout, float)
        _positive("max_header_bytes", self.max_header_bytes, int)
        _positive("max_headers", self.max_headers, int)


@dataclass(slots=True)
class EdgeState:
    """What the connections of one server share: the limits, refusals lingering, log pacing."""

    limits: EdgeLimits
    max_connections: int = 0
    lingering: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # kind -> count since last log
    logged_at: dict[str, float] = field(default_factory=dict)  # kind -> loop time
    end_of_turn: EndOfTurn = field(default_factory=EndOfTurn)  # held response heads

    def __post_init__(self) -> None:
        self.max_connections = self.limits.max_connections or default_max_connections()

    def note(self, kind: str, now: float, message: str) -> None:
        """Count one refusal of ``kind``; log the count at most once per LOG_INTERVAL."""
        self.refused[kind] = self.refused.get(kind, 0) + 1
        last = self.logged_at.get(kind)
        if last is not None and now - last < LOG_INTERVAL:
            return
        count = self.refused.pop(kind)
        self.logged_at[kind] = now
        since = "" if last is None else f" in the last {now - last:.0f}s"
        log.warning("refused %d connection(s)%s: %s", count, since, message)


class _HeadRefused(Exception):
    """Raised from a parser callback to stop reading a head that broke a limit."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _answer(status: int, body: str, *, retry_after: bool = False) -> bytes:
    phrase = http.HTTPStatus(status).phrase
    text = body.encode("ascii")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(text)}\r\nconnection: close\r\n"
        + ("retry-after: 1\r\n" if retry_after else "")
        + "\r\n"
    )
    return head.encode("ascii") + text


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the limits of ``EdgeState`` (see the module)."""

    def __init__(self, *args: Any, edge: EdgeState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge = edge
        self._closing = False  # answered (or dropped): whatever comes now is discarded
        self._lingers = False  # counted in edge.lingering
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's head was still open after the last read
        self._head_started = 0.0
        self._head_bytes = 0  # the open head's bytes so far (at most)
        self._read = 0  # the length of the read being parsed
        self._max_headers = edge.limits.max_headers
        self._max_header_bytes = edge.limits.max_header_bytes
        self._joined: JoinedWrites | None = None  # what each request's cycle writes to

    # -- connections ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        edge = self.edge
        if len(self.connections) >= edge.max_connections:
            self.transport = transport  # type: ignore[assignment]
            edge.note(
                "limit", self.loop.time(),
                f"{edge.max_connections} connections were open (the connection limit); "
                "each was answered 503",
            )
            self._refuse_now(_answer(503, "Service Unavailable: too many connections\n",
                                     retry_after=True), outside=True)
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._joined = JoinedWrites(self.transport, self.loop, edge.end_of_turn)
        self._head_started = self.loop.time()
        self._timer = self.loop.call_at(
            self._head_started + edge.limits.header_timeout, self._head_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._lingers:
            self._lingers = False
            self.edge.lingering -= 1
        if self.flow is None:  # refused before uvicorn knew of it
            return
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._closing:
            self.transport.close()

    # -- reading ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # an answered connection: drop what the client still sends
        joined = self._joined
        if joined is not None:
            joined.flush()  # what follows may write on the transport itself
        scope = self.scope  # a new request's head replaces it
        self._read = len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                # uvicorn hands the WebSocket protocol the request's head alone: bytes the
                # client sent after it in the same read (a first frame sent without
                # waiting for the 101) would be lost. They go to the new protocol.
                rest = data[upgrade.args[0]:] if upgrade.args else b""
                protocol = self.transport.get_protocol()
                if rest and protocol is not self:
                    protocol.data_received(rest)  # type: ignore[attr-defined]
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__
            if isinstance(refused, _HeadRefused):
                self._refuse_head(refused.status, refused.reason)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        cycle = self.cycle
        if self._closing or self.scope is None or (cycle is not None and cycle.scope is self.scope):
            return  # no head open after this read: the common case
        # a head is open: it began in this read, or before it and goes on
        if self._in_head and self.scope is scope:
            self._head_bytes += len(data)  # all of this read is head
        else:
            self._in_head = True
            self._head_bytes = self._head_size()
            if self._timer is None:  # a later request on a keep-alive connection
                self._head_started = self.loop.time()
        if len(self.url) > self._max_header_bytes:
            self._refuse_head(414, "the request line is too long")
        elif self._head_bytes > self._max_header_bytes:
            self._refuse_head(431, "the request's header fields are too large")
        elif self._timer is None:
            self._timer = self.loop.call_at(
                self._head_started + self.edge.limits.header_timeout, self._head_timed_out
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        # counted as the parser reports them, so that a read of thousands of tiny header
        # lines stops at the limit: uvicorn keeps a list entry for each
        if len(self.headers) >= self._max_headers:
            raise _HeadRefused(431, f"more than {self._max_headers} header fields")
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        # the head is at most this read, with what came of it in the reads before
        limit = self._max_header_bytes
        if self._read + (self._head_bytes if self._in_head else 0) > limit:
            # then count it, which is rarely needed
            if len(self.url) > limit:
                raise _HeadRefused(414, "the request line is too long")
            if self._head_size() > limit:
                raise _HeadRefused(431, "the request's header fields are too large")
        self._in_head = False
        self._cancel_timer()
        HttpToolsProtocol.on_headers_complete(self)
        cycle, joined = self.cycle, self._joined
        if cycle is not None and joined is not None and cycle.transport is self.transport:
            cycle.transport = cast(asyncio.Transport, joined)  # a new request's cycle
            joined.expect_head = True
            cycle.scope[JOINED] = joined  # type: ignore[literal-required]  # for head_line

    def _head_size(self) -> int:
        """The open head's bytes the parser has reported: request target and header lines."""
        size = len(self.url)
        for name, value in self.headers:
            size += len(name) + len(value) + 4  # ": " and CRLF
        return size

    # -- refusing ---------------------------------------------------------------------------

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._closing or self.transport.is_closing():
            return
        timeout = self.edge.limits.header_timeout
        if self._in_head:
            self.edge.note("timeout", self.loop.time(),
                           f"a request's head did not arrive within {timeout:g}s; answered 408")
            self._refuse_now(_answer(408, "Request Timeout\n"))
        else:  # never sent a byte of a request
            self._closing = True
            self.transport.close()

    def _refuse_head(self, status: int, reason: str) -> None:
        limits = self.edge.limits
        self.edge.note(
            f"head{status}", self.loop.time(),
            f"{reason} (limits: {limits.max_header_bytes} bytes, {limits.max_headers} "
            f"header fields); answered {status}",
        )
        self._refuse_now(_answer(status, f"{http.HTTPStatus(status).phrase}: {reason}\n"))

    def _refuse_now(self, answer: bytes, *, outside: bool = False) -> None:
        """Write ``answer``, stop writing, drop what comes until the client closes."""
        self._closing = True
        self._in_head = False
        self._cancel_timer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # a pipelined head broke a limit while the request before it is still answered:
            # no answer can go in between; the connection ends after that response
            cycle.keep_alive = False
            return
        if self._joined is not None:
            self._joined.flush()
        transport = self.transport
        transport.write(answer)
        edge = self.edge
        lingering_allowed = not outside or edge.lingering < MAX_LINGERING
        if not lingering_allowed or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if outside:
            self._lingers = True
            edge.lingering += 1
        self._timer = self.loop.call_later(REFUSAL_LINGER, transport.close)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
