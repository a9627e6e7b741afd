"""The request process: every HTTP request is handled in a process of its own.

How it works. The ASGI server already runs each request in an asyncio task; ``serve`` makes
that very task the request's process for as long as the app handles it
(``Runtime.as_process``), so a request costs one process record and no extra task. The
process has a pid (``beamish.self()`` in a handler), can link, monitor, call and receive
like any other, and ends when the response has been handled:

- the app returns: the process exits ``"normal"``;
- the app raises: it exits with ``Crash(exc)`` (its links hear of it), one crash report is
  logged with the request id, method, path and traceback, and the client gets a 500 that
  names the request id, if the response had not started;
- it outlives its deadline: the endpoint's *sweeper* asks it to stop with the exit signal
  ``("shutdown", "request_timeout")`` (and kills it one tick later if it is still there),
  and the client gets a 504;
- its client goes away while it runs: it is stopped with ``("shutdown",
  "client_disconnected")`` — see "linked to its connection" below;
- another exit signal ends it (a linked process crashed, the node stops): the client gets
  a 500 (503 when the node is shutting down).

Deadlines cost no timer per request: requests sit in an ``InFlight`` table (one dict store
and one dict delete each), and the sweeper process ticks every ``tick`` seconds, looking
only at requests that outlived a tick.

Linked to its connection. HTTP/1.1 keep-alive carries many requests over one connection,
one after the other; each gets a new process, so the link runs one way, as with Cowboy's
stream processes: when the connection closes under a request, its process is stopped; when
a request process crashes, the connection survives (the client gets its 500 and may send
the next request). A handler learns of a disconnect when it reads the body (Starlette raises
``ClientDisconnect``, which stops the process the same way). A request still running after
``watch_after`` seconds gets a *disconnect watch*: a small task that reads the ASGI
``receive`` channel on its behalf and stops the process when the client leaves; body
messages it reads are relayed to the handler unchanged. Short requests never pay for one.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import os
import re
import time
import traceback
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from starlette.requests import ClientDisconnect

from beamish._errors import ProcessExit, SystemLimitError
from beamish._runtime.api import exit as exit_process
from beamish._runtime.api import is_alive
from beamish._runtime.events import event
from beamish._runtime.messages import is_shutdown
from beamish._runtime.pid import Pid
from beamish._runtime.receive import sleep
from beamish._runtime.runtime import Runtime
from beamish.logs import add_provider
from beamish.web._clip import clip_text
from beamish.web._inflight import InFlight, ticks_for
from beamish.web._joined import SCOPE_KEY as JOINED

__all__ = [
    "CLIENT_DISCONNECTED",
    "REQUEST_TIMEOUT",
    "Flight",
    "Requests",
    "error_response",
    "request_id",
    "set_timeout",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_TIMEOUT = ("shutdown", "request_timeout")
CLIENT_DISCONNECTED = ("shutdown", "client_disconnected")
SCOPE_KEY = "beamish.request"
_DISCONNECT: Message = {"type": "http.disconnect"}
_INCOMING_ID = re.compile(rb"[A-Za-z0-9._~+/=-]{8,200}\Z")

log = logging.getLogger("beamish.web")

REQUEST_START = event("beamish", "endpoint", "start")
REQUEST_STOP = event("beamish", "endpoint", "stop")
REQUEST_EXCEPTION = event("beamish", "endpoint", "exception")


_LIVE: weakref.WeakSet[Requests] = weakref.WeakSet()  # for the log records' request ids


def _request_id_of(pid: Pid) -> str | None:
    """The request id of the request whose process is ``pid`` (log records ask)."""
    for requests in _LIVE:
        flights = requests.inflight
        flight = flights.young.get(pid.id) or flights.old.get(pid.id)
        if flight is not None and flight.pid == pid:
            return flight.request_id()
    return None


add_provider(_request_id_of)


class Requests:
    """The request processes of one running endpoint: options, the table, the sweeper."""

    def __init__(
        self, runtime: Runtime, *, timeout: float | None, tick: float,
        watch_after: float | None, request_id_header: str | None,
    ) -> None:
        self.runtime = runtime
        self.tick = tick
        self.inflight: InFlight[Flight] = InFlight()
        self.timeout_ticks = 0 if timeout is None else ticks_for(timeout, tick)
        self.watch_ticks = None if watch_after is None else ticks_for(watch_after, tick)
        self.header = request_id_header.lower().encode("latin-1") if request_id_header else None
        self.line = self.header + b": " if self.header is not None else b""  # + id + CRLF
        self.prefix = base64.b32encode(os.urandom(5)).decode().lower() + "-"
        self.sweeper: Pid | None = None
        _LIVE.add(self)

    # -- one request ---------------------------------------------------------------------

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request with ``app``, in a process of its own."""
        flight = Flight(self, scope, receive, send)
        scope[SCOPE_KEY] = flight
        key = 0
        timed = REQUEST_STOP.handlers or REQUEST_EXCEPTION.handlers or REQUEST_START.handlers
        began = time.monotonic() if timed else 0.0
        crash: Exception | None = None
        try:
            with self.runtime.process_block() as pid:  # awaits nothing: no coroutines
                flight.pid = pid
                key = pid.id
                self.inflight.young[key] = flight
                if REQUEST_START.handlers:
                    metadata = flight.telemetry()
                    metadata["headers"] = scope.get("headers") or ()
                    REQUEST_START.emit({"monotonic_time": began, "system_time": time.time()},
                                       metadata)
                try:
                    await app(scope, flight.receive, flight.send)
                except ClientDisconnect:
                    flight.why = "disconnect"
                    raise ProcessExit(CLIENT_DISCONNECTED) from None
        except ProcessExit as stop:
            await self._stopped(flight, stop.reason)
        except SystemLimitError as exc:  # no process could be made for it
            log.error("request refused: %s", exc)
            await _respond(send, scope, 503, None, None, [(b"retry-after", b"1")])
        except Exception as exc:
            if not key:  # no process could be made: the runtime is not running
                log.error("request refused: no process for it (%s: %s)", type(exc).__name__, exc)
                await _respond(send, scope, 503, None, None, [(b"retry-after", b"1")])
                return
            crash = exc
            await self._crashed(flight, exc)
        else:
            if flight.status == 0 and flight.why is None:
                log.error(
                    "request %s (%s %s) ended without sending a response",
                    flight.request_id(), clip_text(scope.get("method")),
                    clip_text(scope.get("path")),
                )
                await _answer(flight, 500)
        finally:
            if timed and key:
                if crash is None and flight.why is None and REQUEST_STOP.handlers:
                    ended = time.monotonic()  # the common case, without _ended's call
                    REQUEST_STOP.emit({"duration": ended - began, "monotonic_time": ended},
                                      flight.telemetry())
                else:
                    _ended(flight, began, crash)
            scope.pop(SCOPE_KEY, None)  # the scope and the flight would hold each other
            if key and self.inflight.young.pop(key, None) is None:
                self.inflight.old.pop(key, None)
                if flight.watcher is not None:
                    flight.watcher.cancel()

    async def _crashed(self, flight: Flight, exc: Exception) -> None:
        """Log the crash (with its traceback and request id) and answer 500 if nothing was
        sent yet."""
        scope = flight.scope
        rid = flight.request_id()
        log.error(
            "request %s crashed: %s %s in %r: %s: %s",
            rid, clip_text(scope.get("method")), clip_text(scope.get("path")), flight.pid,
            type(exc).__name__, exc,
            exc_info=(type(exc), exc, exc.__traceback__), extra={"request_id": rid},
        )
        if flight.status == 0:
            await _answer(flight, 500)

    async def _stopped(self, flight: Flight, reason: Any) -> None:
        scope = flight.scope
        why = flight.why
        if why == "disconnect":
            log.debug("request %s: the client went away; stopped", flight.request_id())
            return
        rid = flight.request_id()
        if why == "timeout":
            log.warning(
                "request %s (%s %s) in %r passed its deadline; stopped",
                rid, clip_text(scope.get("method")), clip_text(scope.get("path")), flight.pid,
                extra={"request_id": rid},
            )
            status = 504
        else:
            log.warning(
                "request %s (%s %s): its process %r was stopped by an exit signal: %r",
                rid, clip_text(scope.get("method")), clip_text(scope.get("path")), flight.pid,
                reason,
                extra={"request_id": rid},
            )
            status = 503 if is_shutdown(reason) else 500
        if flight.status == 0:
            await _answer(flight, status)

    # -- the sweeper ---------------------------------------------------------------------

    async def sweep_forever(self) -> None:
        """The sweeper process's body: one sweep per tick."""
        while True:
            await sleep(self.tick)
            try:
                self.sweep()
            except Exception:  # keep sweeping: deadlines must not stop for one bad sweep
                log.exception("the request sweeper failed; it goes on")

    def sweep(self) -> None:
        found = self.inflight.sweep(self.watch_ticks)
        for flight in found.stop:
            flight.why = "timeout"
            if flight.pid is not None:
                exit_process(flight.pid, REQUEST_TIMEOUT)
        for flight in found.kill:
            if flight.pid is not None:
                exit_process(flight.pid, "kill")
        for flight in found.watch:
            flight.start_watch()


class Flight:
    """One request in flight: its scope, its process, its response so far."""

    __slots__ = (
        "_id", "body_done", "born", "complete", "deadline", "owner", "pid", "raw_receive",
        "raw_send", "reading", "relay", "route", "scope", "status", "stopping", "watched",
        "watcher", "why",
    )

    def __init__(self, owner: Requests, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner = owner
        self.scope = scope
        self.raw_receive = receive
        self.raw_send = send
        self.pid: Pid | None = None
        now = owner.inflight.now
        self.born = now
        self.deadline = now + owner.timeout_ticks if owner.timeout_ticks else 0
        self.stopping = 0
        self.watched = False
        self.status = 0  # the response status once it started
        self.complete = False
        self.reading = False
        self.body_done = False
        self.relay: _Relay | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.why: str | None = None
        self._id: str | None = None
        self.route: str | None = None  # the matched route's template, told by the router

    def telemetry(self) -> dict[str, Any]:
        """The metadata of this request's telemetry events."""
        scope = self.scope
        return {
            "method": scope.get("method"), "path": scope.get("path"), "route": self.route,
            "status": self.status, "request_id": self.request_id(), "pid": self.pid,
        }

    def request_id(self) -> str:
        """The request's id: the client's ``x-request-id`` if it sent a sane one, else ours."""
        rid = self._id
        if rid is None:
            header = self.owner.header
            if header is not None:
                for name, value in self.scope.get("headers", ()):
                    if name == header and _INCOMING_ID.match(value):
                        rid = value.decode("latin-1")
                        break
            if rid is None:
                pid = self.pid
                rid = self.owner.prefix + (format(pid.id, "x") if pid is not None else "0")
            self._id = rid
        return rid

    # -- the ASGI channels the app gets ----------------------------------------------------

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            header = self.owner.header
            joined = self.scope.get(JOINED) if header is not None else None
            if joined is not None:  # beamish's protocol: the line goes into the head as is
                joined.head_line(self.owner.line + self.request_id().encode("latin-1") + b"\r\n")
            elif header is not None:
                message = {
                    **message,
                    "headers": [*message.get("headers", ()),
                                (header, self.request_id().encode("latin-1"))],
                }
        elif not message.get("more_body", False):
            self.complete = True
        try:
            await self.raw_send(message)
        except OSError:  # ASGI 2.4: the client is gone
            self.why = "disconnect"
            raise ProcessExit(CLIENT_DISCONNECTED) from None

    async def receive(self) -> Message:
        relay = self.relay
        if relay is not None:
            return await relay.get()
        self.reading = True
        try:
            message = await self.raw_receive()
        finally:
            self.reading = False
        if not message.get("more_body", False):
            self.body_done = True
        return message

    # -- the disconnect watch --------------------------------------------------------------

    def start_watch(self) -> None:
        """Start watching for the client leaving, if the receive channel is free to read."""
        if self.reading or self.complete or (not self.body_done and _has_body(self.scope)):
            return  # the handler reads (it will see a disconnect) or a body is unread
        self.watched = True
        self.relay = _Relay()
        loop = asyncio.get_running_loop()
        self.watcher = loop.create_task(self._watch(), context=contextvars.Context())

    async def _watch(self) -> None:
        relay = self.relay
        assert relay is not None
        try:
            while True:
                message = await self.raw_receive()
                if message["type"] != "http.disconnect":
                    relay.put(message)
                    continue
                relay.close()
                if not self.complete and self.pid is not None and is_alive(self.pid):
                    self.why = "disconnect"
                    self.owner.runtime.bind()
                    exit_process(self.pid, CLIENT_DISCONNECTED)
                return
        except Exception:
            relay.close()
            log.exception("the disconnect watch of request %s failed", self.request_id())


class _Relay:
    """Messages the disconnect watch read for the handler, in order; then a disconnect."""

    __slots__ = ("closed", "items", "waiter")

    def __init__(self) -> None:
        self.items: deque[Message] = deque()
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None

    def put(self, message: Message) -> None:
        self.items.append(message)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Message:
        while not self.items:
            if self.closed:
                return dict(_DISCONNECT)
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.popleft()


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


# -- helpers for the router and the endpoint ---------------------------------------------------


def _ended(flight: Flight, began: float, crash: Exception | None) -> None:
    """Emit the request's stop event, or its exception event when it crashed."""
    ended = time.monotonic()
    measurements = {"duration": ended - began, "monotonic_time": ended}
    if crash is None:
        if REQUEST_STOP.handlers:
            metadata = flight.telemetry()
            if flight.why is not None:
                metadata["stopped"] = flight.why  # "timeout" or "disconnect"
            REQUEST_STOP.emit(measurements, metadata)
    elif REQUEST_EXCEPTION.handlers:
        metadata = flight.telemetry()
        metadata.update(kind=type(crash).__name__, reason=crash,
                        stacktrace="".join(traceback.format_exception(crash)))
        REQUEST_EXCEPTION.emit(measurements, metadata)


def flight_of(scope: Scope) -> Flight | None:
    """The request process record of ``scope``, when the endpoint serves it."""
    found = scope.get(SCOPE_KEY)
    return found if type(found) is Flight else None


def request_id(scope_or_request: Any) -> str | None:
    """The id of the request being handled (a Starlette ``Request`` or an ASGI scope).

    The same id is in the ``x-request-id`` response header and in the crash report of the
    request; None for a request the endpoint does not serve.
    """
    scope = getattr(scope_or_request, "scope", scope_or_request)
    flight = flight_of(scope)
    return flight.request_id() if flight is not None else None


def set_timeout(scope: Scope, seconds: float | None) -> None:
    """Give the request of ``scope`` its own deadline (None: none), counted from its start."""
    flight = flight_of(scope)
    if flight is None:
        return
    owner = flight.owner
    flight.deadline = 0 if seconds is None else flight.born + ticks_for(seconds, owner.tick)


async def error_response(
    flight: Flight, status: int, headers: list[tuple[bytes, bytes]] | None = None,
    detail: str | None = None,
) -> None:
    """Answer ``status`` with the request id, in the header and in the body."""
    rid = flight.request_id()
    extra = [] if headers is None else list(headers)
    if flight.owner.header is None:  # the id goes on every error response all the same
        extra.append((b"x-request-id", rid.encode("latin-1")))
    await _respond(flight.send, flight.scope, status, detail, rid, extra)


async def _answer(flight: Flight, status: int) -> None:
    """The error response of a request whose process has ended, if the client still listens."""
    try:
        await error_response(flight, status)
    except (OSError, ProcessExit):
        log.debug("request %s: the client left before its %d", flight.request_id(), status)


async def _respond(
    send: Send, scope: Scope, status: int, detail: str | None, rid: str | None,
    headers: list[tuple[bytes, bytes]],
) -> None:
    phrase = _phrase(status)
    text = f"{status} {phrase}\n" + (f"{detail}\n" if detail and detail != phrase else "")
    text += f"request id: {rid}\n" if rid else ""
    body = text.encode()
    prefix = "websocket." if scope.get("type") == "websocket" else ""
    await send({
        "type": prefix + "http.response.start", "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    })
    await send({"type": prefix + "http.response.body", "body": body})


async def plain_response(
    send: Send, scope: Scope, status: int, headers: list[Any], detail: str | None = None
) -> None:
    """A plain-text ``status`` response outside any request process (overload, refusal)."""
    await _respond(send, scope, status, detail, None, list(headers))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
