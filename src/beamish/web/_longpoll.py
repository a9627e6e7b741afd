"""The LongPoll transport: Channels over plain HTTP, for clients that cannot open a WebSocket.

The ``phoenix`` JavaScript client falls back to it (``new Socket("/socket", {longPollFallbackMs:
2500})``, or ``transport: LongPoll``) behind proxies that refuse WebSockets. A socket serves it
on ``{path}/longpoll`` when its options say ``longpoll=True``.

How it works. A *session* stands for one client. Its process is the very ``SocketTransport``
actor a WebSocket connection has, so joins, channels, fastlane broadcasts, limits and close
codes are the same; what differs is the other end of its ASGI ``send``. Here that end is the
session's buffer: a frame the transport writes is appended there, and a waiting poll is woken.
Every HTTP request is a process of its own, as any request to the endpoint:

- ``GET`` with no session token opens a session: it runs the Socket's ``connect`` (through
  the transport, as for a WebSocket) and answers ``{"status": 410, "token": ...}`` when it
  accepts, ``{"status": 403}`` when it refuses. The client then polls with the token.
- ``GET`` with the token is a poll: it answers ``{"status": 200, "messages": [...]}`` with
  what is buffered, at once if anything is, or as soon as something is written, or
  ``{"status": 204}`` after ``longpoll_window`` seconds of nothing. A session that is gone
  answers ``{"status": 410}``: the client reconnects and rejoins its channels.
- ``POST`` with the token carries the client's messages, one per line (``application/
  x-ndjson``, lines ending in ``\\n`` or ``\\r\\n``); each goes to the transport as a frame
  would. A binary push comes base64 encoded, as the client sends it (a text message is a
  JSON array, so it starts with ``[``). As in Phoenix, only the first ``MAX_BATCH`` (100)
  lines of a body are read, the most the ``phoenix`` client puts in one; the rest are
  dropped, with a warning in the log.
- ``OPTIONS`` is a browser's CORS preflight: answered 200 with the methods allowed and the
  headers asked for, as Phoenix answers it, once the origin check has passed.

The token travels in the ``x-phoenix-longpoll-token`` header (current ``phoenix`` clients)
or as the last ``token`` query parameter (older ones); the header wins, as in Phoenix, since
``token`` may also be one of the socket's own params. Every answer carries the token, as the
client keeps the last one it got. The token is signed with a key made when the endpoint
starts, so a made-up token is never taken for a session; a session lives in the worker that
opened it (run several workers behind sticky routing, or use WebSockets).

Origins. Every request goes through the endpoint's ``check_origin`` first; a refused origin
gets 403 and no CORS header, so a page of another site cannot read the answer. An answer
to a request whose ``Origin`` passed names that origin in ``access-control-allow-origin``
(Phoenix sends ``*`` on every answer, refused ones included).

A session ends when its transport does (an idle socket, a ``disconnect`` broadcast, the
runtime stopping), and when no poll came for ``longpoll_window`` seconds after the last one
ended: the client is gone. The client sends no heartbeats over LongPoll, so the polls are what
keep the session alive, not the socket's ``timeout``. What the client has not fetched is
bounded by ``max_queue_bytes``, as for a WebSocket: past it the session ends with a warning.
The ``phoenix`` client cannot read binary frames over LongPoll, so a binary frame written
to a LongPoll session is dropped with an error in the log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import logging
import secrets
from collections.abc import Callable, MutableMapping
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from beamish._runtime.api import current_runtime, send, spawn_opt, wait_exit
from beamish._runtime.api import exit as exit_process
from beamish._runtime.clock import Clock
from beamish._runtime.pid import Pid
from beamish.web._serializer import V2_JSON
from beamish.web._socket import Socket
from beamish.web._transport import (
    _INBOX_LIMIT,
    SocketTransport,
    _Closed,
    _connect_info,
    _In,
    _TooBig,
)

__all__ = ["LongPoll", "LongPollSession"]

_log = logging.getLogger("beamish.socket")

_CONNECT_TIMEOUT = 30.0  # seconds a new session's connect may take before the GET gives up
_BODY_FRAMES = 8  # a POST body may hold this many maximal frames (the client batches pushes)
MAX_BATCH = 100  # lines of a POST body that are read, as Phoenix's @max_poll_batch_size
_TOKEN_HEADER = "x-phoenix-longpoll-token"
_PREFLIGHT = {
    "access-control-allow-methods": "get, post, options",
    "access-control-max-age": "3600",
}
_SALT = "beamish longpoll session"
_GONE = "gone"  # what _session() says of a token of ours whose session has ended


class _QueueFull(Exception):
    """Raised into the transport's write: the client has not fetched what is buffered."""


class LongPollSession:
    """One LongPoll client: the buffer its transport writes into, the poll waiting on it, and
    the clock that ends it when the polls stop.

    Called as the transport's ASGI ``send``; every call finishes at once (it never waits).
    """

    __slots__ = (
        "_clock",
        "_expiry",
        "_frames",
        "_max_bytes",
        "_polling",
        "_seen",
        "_size",
        "_waiter",
        "_window",
        "accepted",
        "gone",
        "id",
        "pid",
        "transport",
    )

    def __init__(
        self, session_id: str, *, max_bytes: int, window: float, clock: Clock,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.id = session_id
        self.pid: Pid | None = None
        self.transport: SocketTransport | None = None
        self.accepted: asyncio.Future[bool] = loop.create_future()
        self.gone = False
        self._frames: list[str] = []
        self._size = 0
        self._max_bytes = max_bytes
        self._waiter: asyncio.Future[None] | None = None
        self._window = window
        self._clock = clock
        self._polling = 0
        self._seen = clock.now()
        self._expiry: Any = None

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            if text is None:
                _log.error(
                    "LongPoll session %s: dropped a binary frame of %d bytes; the phoenix "
                    "client reads only text over LongPoll (use a WebSocket for binary "
                    "payloads)", self.id[:8], len(message.get("bytes") or b""),
                )
                return
            size = self._size + len(text)
            if size > self._max_bytes:
                _log.warning(
                    "LongPoll session %s: closing a client that does not poll fast enough: "
                    "%d bytes waiting to be fetched (the limit is %d, max_queue_bytes)",
                    self.id[:8], size, self._max_bytes,
                )
                self.end()
                raise _QueueFull("the LongPoll client has not fetched its frames")
            self._frames.append(text)
            self._size = size
            self._wake()
        elif kind == "websocket.accept":
            if not self.accepted.done():
                self.accepted.set_result(True)
                self.seen()
        elif kind == "websocket.close":
            self.end()

    # -- polls ----------------------------------------------------------------------------------

    async def poll(self) -> list[str]:
        """What is buffered, removed from the buffer: at once if anything is, else as soon as
        something is written, the session ends or a newer poll comes, or after the window."""
        self._polling += 1
        try:
            if not self._frames and not self.gone:
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(None)  # the newer poll takes over
                waiter = self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await asyncio.wait_for(waiter, self._window)
                except TimeoutError:
                    pass
                finally:
                    if self._waiter is waiter:
                        self._waiter = None
            frames, self._frames, self._size = self._frames, [], 0
            return frames
        finally:
            self._polling -= 1
            self.seen()

    def seen(self) -> None:
        """The client was heard from (a poll ended, a post came): the window starts again."""
        self._seen = self._clock.now()
        if self._expiry is None and not self.gone:
            self._expiry = self._clock.call_later(self._window, self._check)

    def _check(self) -> None:
        self._expiry = None
        if self.gone or self.pid is None:
            return
        quiet = self._clock.now() - self._seen
        if self._polling == 0 and quiet >= self._window:
            _log.debug("LongPoll session %s: no poll for %.1f s, closing it", self.id[:8], quiet)
            send_to(self.pid, _Closed(0))
        else:
            self._expiry = self._clock.call_later(max(self._window - quiet, 0.001), self._check)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """The session is over: no more frames, and a waiting poll answers now."""
        self.gone = True
        if not self.accepted.done():
            self.accepted.set_result(False)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._wake()


class LongPoll:
    """The ASGI app of one socket's ``/longpoll`` path (every request in its own process).

    ``admit()`` says whether the endpoint has room for one more connection.
    """

    def __init__(
        self, socket_cls: type[Socket], *, pubsub: str, origin_ok: Callable[[Any, Any], bool],
        admit: Callable[[], bool],
    ) -> None:
        self.socket_cls = socket_cls
        self.pubsub = pubsub
        self.sessions: dict[str, LongPollSession] = {}
        self._origin_ok = origin_ok
        self._admit = admit
        self._signer = URLSafeSerializer(secrets.token_bytes(32), salt=_SALT)

    def __repr__(self) -> str:
        return f"<LongPoll of {self.socket_cls.__qualname__}: {len(self.sessions)} sessions>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        origin, host = request.headers.get("origin"), request.headers.get("host")
        if not self._origin_ok(origin, host):
            _log.warning("refused a LongPoll request on %s from origin %r (host %r): "
                         "check_origin", scope.get("path"), _clip(origin), _clip(host))
            await _json(403, {"status": 403})(scope, receive, send)
            return
        if request.method == "OPTIONS":
            response: Response = _preflight(request)
        elif request.method not in ("GET", "POST"):
            response = _json(405, {
                "status": 405, "error": f"LongPoll takes GET, POST and OPTIONS, not "
                                        f"{_clip(request.method)}",
            })
            response.headers["allow"] = "GET, POST, OPTIONS"
        else:
            session = self._session(request)
            if isinstance(session, LongPollSession):
                if request.method == "GET":
                    response = await self._poll(session)
                else:
                    response = await self._publish(session, request)
            elif session is None and request.method == "GET":
                response = await self._open(request)
            else:  # a session that has ended: the client reconnects and rejoins
                response = _json(200, {"status": 410, "token": None})
        if origin is not None:  # it passed the check: this origin may read the answer
            response.headers["access-control-allow-origin"] = origin
            response.headers.append("vary", "origin")
        await response(scope, receive, send)

    def _session(self, request: Request) -> LongPollSession | str | None:
        """The session the request's token names; ``_GONE`` for a token of ours whose session
        has ended; None for no token, or a token that is not ours (a socket param, say)."""
        token = request.headers.get(_TOKEN_HEADER)
        if token is None:
            tokens = request.query_params.getlist("token")
            if not tokens:
                return None
            token = tokens[-1]  # ours comes last, after the socket's own params
        if not token:
            return None
        try:
            session_id = self._signer.loads(token)
        except BadData:
            return None
        found = self.sessions.get(session_id) if type(session_id) is str else None
        if found is None or found.gone:
            return _GONE
        return found

    # -- opening --------------------------------------------------------------------------------

    async def _open(self, request: Request) -> Response:
        params = dict(request.query_params)
        vsn = params.get("vsn", "2.0.0")
        if not vsn.startswith("2."):
            _log.error(
                "%s: a LongPoll client asked for protocol version %r; this server speaks 2.x "
                "(the phoenix JavaScript client sends vsn=2.0.0)",
                self.socket_cls.__qualname__, _clip(vsn),
            )
            return _json(403, {"status": 403})
        if not self._admit():
            # plain text, as the endpoint answers when full: the client reads no status from
            # it, counts the poll as failed and retries later (a JSON status it does not know
            # would throw in the client instead)
            return PlainTextResponse(
                "503 Service Unavailable\n", status_code=503, headers={"retry-after": "1"}
            )
        options = self.socket_cls.options
        runtime = current_runtime()
        session = LongPollSession(
            secrets.token_urlsafe(16), max_bytes=options.max_queue_bytes,
            window=options.longpoll_window, clock=runtime.clock,
            loop=asyncio.get_running_loop(),
        )
        info = _connect_info(request.scope)
        auth = request.headers.get("x-phoenix-authtoken")
        if auth is not None:
            info["auth_token"] = auth
        transport = SocketTransport(
            self.socket_cls, options, self.pubsub, params, info, V2_JSON, session,
            {"type": "websocket", "subprotocols": []},
            transport_name="longpoll", watch_idle=False,
        )
        session.transport = transport
        pid = session.pid = spawn_opt(transport, trap_exit=True)
        self.sessions[session.id] = session
        # watched from a task outside any process: the session outlives this request
        watch = contextvars.Context()
        watch.run(runtime.bind)
        asyncio.get_running_loop().create_task(
            self._watch(session, pid), name=f"beamish longpoll session {pid}", context=watch
        )
        try:
            accepted = await asyncio.wait_for(asyncio.shield(session.accepted), _CONNECT_TIMEOUT)
        except TimeoutError:
            _log.error("%s: a LongPoll connect took over %.0f s; the session is closed",
                       self.socket_cls.__qualname__, _CONNECT_TIMEOUT)
            send_to(pid, _Closed(0))
            accepted = False
        if not accepted:
            return _json(200, {"status": 403})
        return _json(200, {"status": 410, "token": self._signer.dumps(session.id)})

    async def close_all(self, timeout: float = 5.0) -> None:
        """End every session (the endpoint is stopping) and wait for their processes."""
        pids = [s.pid for s in list(self.sessions.values()) if s.pid is not None]
        exits = [asyncio.ensure_future(wait_exit(pid)) for pid in pids]
        for pid in pids:
            send_to(pid, _Closed(0))
        if exits:
            await asyncio.wait(exits, timeout=timeout)
        for pid, exited in zip(pids, exits, strict=True):
            if not exited.done():
                exit_process(pid, "kill")

    async def _watch(self, session: LongPollSession, pid: Pid) -> None:
        try:
            await wait_exit(pid)
        finally:
            session.end()
            self.sessions.pop(session.id, None)

    # -- polling and publishing -----------------------------------------------------------------

    async def _poll(self, session: LongPollSession) -> Response:
        token = self._signer.dumps(session.id)
        frames = await session.poll()
        if frames:
            return _json(200, {"status": 200, "token": token, "messages": frames})
        return _json(200, {"status": 410 if session.gone else 204, "token": token})

    async def _publish(self, session: LongPollSession, request: Request) -> Response:
        options = self.socket_cls.options
        limit = options.max_frame_size * _BODY_FRAMES
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                _log.warning("%s: refused a LongPoll POST of over %d bytes (%d x "
                             "max_frame_size)", self.socket_cls.__qualname__, limit, _BODY_FRAMES)
                return _json(413, {"status": 413})
            chunks.append(chunk)
        body = b"".join(chunks)
        session.seen()
        lines, dropped = entries(body, request.headers.get("content-type", ""))
        if dropped:
            _log.warning(
                "LongPoll session %s: dropped %d of the %d entries of a POST: a batch is read "
                "up to its first %d lines, as Phoenix reads it (the phoenix client sends no "
                "more)", session.id[:8], dropped, dropped + len(lines), MAX_BATCH,
            )
        pid, transport = session.pid, session.transport
        assert pid is not None and transport is not None
        for line in lines:
            size = len(line)
            send_to(pid, _TooBig(size) if size > options.max_frame_size else _In(_frame(line)))
            while transport.mailbox_size() > _INBOX_LIMIT and not session.gone:
                await asyncio.sleep(0.005)  # the process is behind: take the rest later
        return _json(200, {"status": 200, "token": self._signer.dumps(session.id)})


send_to = send
"""The process API's ``send`` (ASGI's ``send`` is a parameter here)."""


def entries(body: bytes, content_type: str) -> tuple[list[bytes], int]:
    """The client messages of a POST body, and how many lines past ``MAX_BATCH`` were dropped.

    An ``application/x-ndjson`` body holds one message per line (``\\n`` or ``\\r\\n``); of
    its first ``MAX_BATCH`` lines, the empty ones are skipped (Phoenix counts them too). Any
    other body is one message.
    """
    if not content_type.startswith("application/x-ndjson"):
        return ([body] if body else []), 0
    lines = body.split(b"\n", MAX_BATCH)
    dropped = 0
    if len(lines) > MAX_BATCH:
        dropped = sum(1 for line in lines.pop().split(b"\n") if line.strip(b"\r"))
    # carriage returns ending a line are its end (CRLF, or a stray CR before it: JSON
    # whitespace), so a line of them alone is empty, as the dropped lines are counted
    kept = [line.rstrip(b"\r") for line in lines]
    return [line for line in kept if line], dropped


def _frame(line: bytes) -> str | bytes:
    """One client message: a JSON text frame, or a binary one the client base64-encoded."""
    if line[:1] == b"[":
        try:
            return line.decode()
        except UnicodeDecodeError:
            return line  # the transport's decoder names what is wrong with it
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return line.decode("latin-1")  # neither: the decoder refuses it, closing with 1007


def _json(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _preflight(request: Request) -> Response:
    """A CORS preflight's answer, as Phoenix gives it: the headers the browser asks to send
    are allowed (the origin has passed the check already)."""
    asked = ", ".join(request.headers.getlist("access-control-request-headers"))
    return Response(b"", 200, headers={**_PREFLIGHT, "access-control-allow-headers": asked})


def _clip(text: str | None, limit: int = 200) -> str | None:
    """A client-sent string as a log line may show it: at most ``limit`` characters."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
