"""The same endpoint under another ASGI server: Hypercorn (HTTP/1.1 with h11, wsproto)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import beamish
from beamish import ANY
from beamish.testing import assert_receive
from tests.web.endpoint_app import WATCHER, WebApp, make_endpoint


@contextlib.asynccontextmanager
async def hypercorn(**options):
    endpoint = make_endpoint(**options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 2
    if endpoint.max_frame_size is not None:
        config.websocket_max_message_size = endpoint.max_frame_size
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(endpoint, config, shutdown_trigger=stop.wait))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(500):  # until it listens
                with contextlib.suppress(httpx.ConnectError):
                    await client.get("/")
                    break
                await asyncio.sleep(0.01)
            yield endpoint, url, client
    finally:
        stop.set()
        await task


async def test_hypercorn_runs_the_lifespan_and_a_process_per_request():
    async with hypercorn(application=WebApp) as (endpoint, url, client):
        assert endpoint.running
        assert (await client.get("/greeting")).text == "hello"
        pids = {(await client.get("/pid")).text for _ in range(3)}
        assert len(pids) == 3
        legacy = {(await client.get("/legacy/hello")).text for _ in range(2)}
        assert len(legacy) == 2
    assert not endpoint.running
    assert beamish.whereis("web_app.sup") is None


async def test_hypercorn_crash_deadline_and_limits():
    beamish.register(WATCHER)
    async with hypercorn(tick=0.02) as (endpoint, url, client):
        slow = asyncio.ensure_future(client.get("/sleep/0.2"))
        crashed = await client.get("/crash")
        assert crashed.status_code == 500
        assert crashed.headers["x-request-id"] in crashed.text
        assert (await slow).status_code == 200
        assert (await client.get("/hang")).status_code == 504
        _, pid = await assert_receive(("hanging", ANY))
        await assert_receive(("stopped", pid))
        assert (await client.get("/static/hello.txt")).text == "hello, static\n"
        assert (await client.put("/")).status_code == 405


async def test_hypercorn_websocket_origin_check():
    async with hypercorn() as (endpoint, url, client):
        ws_url = url.replace("http", "ws") + "/ws/echo"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(ws_url, origin=url) as ws:
            assert (await ws.recv()).startswith("hello from <0.")
