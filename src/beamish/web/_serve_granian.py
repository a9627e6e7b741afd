"""Serving an endpoint with granian inside a running node (``beamish run --server granian``).

granian is an HTTP and WebSocket server written in Rust (hyper and tokio underneath); its
embedded mode runs the ASGI application on the caller's asyncio loop, which is what a node
needs: the endpoint, its request processes and the rest of the node share one loop and one
runtime. ``GranianEndpointServer`` is ``EndpointServer``'s twin (same constructor, same
``start``/``stop``, same ``ListenError``), and what the endpoint does itself is the same on
both servers: a process per request, deadlines, the connection limit in requests and
sockets (``Endpoint(max_connections=)``), the WebSocket frame limit, origin checks, Channels,
LongPoll, Server-Sent Events, the lifespan.

What differs, because granian does it its own way (the web guide lists these too):

- **the edge guards**: ``header_timeout`` becomes granian's header read timeout and
  ``max_header_bytes`` its HTTP/1 buffer limit (hyper answers a head past it with 431);
  hyper reads at most 100 header lines, so ``max_headers`` can only be 100;
  ``max_connections`` becomes granian's backpressure (requests served at once: one more
  waits for a slot instead of being refused with 503); granian has no idle keep-alive
  timeout, so ``keep_alive_timeout`` cannot be set;
- **broadcast writes**: granian frames every ``websocket.send`` itself; beamish's pre-framed
  writes (``_ws_protocol.py``) need uvicorn's protocol, so on granian a broadcast goes
  through the connection's ASGI ``send`` (the transport does this on any server without
  ``beamish.frames`` in the scope);
- **compression**: granian negotiates no permessage-deflate; ``Endpoint(compress=True)``
  is refused here rather than silently ignored.

Which server is faster, for what, is measured in ``bench/web.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from beamish.web._edge import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    EdgeLimits,
)
from beamish.web._endpoint import Endpoint
from beamish.web._serve import (
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    Served,
    bind_sockets,
    node_context,
)

__all__ = ["GranianEndpointServer"]

log = logging.getLogger("beamish.web")

_HYPER_MIN_BUFFER = 8192  # hyper refuses a smaller HTTP/1 read buffer


def _missing() -> ModuleNotFoundError:
    return ModuleNotFoundError(
        "beamish run --server granian needs granian: pip install 'beamish[granian]'",
        name="granian",
    )


class GranianEndpointServer(Served):
    """Serve ``endpoint`` with granian (embedded, on the node's loop) on ``host:port``.

    The arguments are ``EndpointServer``'s; the module docstring says how each limit maps
    onto granian's and which cannot. ``granian_options`` go to granian's embedded
    ``Server`` (``http1_settings``, ``runtime_threads``, ...), except those set here.
    """

    def __init__(
        self, endpoint: Endpoint, *, host: str = "127.0.0.1", port: int = 4000,
        graceful_timeout: float = 10.0, max_connections: int | None = None,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT, reuse_port: bool = False,
        access_log: bool = False, **granian_options: Any,
    ) -> None:
        try:
            from granian.constants import Interfaces
            from granian.http import HTTP1Settings
        except ModuleNotFoundError:
            raise _missing() from None
        if max_headers != DEFAULT_MAX_HEADERS:
            raise ValueError(
                f"granian reads at most {DEFAULT_MAX_HEADERS} header lines (hyper's limit); "
                f"max_headers={max_headers!r} needs the uvicorn server"
            )
        if keep_alive_timeout != DEFAULT_KEEP_ALIVE_TIMEOUT:
            raise ValueError(
                "granian has no idle keep-alive timeout; keep_alive_timeout needs the "
                "uvicorn server"
            )
        if endpoint.compress:
            raise ValueError(
                "granian does not negotiate permessage-deflate; Endpoint(compress=True) "
                "needs the uvicorn server"
            )
        EdgeLimits(max_connections=max_connections, header_timeout=header_timeout,
                   max_header_bytes=max_header_bytes)  # the same checks as on uvicorn
        if max_header_bytes < _HYPER_MIN_BUFFER:
            raise ValueError(
                f"granian's max_header_bytes must be at least {_HYPER_MIN_BUFFER} (hyper's "
                f"smallest buffer), got {max_header_bytes!r}"
            )
        for key in ("target", "address", "port", "interface"):
            if key in granian_options:
                raise ValueError(
                    f"GranianEndpointServer sets granian's {key!r} itself; use host, port "
                    "and the endpoint"
                )
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.graceful_timeout = graceful_timeout
        self._max_connections = max_connections
        http1 = granian_options.pop("http1_settings", None) or HTTP1Settings(
            header_read_timeout=int(header_timeout * 1000), max_buffer_size=max_header_bytes,
        )
        self._options: dict[str, Any] = {
            "interface": Interfaces.ASGI, "http1_settings": http1,
            "log_enabled": False, "log_access": access_log,
            **({"backpressure": max_connections} if max_connections is not None else {}),
            **granian_options,
        }
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def max_connections(self) -> int:
        """The requests granian serves at once (its backpressure): the endpoint's limit
        unless ``max_connections`` was given."""
        return self._max_connections or self.endpoint.max_connections

    async def start(self) -> None:
        """Listen, start the endpoint, serve (as ``EndpointServer.start``)."""
        if self._task is not None:
            raise RuntimeError(f"{self!r} is already started")
        from granian.server.embed import Server

        # granian binds for itself (with SO_REUSEPORT on Linux); binding here first, without
        # it, says at once and by name when the address is taken, and picks the free port.
        probes = bind_sockets(self.host, self.port, reuse_port=self.reuse_port)
        self.port = probes[0].getsockname()[1]
        for sock in probes:
            sock.close()
        server = self._server = Server(
            self.endpoint, address=self.host, port=self.port, **self._options
        )
        self.endpoint.keep_websockets()
        task = self._task = asyncio.get_running_loop().create_task(
            server.serve(), context=node_context()
        )
        while not self.endpoint.running and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            self._task = None
            failure = task.exception()
            raise RuntimeError(
                f"granian could not serve {self.endpoint!r} on {self.url}"
                + (f": {failure}" if failure else "")
            ) from failure
        log.info("serving %r on %s (granian)", self.endpoint, self.url)

    async def stop(self) -> None:
        """Stop listening, finish what is in flight within ``graceful_timeout``, run the
        lifespan's shutdown. Cancelled, it ends granian's task at once."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._task = None
        # granian leaves open WebSockets open at its stop (uvicorn closes them, 1012): close
        # them first, while it still writes, then let it finish the HTTP requests in flight.
        await self.endpoint.close_websockets(timeout=self.graceful_timeout)
        server.stop()
        try:
            done, _ = await asyncio.wait({task}, timeout=self.graceful_timeout)
            if not done:
                log.warning("granian did not stop within %ss; its task is cancelled",
                            self.graceful_timeout)
                task.cancel()
                await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self._server = None

