"""Serving an endpoint with uvicorn inside a running node (what ``beamish run`` does).

``EndpointServer(endpoint, host=..., port=...)`` is a ``Service`` for the CLI's node.
``start`` binds the listening sockets itself, so an address that cannot be taken is one
``ListenError`` naming it (and the endpoint never starts); then it runs uvicorn on the
node's own event loop (httptools for HTTP behind the edge guards of ``_edge.py``,
uvicorn's sans-I/O WebSocket protocol with beamish's pre-framed writes
(``_ws_protocol.py``), the endpoint's ``max_frame_size`` as ``ws_max_size`` and its
``compress`` as ``ws_per_message_deflate``) and returns once it serves. ``stop`` closes the
listener, lets requests in flight finish within ``graceful_timeout``, and runs the
endpoint's lifespan shutdown; if ``stop`` is cancelled (the node's stop was cut short),
uvicorn is told to quit at once and its task is ended before the cancellation goes on.
uvicorn does not install signal handlers here: the node owns SIGTERM and SIGINT and stops
its services first, then its applications.

uvicorn logs a task that a stop cancelled (a request, its lifespan) as an error with a
traceback; a cancellation is how a stop ends work, so those records are dropped (a filter
on ``uvicorn.error``, added once).

``find_endpoint(app)`` is how ``beamish run MODULE:APP`` finds what to serve: the
application's ``endpoint`` attribute, else the one ``Endpoint`` in the application's module
whose ``application`` is it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any, cast

import uvicorn

from beamish._errors import BeamishError, NoRuntimeError
from beamish._otp.application.application import Application
from beamish._runtime.api import current_runtime
from beamish.web._edge import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    EdgeLimits,
    EdgeState,
    GuardedHttpToolsProtocol,
)
from beamish.web._endpoint import Endpoint
from beamish.web._ws_protocol import FramedWebSocketProtocol

__all__ = [
    "DEFAULT_KEEP_ALIVE_TIMEOUT", "EndpointServer", "ListenError", "Served", "bind_sockets",
    "find_endpoint", "node_context", "url_of",
]

log = logging.getLogger("beamish.web")

DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0  # uvicorn's: an idle keep-alive connection is closed after it

# uvicorn options EndpointServer sets itself, and why they cannot be passed through.
_OWN_OPTIONS = {
    "http": "the edge guards are built on uvicorn's httptools protocol",
    "ws": "sockets are served on beamish's own WebSocket protocol (pre-framed broadcasts)",
    "ws_per_message_deflate": "use the endpoint's compress option",
    "lifespan": "the endpoint's lifespan starts and stops the node's side",
    "limit_concurrency": "use max_connections, which refuses before a connection is read",
    "timeout_keep_alive": "use keep_alive_timeout",
    "host": "use host", "port": "use port", "fd": "EndpointServer listens on host:port",
    "uds": "EndpointServer listens on host:port",
}


class ListenError(BeamishError, OSError):
    """The server could not listen on its address (in use, not allowed, not local).

    ``errno`` is the system's; the message names the address and what to do.
    """

    def __str__(self) -> str:
        return str(self.strerror)


class _DropCancelled(logging.Filter):
    """Drops uvicorn's error records about a task that a stop cancelled."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


def _quiet_cancellations() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropCancelled) for f in logger.filters):
        logger.addFilter(_DropCancelled())


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, minus its signal handlers: the node owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Served:
    """What both servers of ``beamish run`` share: the address they serve on, named."""

    name = "web endpoint"
    endpoint: Endpoint
    host: str
    port: int

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} serving {self.endpoint!r}>"

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)


class EndpointServer(Served):
    """Serve ``endpoint`` with uvicorn on ``host:port`` while the node runs.

    ``port=0`` picks a free port (``server.port`` tells which, once started). The limits a
    connection meets before its request reaches the endpoint:

    - ``max_connections``: open connections of every kind (default: the descriptor limit
      less a tenth); one more is answered 503 at once;
    - ``header_timeout``: seconds for a request's head to arrive (10); then 408;
    - ``max_header_bytes``: the request line and headers (32 KiB); then 414 or 431;
    - ``max_headers``: header lines (100); then 431;
    - ``keep_alive_timeout``: seconds an idle keep-alive connection is kept (5).

    More uvicorn options go through ``uvicorn_options`` (``access_log=True``,
    ``proxy_headers``, ...), except those the server sets itself (``http``, ``lifespan``,
    ``limit_concurrency``, ``timeout_keep_alive``, ``host``, ``port``, ``fd``, ``uds``).
    """

    def __init__(
        self, endpoint: Endpoint, *, host: str = "127.0.0.1", port: int = 4000,
        graceful_timeout: float = 10.0, max_connections: int | None = None,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT, reuse_port: bool = False,
        **uvicorn_options: Any,
    ) -> None:
        for key in uvicorn_options:
            if key in _OWN_OPTIONS:
                raise ValueError(
                    f"EndpointServer sets uvicorn's {key!r} itself ({_OWN_OPTIONS[key]})"
                )
        if not isinstance(keep_alive_timeout, int | float) or keep_alive_timeout <= 0:
            raise ValueError(
                f"keep_alive_timeout must be a positive number of seconds, got "
                f"{keep_alive_timeout!r}"
            )
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.reuse_port = reuse_port  # SO_REUSEPORT: sibling nodes share host:port
        self.edge = EdgeState(EdgeLimits(
            max_connections=max_connections, header_timeout=header_timeout,
            max_header_bytes=max_header_bytes, max_headers=max_headers,
        ))
        protocol = functools.partial(GuardedHttpToolsProtocol, edge=self.edge)
        options: dict[str, Any] = {
            "http": cast(Any, protocol), "ws": FramedWebSocketProtocol, "loop": "uvloop",
            "lifespan": "on", "log_config": None, "access_log": False,
            "timeout_graceful_shutdown": graceful_timeout,
            "timeout_keep_alive": keep_alive_timeout,
            "ws_per_message_deflate": endpoint.compress,
        }
        if endpoint.max_frame_size is not None:
            options["ws_max_size"] = endpoint.max_frame_size
        options.update(uvicorn_options)
        self.config = uvicorn.Config(endpoint, host=host, port=port, **options)
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def max_connections(self) -> int:
        """The connection limit in force (the default is worked out from the system's)."""
        return self.edge.max_connections

    async def start(self) -> None:
        """Listen, start the endpoint, serve.

        Raises ``ListenError`` (an ``OSError``) if the address cannot be taken, before the
        endpoint starts; ``RuntimeError`` if the endpoint fails to start.
        """
        if self._task is not None:
            raise RuntimeError(f"{self!r} is already started")
        _quiet_cancellations()
        sockets = self._bind()
        context = node_context()
        server = self._server = _Uvicorn(self.config)
        task = self._task = asyncio.get_running_loop().create_task(
            self._serve(server, sockets), context=context
        )
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            self._task = None
            for sock in sockets:
                sock.close()
            failure = task.exception()
            raise RuntimeError(
                f"uvicorn could not serve {self.endpoint!r} on {self.url} (see the log above)"
            ) from failure
        log.info("serving %r on %s", self.endpoint, self.url)

    def _bind(self) -> list[socket.socket]:
        """The listening sockets for host:port, bound (uvicorn listens on them)."""
        sockets = bind_sockets(self.host, self.port, reuse_port=self.reuse_port)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        return sockets

    async def _serve(self, server: _Uvicorn, sockets: list[socket.socket]) -> None:
        try:
            await server.serve(sockets=sockets)
        except SystemExit as exc:  # uvicorn's way to say that startup failed
            raise RuntimeError(f"uvicorn exited with {exc.code}") from None

    async def stop(self) -> None:
        """Stop listening, finish the requests in flight, run the lifespan's shutdown.

        Cancelled (a stop cut short), it makes uvicorn quit at once, without waiting for
        requests or running the lifespan shutdown, and ends its task before returning.
        """
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        self._task = None
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.force_exit = True
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self._server = None


def node_context() -> contextvars.Context:
    """A context for a server's task: the node's runtime is current in it and no process
    is, so the tasks the server starts (the lifespan, the requests) begin outside any
    process, in the node."""
    context = contextvars.Context()
    with contextlib.suppress(NoRuntimeError):
        context.run(current_runtime().bind)
    return context


def url_of(host: str, port: int) -> str:
    """The http URL of ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_sockets(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """A bound (not yet listening) TCP socket for each address ``host`` resolves to.

    ``port=0``: one free port, the same for every address. Raises ``ListenError`` naming the
    address and what to do when one cannot be taken.
    """
    url = url_of(host, port)
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(
            errno.EADDRNOTAVAIL,
            f"cannot listen on {url}: the host {host!r} cannot be resolved "
            f"({exc.strerror}); choose another (beamish run: --host or BEAMISH_HOST)",
        ) from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _name, address in found:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # one free port for every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(exc.errno or 0, _why_not(host, url, exc)) from None
    return sockets


def _why_not(host: str, url: str, exc: OSError) -> str:
    where = f"cannot listen on {url}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where}: the address is already in use (another program, or another "
                "`beamish run`, listens there); stop it, or choose another port "
                "(beamish run: --port or BEAMISH_PORT)")
    if exc.errno == errno.EACCES:
        return (f"{where}: permission denied (ports below 1024 need privileges); "
                "choose a port above 1023 (beamish run: --port or BEAMISH_PORT)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{where}: {host!r} is not an address of this machine; choose "
                "another (beamish run: --host or BEAMISH_HOST)")
    return f"{where}: {exc.strerror or exc}"


def find_endpoint(app: Application) -> Endpoint | None:
    """The endpoint that serves ``app``, or None if it has none.

    Looks at the application's ``endpoint`` attribute, then at the module that defines its
    class for ``Endpoint`` instances whose ``application`` is that class or ``app``.
    Several candidates raise a ``LookupError`` asking for an ``endpoint`` attribute.
    """
    own = getattr(app, "endpoint", None)
    if isinstance(own, Endpoint):
        return own
    if own is not None:
        raise TypeError(
            f"{type(app).__qualname__}.endpoint is {own!r}, not an Endpoint; set it to the "
            "Endpoint that serves the application"
        )
    cls = type(app)
    module = sys.modules.get(cls.__module__)
    found: list[Endpoint] = []
    for value in vars(module).values() if module is not None else ():
        if (
            isinstance(value, Endpoint) and all(value is not f for f in found)
            and (value.application is cls or value.application is app)
        ):
            found.append(value)
    if len(found) > 1:
        raise LookupError(
            f"module {cls.__module__!r} defines {len(found)} endpoints for {cls.__qualname__}; "
            f"say which one to serve with `endpoint = ...` in the class"
        )
    return found[0] if found else None
