"""The in-process ASGI client: HTTP, streaming, WebSockets and the lifespan, no network."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from beamish.testing._asgi_client import (
    ASGIClient,
    WebSocketDisconnected,
    WebSocketRejected,
)

events: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app):
    events.append("startup")
    yield {"greeting": "hi"}
    events.append("shutdown")


async def hello(request):
    return PlainTextResponse(f"{request.state.greeting} {request.method} {request.url.path}"
                             f"?{request.url.query}")


async def echo(request):
    return PlainTextResponse(await request.body())


async def boom(request):
    raise ValueError("boom")


async def forever(request):
    async def chunks():
        n = 0
        try:
            while True:
                yield f"chunk {n}\n"
                n += 1
                await asyncio.sleep(0.01)
        finally:
            events.append("stream closed")

    return StreamingResponse(chunks())


async def ws_echo(websocket):
    await websocket.accept(subprotocol="v1")
    async for text in websocket.iter_text():
        if text == "bye":
            await websocket.close(code=4000, reason="asked to")
            return
        await websocket.send_text(text.upper())


async def ws_refuse(websocket):
    await websocket.close()


async def ws_deny(websocket):
    await websocket.send_denial_response(PlainTextResponse("go away", status_code=401))


app = Starlette(
    routes=[
        Route("/hello", hello), Route("/echo", echo, methods=["POST"]), Route("/boom", boom),
        Route("/forever", forever), WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/refuse", ws_refuse), WebSocketRoute("/deny", ws_deny),
    ],
    lifespan=lifespan,
)


async def test_asgi_client_runs_the_lifespan_around_requests():
    events.clear()
    async with ASGIClient(app) as client:
        assert events == ["startup"]
        response = await client.get("/hello?x=1")
        assert response.status_code == 200
        assert response.text == "hi GET /hello?x=1"
    assert events == ["startup", "shutdown"]


async def test_asgi_client_sends_bodies_and_headers():
    async with ASGIClient(app, headers={"x-default": "1"}) as client:
        assert (await client.post("/echo", content=b"data")).content == b"data"
        assert (await client.post("/echo", json={"a": 1})).json() == {"a": 1}


async def test_asgi_client_raises_app_exceptions_or_gives_500():
    async with ASGIClient(app) as client:
        with pytest.raises(ValueError, match="boom"):
            await client.get("/boom")
    async with ASGIClient(app, raise_app_exceptions=False) as client:
        assert (await client.get("/boom")).status_code == 500


async def test_asgi_client_streams_and_closing_disconnects():
    loop = asyncio.get_running_loop()
    async with ASGIClient(app) as client:
        async with (
            client.stream("GET", "/forever") as response,
            contextlib.aclosing(response.aiter_lines()) as lines,  # not left to the loop
        ):
            assert await anext(lines) == "chunk 0"
            assert await anext(lines) == "chunk 1"
        closed = loop.time()
        [task] = client._tasks
        await asyncio.wait({task}, timeout=1)
        assert task.done()  # the app's next send raised OSError, as ASGI 2.4 says
        assert loop.time() - closed < 1


async def test_asgi_client_websocket_round_trip():
    async with ASGIClient(app) as client, client.websocket_connect(
        "/ws", subprotocols=["v1"]
    ) as ws:
        assert ws.accepted_subprotocol == "v1"
        await ws.send_text("hi")
        assert await ws.receive_text() == "HI"
        await ws.send_json({"a": 1})
        assert await ws.receive_text() == '{"A": 1}'
        await ws.send_text("bye")
        with pytest.raises(WebSocketDisconnected) as closed:
            await ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (4000, "asked to")


async def test_asgi_client_websocket_refusals():
    async with ASGIClient(app) as client:
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/refuse"):
                pass
        assert refused.value.status_code == 403
        with pytest.raises(WebSocketRejected) as denied:
            async with client.websocket_connect("/deny"):
                pass
        assert denied.value.status_code == 401 and denied.value.body == b"go away"


async def test_asgi_client_receive_times_out():
    async with ASGIClient(app) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.05)


async def test_asgi_client_failed_lifespan_raises():
    @contextlib.asynccontextmanager
    async def broken(app):
        raise RuntimeError("no config")
        yield

    with pytest.raises(RuntimeError, match="lifespan failed to start"):
        async with ASGIClient(Starlette(lifespan=broken)):
            pass


async def test_asgi_client_app_without_lifespan():
    async def bare(scope, receive, send):
        if scope["type"] != "http":
            raise RuntimeError("only http")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with ASGIClient(bare) as client:
        assert (await client.get("/")).status_code == 204
