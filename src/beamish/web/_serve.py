"""Serving an endpoint with uvicorn inside a running node (what ``beamish run`` does).

``EndpointServer(endpoint, host=..., port=...)`` is a ``Service`` for the CLI's node:
``start`` runs uvicorn on the node's own event loop (httptools for HTTP, websockets' sans-I/O
implementation for WebSockets, the endpoint's ``max_frame_size`` as ``ws_max_size``) and
returns once it listens; ``stop`` closes the listener, lets requests in flight finish
within ``graceful_timeout``, and runs the endpoint's lifespan shutdown. uvicorn does not
install signal handlers here: the node owns SIGTERM and SIGINT and stops its services
first, then its applications.

``find_endpoint(app)`` is how ``beamish run MODULE:APP`` finds what to serve: the
application's ``endpoint`` attribute, else the one ``Endpoint`` in the application's module
whose ``application`` is it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn

from beamish._errors import NoRuntimeError
from beamish._otp.application import Application
from beamish._runtime.api import current_runtime
from beamish.web._endpoint import Endpoint

__all__ = ["EndpointServer", "find_endpoint"]

log = logging.getLogger("beamish.web")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, minus its signal handlers: the node owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EndpointServer:
    """Serve ``endpoint`` with uvicorn on ``host:port`` while the node runs.

    ``port=0`` picks a free port (``server.port`` tells which, once started). More uvicorn
    options go through ``uvicorn_options`` (``access_log=True``, ``proxy_headers``, ...).
    """

    name = "web endpoint"

    def __init__(
        self, endpoint: Endpoint, *, host: str = "127.0.0.1", port: int = 4000,
        graceful_timeout: float = 10.0, **uvicorn_options: Any,
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.port = port
        options: dict[str, Any] = {
            "http": "httptools", "ws": "websockets-sansio", "loop": "uvloop",
            "lifespan": "on", "log_config": None, "access_log": False,
            "timeout_graceful_shutdown": graceful_timeout,
        }
        if endpoint.max_frame_size is not None:
            options["ws_max_size"] = endpoint.max_frame_size
        options.update(uvicorn_options)
        self.config = uvicorn.Config(endpoint, host=host, port=port, **options)
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<EndpointServer {self.url} serving {self.endpoint!r}>"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening; raises RuntimeError if uvicorn or the endpoint fails to start."""
        if self._task is not None:
            raise RuntimeError(f"{self!r} is already started")
        # The server's tasks (the lifespan, the requests) start from a context of their own
        # in which the node's runtime is current and no process is.
        context = contextvars.Context()
        with contextlib.suppress(NoRuntimeError):
            context.run(current_runtime().bind)
        server = self._server = _Uvicorn(self.config)
        task = self._task = asyncio.get_running_loop().create_task(
            self._serve(server), context=context
        )
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            self._task = None
            failure = task.exception()
            raise RuntimeError(
                f"uvicorn could not serve {self.endpoint!r} on {self.url} (see the log above)"
            ) from failure
        sockets = [s for srv in server.servers for s in (srv.sockets or ())]
        if sockets and self.port == 0:
            self.port = sockets[0].getsockname()[1]
        log.info("serving %r on %s", self.endpoint, self.url)

    async def _serve(self, server: _Uvicorn) -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn's way to say that startup failed
            lifespan = getattr(server, "lifespan", None)
            if lifespan is not None and lifespan.startup_event.is_set() and (
                not lifespan.startup_failed and not lifespan.should_exit
            ):  # it could not listen after the endpoint started: stop the endpoint again
                await lifespan.shutdown()
            raise RuntimeError(f"uvicorn exited with {exc.code}") from None

    async def stop(self) -> None:
        """Stop listening, finish the requests in flight, run the lifespan's shutdown."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        self._task = None
        try:
            await task
        finally:
            self._server = None


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
