"""The endpoint: the ASGI application in front of a beamish node.

``Endpoint(router=..., sockets=..., application=...)`` is an ASGI 3 app. Its lifespan
starts the node's side: a runtime (unless one is running already, as under
``beamish run``), the application and its dependencies, and the request sweeper; and stops
them at shutdown. Each HTTP request is handled in a process of its own (``_request.py``);
each WebSocket connection too, after the endpoint's protections:

- **origin check**: a browser handshake from another origin is refused with 403
  (``check_origin``, see ``_origin.py``);
- **connection limit**: past ``max_connections`` requests in flight and WebSockets open, a
  new one is answered 503 at once, with no process made for it;
- **frame size**: a WebSocket message larger than ``max_frame_size`` closes the connection
  with 1009 (message too big). ``beamish run`` also gives the limit to uvicorn
  (``ws_max_size``), which refuses such frames before reading them whole; under another
  server, set its own limit too (Hypercorn: ``websocket_max_message_size``).

WebSockets on ``{path}/websocket`` of a ``sockets`` entry (the socket's ``websocket_path``)
go to the Channels transport (``beamish.web._transport.serve_socket``); the others go to the
router. HTTP requests to ``{path}/longpoll`` (``longpoll_path``) of a socket with
``longpoll=True`` go to its LongPoll transport (``_longpoll.py``), each in its own process
too; a LongPoll session counts as a connection. A plain HTTP request to a socket's WebSocket
path is answered 400 (403 from a refused origin), as Phoenix answers it: the path exists,
but only for WebSocket upgrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from beamish._errors import NoRuntimeError, ProcessExit, SystemLimitError
from beamish._otp.application.application import ensure_all_started, name_of, stop_application
from beamish._runtime.api import current_runtime, wait_exit
from beamish._runtime.api import exit as exit_process
from beamish._runtime.runtime import Runtime
from beamish.web import _fastlane
from beamish.web._clip import clip
from beamish.web._origin import make_origin_check
from beamish.web._request import (
    ASGIApp,
    Message,
    Receive,
    Requests,
    Scope,
    Send,
    plain_response,
)
from beamish.web._router import Router, route_path
from beamish.web._writer import write_now

__all__ = ["Endpoint"]

log = logging.getLogger("beamish.web")
_SERVICE_UNAVAILABLE = [(b"retry-after", b"1")]
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's token


class Endpoint:
    """An ASGI 3 app: a router, socket mounts and an application, served as processes.

    Options (keyword-only):

    - ``router``: the ASGI app that serves HTTP and WebSocket routes, usually a ``Router``
      (any ASGI app works: a Starlette or FastAPI app gets a process per request too);
    - ``sockets``: ``{"/socket": UserSocket}``: Channels sockets, served on
      ``/socket/websocket``, and on ``/socket/longpoll`` too for a socket with
      ``longpoll=True`` (the socket's ``websocket_path`` and ``longpoll_path`` options
      change the last part);
    - ``pubsub``: the name of the PubSub the sockets broadcast through, and
      ``broadcast``, ``broadcast_from`` and ``local_broadcast`` too;
    - ``application``: the Application (class or instance) the lifespan starts, with its
      dependencies, when it is not running yet; the lifespan stops what it started;
    - ``check_origin``: WebSocket origin check: True (same host, the default), False, a
      list such as ``["https://example.com", "//*.example.com"]``, or a function;
    - ``max_connections``: HTTP requests in flight plus WebSockets open (default 16,384);
    - ``max_frame_size``: the largest WebSocket message in bytes (default 1 MiB; None for
      no limit of the endpoint's own);
    - ``compress``: offer permessage-deflate to WebSocket clients (default False, as
      Phoenix's socket option ``compress``): each frame is then compressed once per
      connection, which costs CPU on every push and makes a broadcast's frame different for
      every connection, so it cannot be built once;
    - ``request_timeout``: seconds a request may run before it is stopped with a 504
      (default 30; None for none; routes override it);
    - ``watch_disconnect_after``: seconds after which a running request gets a disconnect
      watch (default 1; None for never);
    - ``request_id_header``: the response header that carries the request id on every
      response (default ``"x-request-id"``; None puts it on error responses only; a name
      that is not an HTTP token is a ``ValueError``);
    - ``tick``: the sweeper's period in seconds (default 0.1), the precision of deadlines;
    - ``runtime_options``: options for the ``Runtime`` the lifespan creates when none runs.
    """

    def __init__(
        self,
        *,
        router: ASGIApp | None = None,
        sockets: Mapping[str, Any] | None = None,
        pubsub: str | None = None,
        application: Any = None,
        check_origin: Any = True,
        max_connections: int = 16_384,
        max_frame_size: int | None = 1_048_576,
        compress: bool = False,
        request_timeout: float | None = 30.0,
        watch_disconnect_after: float | None = 1.0,
        request_id_header: str | None = "x-request-id",
        tick: float = 0.1,
        runtime_options: Mapping[str, Any] | None = None,
    ) -> None:
        if router is not None and not callable(router):
            raise TypeError(f"router must be an ASGI app (a Router, say), got {router!r}")
        if type(max_connections) is not int or max_connections < 1:
            raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")
        if max_frame_size is not None and (type(max_frame_size) is not int or max_frame_size < 1):
            raise ValueError(
                f"max_frame_size must be a positive int or None, got {max_frame_size!r}"
            )
        for label, value in (("request_timeout", request_timeout),
                             ("watch_disconnect_after", watch_disconnect_after)):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"{label} must be seconds > 0 or None, got {value!r}")
        if not isinstance(tick, int | float) or tick <= 0:
            raise ValueError(f"tick must be seconds > 0, got {tick!r}")
        if application is not None:
            name_of(application)  # raises for what is not an application
        if not isinstance(pubsub, str) and any(
            getattr(getattr(socket, "options", None), "pubsub", None) is None
            for socket in (sockets or {}).values()
        ):
            raise ValueError(
                "sockets need a PubSub to broadcast on: pass pubsub='<name>' (the name of a "
                "PubSub the application starts), or give each socket its own "
                "(class MySocket(Socket, pubsub='<name>'))"
            )
        self.router = router
        self.sockets = _socket_paths(sockets or {})
        self.pubsub = pubsub
        self.application = application
        self.check_origin = check_origin
        self._origin_ok = make_origin_check(check_origin)
        self.max_connections = max_connections
        self.max_frame_size = max_frame_size
        self.compress = bool(compress)
        self.request_timeout = request_timeout
        self.watch_disconnect_after = watch_disconnect_after
        if request_id_header is not None and not _HEADER_NAME.fullmatch(request_id_header):
            raise ValueError(
                "request_id_header must be an HTTP header name (letters, digits and "
                f"!#$%&'*+-.^_`|~), got {request_id_header!r}"
            )
        self.request_id_header = request_id_header
        self.tick = float(tick)
        self.runtime_options = dict(runtime_options or {})
        self._app: ASGIApp = router if router is not None else Router()
        self._requests: Requests | None = None
        self._sockets_open = 0
        # the ASGI send of each open WebSocket, kept only for a server that does not close
        # them at its stop itself (granian: see close_websockets); None: not kept
        self._socket_sends: set[Send] | None = None
        self._going_away = False
        self._options_of: dict[Any, Any] = {}  # socket class: its options here (see below)
        self._longpolls = self._longpoll_paths(sockets or {})

    def __repr__(self) -> str:
        app = getattr(self.application, "__qualname__", None) or repr(self.application)
        return f"<Endpoint of {app}>" if self.application is not None else "<Endpoint>"

    @property
    def running(self) -> bool:
        """True between the lifespan's startup and its shutdown."""
        return self._requests is not None

    # -- broadcasting (Phoenix's Endpoint.broadcast and friends) ----------------------------

    def broadcast(self, topic: str, event: str, payload: Any) -> None:
        """Send ``event`` with ``payload`` (a dict, or bytes) to every channel joined to
        ``topic``, through this endpoint's PubSub (``beamish.web.broadcast``)."""
        _fastlane.broadcast(self._broadcasting("broadcast"), topic, event, payload)

    def broadcast_from(self, from_pid: Any, topic: str, event: str, payload: Any) -> None:
        """Like ``broadcast``, skipping the subscriber ``from_pid`` (a channel's pid)."""
        _fastlane.broadcast_from(
            self._broadcasting("broadcast_from"), from_pid, topic, event, payload
        )

    def local_broadcast(self, topic: str, event: str, payload: Any) -> None:
        """Like ``broadcast``, to the subscribers on this node only."""
        _fastlane.local_broadcast(self._broadcasting("local_broadcast"), topic, event, payload)

    def _broadcasting(self, what: str) -> str:
        if self.pubsub is None:
            raise ValueError(
                f"Endpoint.{what}() sends through the endpoint's PubSub, and this endpoint has "
                "none: pass Endpoint(pubsub='<name>') (the name of a PubSub the application "
                "starts), or call beamish.web.broadcast(pubsub, topic, event, payload)"
            )
        return self.pubsub

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of a named route of the router (see ``Router.url_for``)."""
        finder = getattr(self.router, "url_for", None)
        if finder is None:
            raise TypeError(f"this endpoint's router ({self.router!r}) names no routes")
        return str(finder(name, **params))

    def connections(self) -> int:
        """HTTP requests in flight plus WebSockets open (what ``max_connections`` bounds)."""
        requests = self._requests
        if requests is None:
            return 0
        sessions = sum(len(longpoll.sessions) for longpoll in self._longpolls.values())
        return (len(requests.inflight.young) + len(requests.inflight.old) + self._sockets_open
                + sessions)

    def keep_websockets(self) -> None:
        """Keep each open WebSocket's ASGI ``send`` from now on, for ``close_websockets``
        (what a server that does not close them at its stop calls first)."""
        if self._socket_sends is None:
            self._socket_sends = set()

    async def close_websockets(self, code: int = 1012, reason: str = "service restart",
                               timeout: float = 10.0) -> int:
        """Close every WebSocket kept since ``keep_websockets`` with ``code`` (uvicorn's
        shutdown sends 1012, "service restart"), refuse new ones (503), and wait up to
        ``timeout`` for their handlers to end. Returns how many were open."""
        self._going_away = True
        sends = list(self._socket_sends or ())
        for send in sends:
            with contextlib.suppress(Exception):  # already closing or gone
                write_now(send, {"type": "websocket.close", "code": code, "reason": reason})
        deadline = asyncio.get_running_loop().time() + timeout
        while self._sockets_open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return len(sends)

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            requests = self._requests
            if requests is None:
                await _not_started(scope, send)
                return
            inflight = requests.inflight
            if len(inflight.young) + len(inflight.old) + self._sockets_open >= self.max_connections:
                await plain_response(send, scope, 503, _SERVICE_UNAVAILABLE)
                return
            app = self._app
            if self._longpolls:
                app = self._longpolls.get(route_path(scope), app)
            if self.sockets and route_path(scope) in self.sockets:
                await self._not_an_upgrade(scope, send)
                return
            await requests.serve(app, scope, receive, send)
        elif kind == "websocket":
            # served in this frame, not in a method's: an open connection holds its handler's
            # coroutines for as long as it lives, and one less is ~340 bytes a connection
            refused = self._refuse_websocket(scope)
            if refused:
                await _deny(scope, send, refused)
                return
            requests = self._requests
            assert requests is not None  # _refuse_websocket checked
            self._sockets_open += 1
            sends = self._socket_sends
            if sends is not None:
                sends.add(send)
            try:
                socket = self.sockets.get(route_path(scope)) if self.sockets else None
                if socket is not None:
                    # imported here: the Channels transport is written beside this module
                    from beamish.web._transport import (  # type: ignore[import-not-found,unused-ignore]
                        serve_socket,
                    )

                    requests.runtime.bind()
                    # the transport's reader enforces the frame limit itself (the smaller of
                    # the endpoint's and the socket's): no guard wraps its receive, whose
                    # suspended coroutine every idle connection would hold
                    options = self._socket_options(socket)
                    await serve_socket(socket, scope, receive, send, options=options,
                                       pubsub=options.pubsub or self.pubsub or "")
                else:
                    if self.max_frame_size is not None:
                        receive = _FrameGuard(receive, send, self.max_frame_size).receive
                    await _websocket_process(requests, self._app, scope, receive, send)
            finally:
                self._sockets_open -= 1
                if sends is not None:
                    sends.discard(send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError(f"the endpoint cannot serve a {kind!r} connection")

    # -- websockets and long polls --------------------------------------------------------

    def _longpoll_paths(self, sockets: Mapping[str, Any]) -> dict[str, Any]:
        """``{path}/longpoll`` for each socket whose options ask for LongPoll."""
        paths: dict[str, Any] = {}
        for path, socket in sockets.items():
            options = getattr(socket, "options", None)
            if options is None or not options.longpoll:
                continue
            timeout = self.request_timeout
            if timeout is not None and options.longpoll_window >= timeout:
                raise ValueError(
                    f"{socket.__qualname__}: longpoll_window ({options.longpoll_window} s) "
                    f"must be shorter than the endpoint's request_timeout ({timeout} s), or "
                    "every poll would be stopped before it answers"
                )
            # imported here: only an endpoint with LongPoll sockets needs it
            from beamish.web._longpoll import LongPoll

            paths[_under(path, options.longpoll_path)] = LongPoll(
                socket, pubsub=options.pubsub or self.pubsub or "", origin_ok=self._origin_ok,
                admit=lambda: self.connections() < self.max_connections,
            )
        return paths

    async def _not_an_upgrade(self, scope: Scope, send: Send) -> None:
        origin = host = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if not self._origin_ok(origin, host):
            await plain_response(send, scope, 403, [])
            return
        await plain_response(
            send, scope, 400, [], "this path takes WebSocket connections only: a GET with "
            "the headers Connection: Upgrade and Upgrade: websocket",
        )

    def _refuse_websocket(self, scope: Scope) -> int:
        """The status to refuse a WebSocket with (503: not started, full or stopping; 403:
        another site's page), or 0 to serve it."""
        if self._requests is None:
            return 503
        origin = host = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if not self._origin_ok(origin, host):
            log.warning("refused a WebSocket on %s from origin %s (host %s): check_origin",
                        clip(scope.get("path")), clip(origin), clip(host))
            return 403
        if self._going_away or self.connections() >= self.max_connections:
            return 503
        return 0

    def _socket_options(self, socket: Any) -> Any:
        """``socket``'s options, with the endpoint's frame limit where it is the smaller."""
        options = self._options_of.get(socket)
        if options is None:
            options = socket.options
            limit = self.max_frame_size
            if limit is not None and options.max_frame_size > limit:
                options = dataclasses.replace(options, max_frame_size=limit)
            self._options_of[socket] = options
        return options

    # -- lifespan ---------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            stop = await self._start()
        except Exception as exc:
            log.error("the endpoint failed to start: %s", exc, exc_info=exc)
            await send({"type": "lifespan.startup.failed", "message": f"{exc}"})
            return
        await send({"type": "lifespan.startup.complete"})
        try:
            message = await receive()
        finally:
            await stop()
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self) -> Callable[[], Awaitable[None]]:
        """Start the node's side; returns what stops it."""
        if self._requests is not None:
            raise RuntimeError(f"{self!r} is already serving; one server at a time")
        try:
            runtime: Runtime | None = current_runtime()
        except NoRuntimeError:
            runtime = None
        own = runtime is None or not runtime.running
        if own:
            runtime = Runtime(**self.runtime_options)
            await runtime.start()
        assert runtime is not None
        app = self.application
        started: list[str] = []
        try:
            if app is not None:
                started = await _in_runtime(runtime, lambda: ensure_all_started(app))
            requests = Requests(
                runtime, timeout=self.request_timeout, tick=self.tick,
                watch_after=self.watch_disconnect_after,
                request_id_header=self.request_id_header,
            )
            requests.sweeper = runtime.spawn(requests.sweep_forever)
        except BaseException:
            await _in_runtime(runtime, lambda: _stop_apps(started))
            if own:
                await runtime.stop()
            raise
        self._requests = requests
        self._going_away = False

        async def stop() -> None:
            self._requests = None
            for longpoll in self._longpolls.values():
                await _in_runtime(runtime, longpoll.close_all)
            sweeper = requests.sweeper
            if sweeper is not None:
                await _in_runtime(runtime, lambda: _stop_process(sweeper))
            await _in_runtime(runtime, lambda: _stop_apps(started))
            if own:
                await runtime.stop()

        return stop


# -- helpers ----------------------------------------------------------------------------------


async def _websocket_process(
    requests: Requests, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one WebSocket connection with ``app`` in a process of its own."""
    state = {"accepted": False, "closed": False}

    async def tracked_send(message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            state["accepted"] = True
        elif kind == "websocket.close" or kind.startswith("websocket.http.response"):
            state["closed"] = True
        await send(message)

    pid = None
    try:
        async with requests.runtime.as_process() as pid:
            await app(scope, receive, tracked_send)
    except ProcessExit as stop:
        log.warning("WebSocket %s: its process %r was stopped by an exit signal: %r",
                    clip(scope.get("path")), pid, stop.reason)
        await _close_after_error(scope, send, state, 1001)
    except SystemLimitError as exc:
        log.error("WebSocket refused: %s", exc)
        await _deny(scope, send, 503)
    except Exception as exc:
        rid = requests.prefix + (format(pid.id, "x") if pid is not None else "0")
        log.error(
            "WebSocket %s crashed: %s in %r: %s: %s", rid, clip(scope.get("path")), pid,
            type(exc).__name__, exc, exc_info=(type(exc), exc, exc.__traceback__),
            extra={"request_id": rid},
        )
        await _close_after_error(scope, send, state, 1011)


async def _close_after_error(scope: Scope, send: Send, state: dict[str, bool], code: int) -> None:
    if state["closed"]:
        return
    try:
        if state["accepted"]:
            await send({"type": "websocket.close", "code": code})
        else:
            await _deny(scope, send, 500)
    except Exception:  # the client is gone already
        log.debug("could not close the WebSocket %s", clip(scope.get("path")), exc_info=True)


class _FrameGuard:
    """Closes a WebSocket with 1009 when a message is larger than the limit."""

    __slots__ = ("closed", "limit", "raw_receive", "send")

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self.raw_receive = receive
        self.send = send
        self.limit = limit
        self.closed = False

    async def receive(self) -> Message:
        if self.closed:
            return {"type": "websocket.disconnect", "code": 1009}
        message = await self.raw_receive()
        if message["type"] == "websocket.receive":
            data = message.get("bytes")
            if data is None:
                text = message.get("text") or ""
                size = len(text) if len(text) * 4 <= self.limit else len(text.encode())
            else:
                size = len(data)
            if size > self.limit:
                self.closed = True
                log.warning("closed a WebSocket: a message of %d bytes is over the limit of %d",
                            size, self.limit)
                await self.send({"type": "websocket.close", "code": 1009,
                                 "reason": "message too big"})
                return {"type": "websocket.disconnect", "code": 1009}
        return message


async def _deny(scope: Scope, send: Send, status: int) -> None:
    """Refuse a WebSocket handshake with ``status`` (or a plain close, which is a 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await plain_response(send, scope, status, _SERVICE_UNAVAILABLE if status == 503 else [])
    else:
        await send({"type": "websocket.close", "code": 1013 if status == 503 else 1008})


async def _not_started(scope: Scope, send: Send) -> None:
    log.error(
        "a request arrived before the endpoint started: the ASGI server must run the "
        "lifespan (uvicorn: --lifespan on; Hypercorn runs it by default)"
    )
    await plain_response(send, scope, 503, _SERVICE_UNAVAILABLE)


def _socket_paths(sockets: Mapping[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, socket in sockets.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"a socket path starts with '/', like '/socket'; got {path!r}")
        options = getattr(socket, "options", None)
        paths[_under(path, getattr(options, "websocket_path", "/websocket"))] = socket
    return paths


def _under(mount: str, path: str) -> str:
    """A transport's path under a socket's mount point (Phoenix joins them the same way)."""
    return (mount.rstrip("/") + path) or "/"


async def _in_runtime(runtime: Runtime, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work()`` in a task of its own where ``runtime`` is current and no process is."""
    context = contextvars.Context()
    context.run(runtime.bind)
    return await asyncio.get_running_loop().create_task(_call(work), context=context)


async def _call(work: Callable[[], Awaitable[Any]]) -> Any:
    return await work()


async def _stop_process(pid: Any) -> None:
    exited = wait_exit(pid)
    exit_process(pid, "shutdown")
    await exited


async def _stop_apps(names: list[str]) -> None:
    for name in reversed(names):
        try:
            await stop_application(name)
        except Exception:
            log.exception("the endpoint could not stop application %r", name)
