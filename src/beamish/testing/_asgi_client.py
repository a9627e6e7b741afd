"""An in-process ASGI client: HTTP and WebSockets against an app, with no network.

How it works. ``ASGIClient(app)`` runs the app's lifespan on entering ``async with`` (in the
caller's context, so an endpoint finds the test's runtime and uses it) and stops it on
leaving. HTTP goes through httpx with a transport of our own that, like a real server, runs
each request in a task of its own with a fresh context: an endpoint makes that task the
request's process, and stopping it (a deadline) cannot touch the caller. The response comes
back as soon as the app starts it; its body streams, so a never-ending response can be read
with ``client.stream(...)`` and closing it tells the app the client went away.
``websocket_connect`` runs a WebSocket connection the same way and hands back a session to
send and receive on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import httpx

__all__ = ["ASGIClient", "WebSocketDisconnected", "WebSocketRejected", "WebSocketSession"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_SETTLE = 5.0  # seconds the client waits for the app's tasks when it closes


class WebSocketRejected(Exception):
    """The app refused the WebSocket handshake (an HTTP response instead of an accept)."""

    def __init__(self, status_code: int, body: bytes = b"", headers: Any = ()) -> None:
        super().__init__(f"the WebSocket handshake was refused with HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        self.headers = httpx.Headers(list(headers))


class WebSocketDisconnected(Exception):
    """The app closed the WebSocket (``code`` and ``reason`` as it sent them)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(f"the WebSocket was closed with code {code}"
                         + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class ASGIClient:
    """Talk to an ASGI app in process: ``await client.get("/")``, ``websocket_connect(...)``.

    ``async with ASGIClient(app) as client:`` runs the app's lifespan (``lifespan=False``
    skips it). HTTP methods are httpx's (``get``, ``post``, ..., ``request``, ``stream``)
    and return ``httpx.Response``. ``headers`` go with every request; ``client`` is the
    peer address the app sees.
    """

    def __init__(
        self, app: ASGIApp, *, base_url: str = "http://testserver", lifespan: bool = True,
        headers: Any = None, client: tuple[str, int] = ("127.0.0.1", 50000),
        raise_app_exceptions: bool = True,
    ) -> None:
        self.app = app
        self.base_url = httpx.URL(base_url)
        self._use_lifespan = lifespan
        self._peer = client
        self._tasks: set[asyncio.Task[Any]] = set()
        self._transport = _Transport(self, raise_app_exceptions)
        self._http = httpx.AsyncClient(
            transport=self._transport, base_url=base_url, headers=headers
        )
        self._lifespan: _Lifespan | None = None

    async def __aenter__(self) -> ASGIClient:
        if self._use_lifespan:
            self._lifespan = _Lifespan(self.app)
            await self._lifespan.startup()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()
        await self._settle()
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    async def _settle(self) -> None:
        """Wait for requests and sockets still running (bounded), then cancel them."""
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=_SETTLE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
            coro, context=contextvars.Context()  # type: ignore[arg-type]
        )
        self._tasks.add(task)
        task.add_done_callback(_finished)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- HTTP -------------------------------------------------------------------------------

    async def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return await self._http.request(method, url, **options)

    async def get(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.get(url, **options)

    async def head(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.head(url, **options)

    async def options(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.options(url, **options)

    async def post(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.post(url, **options)

    async def put(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.put(url, **options)

    async def patch(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.patch(url, **options)

    async def delete(self, url: str, **options: Any) -> httpx.Response:
        return await self._http.delete(url, **options)

    def stream(self, method: str, url: str, **options: Any
               ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        """``async with client.stream("GET", "/events") as response:`` reads as it comes."""
        return self._http.stream(method, url, **options)

    # -- WebSockets -------------------------------------------------------------------------

    def websocket_connect(
        self, path: str, *, headers: Any = None, subprotocols: list[str] | None = None,
    ) -> WebSocketSession:
        """``async with client.websocket_connect("/ws") as ws:`` opens a WebSocket.

        Raises ``WebSocketRejected`` if the app refuses the handshake.
        """
        url = self.base_url.join(path)
        all_headers = httpx.Headers(self._http.headers)
        all_headers.update(httpx.Headers(headers))
        scope = {
            "type": "websocket", "asgi": _ASGI, "http_version": "1.1",
            "scheme": "wss" if url.scheme == "https" else "ws",
            "path": unquote(url.path), "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query, "root_path": "",
            "headers": [(b"host", url.netloc)] + [
                (k.lower(), v) for k, v in all_headers.raw if k.lower() != b"host"
            ],
            "client": self._peer, "server": (url.host, url.port or 80),
            "subprotocols": list(subprotocols or ()),
            "extensions": {"websocket.http.response": {}}, "state": self._state(),
        }
        return WebSocketSession(self, scope)

    def _state(self) -> dict[str, Any]:
        return dict(self._lifespan.state) if self._lifespan is not None else {}


def _finished(task: asyncio.Task[Any]) -> None:
    """Mark an app task's exception as seen: it is raised where it matters, or not at all."""
    if not task.cancelled():
        task.exception()


class _Transport(httpx.AsyncBaseTransport):
    def __init__(self, client: ASGIClient, raise_app_exceptions: bool) -> None:
        self.client = client
        self.raise_app_exceptions = raise_app_exceptions

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        client = self.client
        url = request.url
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": "1.1", "method": request.method,
            "scheme": url.scheme, "path": unquote(url.path),
            "raw_path": url.raw_path.split(b"?")[0], "query_string": url.query,
            "root_path": "", "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": client._peer, "server": (url.host, url.port or 80),
            "state": client._state(),
        }
        exchange = _Exchange(request)
        task = client._spawn(self._run(scope, exchange))
        try:
            await asyncio.wait({task, exchange.started}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the caller gave up: the client goes away
            exchange.disconnect()
            raise
        if not exchange.started.done():
            error = task.exception()
            if error is not None and self.raise_app_exceptions:
                raise error
            return httpx.Response(500, content=b"the app sent no response", request=request)
        status, headers = exchange.started.result()
        body = _Body(exchange, task, self.raise_app_exceptions)
        return httpx.Response(status, headers=headers, stream=body, request=request)

    async def _run(self, scope: dict[str, Any], exchange: _Exchange) -> None:
        try:
            await self.client.app(scope, exchange.receive, exchange.send)
        finally:
            exchange.finish()


class _Exchange:
    """One HTTP request's ASGI channels, as a server would give them."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = loop.create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.done = asyncio.Event()  # the response is complete, or the client went away
        self.disconnected = False
        self.body_sent = False

    async def receive(self) -> Message:
        if not self.body_sent:
            self.body_sent = True
            body = b"".join([chunk async for chunk in self.request.stream])  # type: ignore[union-attr]
            return {"type": "http.request", "body": body, "more_body": False}
        await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.disconnected:  # as ASGI 2.4 servers do
            raise OSError("the client closed the connection")
        if self.done.is_set():
            raise RuntimeError(f"the app sent {message['type']} after the response completed")
        if message["type"] == "http.response.start":
            if self.started.done():
                raise RuntimeError("the app sent http.response.start twice")
            self.started.set_result((message["status"], list(message.get("headers", ()))))
        elif message["type"] == "http.response.body":
            if not self.started.done():
                raise RuntimeError("the app sent a body before http.response.start")
            body = message.get("body", b"")
            if body and self.request.method != "HEAD":
                self.chunks.put_nowait(body)
            if not message.get("more_body", False):
                self.chunks.put_nowait(None)
                self.done.set()

    def finish(self) -> None:
        self.chunks.put_nowait(None)

    def disconnect(self) -> None:
        if not self.done.is_set():
            self.disconnected = True
            self.done.set()


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange, task: asyncio.Task[None], raise_errors: bool) -> None:
        self.exchange = exchange
        self.task = task
        self.raise_errors = raise_errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.exchange.chunks.get()
            if chunk is None:
                break
            yield chunk
        # An app that raises right after its response (Starlette's error middleware sends a
        # 500, then re-raises) ends within a few loop turns: raise what it raised, as
        # httpx's own ASGI transport does.
        task = self.task
        for _ in range(5):
            if task.done():
                break
            await asyncio.sleep(0)
        if self.raise_errors and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    async def aclose(self) -> None:
        self.exchange.disconnect()


class WebSocketSession:
    """One WebSocket connection to the app, from the client's side."""

    def __init__(self, client: ASGIClient, scope: dict[str, Any]) -> None:
        self._client = client
        self.scope = scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.accepted_subprotocol: str | None = None
        self.accept_headers: httpx.Headers = httpx.Headers()
        self.closed: WebSocketDisconnected | None = None

    async def __aenter__(self) -> WebSocketSession:
        self._task = self._client._spawn(self._run())
        self._to_app.put_nowait({"type": "websocket.connect"})
        message = await self._next()
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted_subprotocol = message.get("subprotocol")
            self.accept_headers = httpx.Headers(list(message.get("headers", ())))
            return self
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next()
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            await self._end()
            raise WebSocketRejected(message["status"], body, message.get("headers", ()))
        await self._end()
        raise WebSocketRejected(403)  # a close before accept: servers answer 403

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        try:
            await self._client.app(self.scope, self._to_app.get, self._from_app.put)
        except BaseException as exc:
            self._from_app.put_nowait({"type": "beamish.testing.crash", "error": exc})
            raise
        finally:
            self._from_app.put_nowait({"type": "beamish.testing.ended"})

    async def _next(self) -> Message:
        message = await self._from_app.get()
        kind = message["type"]
        if kind == "beamish.testing.crash":
            raise message["error"]
        if kind == "beamish.testing.ended":
            self._from_app.put_nowait(message)  # stays the answer from now on
            return {"type": "websocket.close", "code": 1006}
        return message

    async def _end(self) -> None:
        task = self._task
        if task is not None and not task.done():
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": 1006})
            done, _ = await asyncio.wait({task}, timeout=_SETTLE)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # -- sending ----------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        self._to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        self._to_app.put_nowait({"type": "websocket.receive", "bytes": data})

    async def send_json(self, value: Any) -> None:
        await self.send_text(json.dumps(value))

    async def close(self, code: int = 1000) -> None:
        """Close from the client's side and wait for the app to finish with it."""
        task = self._task
        if task is not None and not task.done():
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": code})
            done, _ = await asyncio.wait({task}, timeout=_SETTLE)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # -- receiving --------------------------------------------------------------------------

    async def receive(self, timeout: float | None = 5.0) -> str | bytes:
        """The next message the app sent (text or bytes); raises ``WebSocketDisconnected``
        when the app closed the connection, ``TimeoutError`` after ``timeout`` seconds."""
        if self.closed is not None:
            raise self.closed
        message = await asyncio.wait_for(self._next(), timeout)
        if message["type"] == "websocket.close":
            self.closed = WebSocketDisconnected(message.get("code", 1000),
                                                message.get("reason") or "")
            raise self.closed
        if message.get("bytes") is not None:
            data: bytes = message["bytes"]
            return data
        text: str = message.get("text") or ""
        return text

    async def receive_text(self, timeout: float | None = 5.0) -> str:
        value = await self.receive(timeout)
        if not isinstance(value, str):
            raise TypeError(f"expected a text message, got bytes {value!r}")
        return value

    async def receive_bytes(self, timeout: float | None = 5.0) -> bytes:
        value = await self.receive(timeout)
        if not isinstance(value, bytes):
            raise TypeError(f"expected a binary message, got text {value!r}")
        return value

    async def receive_json(self, timeout: float | None = 5.0) -> Any:
        return json.loads(await self.receive(timeout))


class _Lifespan:
    """The app's lifespan, run in a task in the caller's context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self.to_app.get, self.from_app.put)
        except BaseException as exc:
            self.from_app.put_nowait({"type": "beamish.testing.crash", "error": exc})
            raise
        finally:
            self.from_app.put_nowait({"type": "beamish.testing.ended"})

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.to_app.put_nowait({"type": "lifespan.startup"})
        message = await self.from_app.get()
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            return
        if kind == "lifespan.startup.failed":
            await self._wait()
            raise RuntimeError(f"the app's lifespan failed to start: {message.get('message')}")
        # the app raised on a lifespan scope or returned: it does not do lifespans
        self.supported = False
        await self._wait()

    async def shutdown(self) -> None:
        if not self.supported or self.task is None:
            return
        self.to_app.put_nowait({"type": "lifespan.shutdown"})
        message = await self.from_app.get()
        await self._wait()
        if message["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"the app's lifespan failed to stop: {message.get('message')}")
        if message["type"] == "beamish.testing.crash":
            raise message["error"]

    async def _wait(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
