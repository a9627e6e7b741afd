"""The endpoint over the real servers ``beamish run`` uses, in the test's loop.

uvicorn (httptools, websockets-sansio; ``EndpointServer``) and granian (embedded;
``GranianEndpointServer``, ``beamish run --server granian``), each on a free port with the
endpoint's lifespan; httpx and websockets are the clients. What the endpoint does itself is
tested on both; what only one server has, on that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import beamish
from beamish import ANY
from beamish.testing import assert_receive
from beamish.web import EndpointServer, GranianEndpointServer, ListenError
from tests.web.endpoint_app import WATCHER, make_endpoint

SERVERS = {"uvicorn": EndpointServer, "granian": GranianEndpointServer}
both = pytest.mark.parametrize("kind", sorted(SERVERS))


@contextlib.asynccontextmanager
async def serving(kind: str = "uvicorn", **options):
    """An endpoint over the test routes, served by ``kind`` on a free port."""
    server = SERVERS[kind](make_endpoint(**options), port=0, graceful_timeout=2)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            yield server, client
    finally:
        await server.stop()


@both
async def test_each_request_is_a_distinct_process_on_one_connection(kind):
    async with serving(kind) as (server, client):
        pids = [(await client.get("/pid")).text for _ in range(5)]
        assert len(set(pids)) == 5
        assert all(p.startswith("<0.") for p in pids)


@both
async def test_crash_gives_500_while_concurrent_requests_succeed(kind, caplog):
    async with serving(kind) as (server, client):
        slow = [client.get("/sleep/0.2") for _ in range(10)]
        crashes = [client.get("/crash") for _ in range(5)]
        responses = await asyncio.gather(*slow, *crashes)
    assert [r.status_code for r in responses] == [200] * 10 + [500] * 5
    ids = {r.headers["x-request-id"] for r in responses[10:]}
    assert len(ids) == 5
    for r in responses[10:]:
        assert f"request id: {r.headers['x-request-id']}" in r.text
    reports = [r for r in caplog.records if r.name == "beamish.web" and r.levelname == "ERROR"]
    assert {r.request_id for r in reports} == ids  # one report per crash, none from uvicorn
    uvicorn_errors = [r for r in caplog.records
                      if r.name.startswith("uvicorn") and r.levelname == "ERROR"]
    assert not uvicorn_errors


@both
async def test_deadline_gives_504_and_stops_the_process(kind):
    beamish.register(WATCHER)
    async with serving(kind, tick=0.02) as (server, client):
        started = time.monotonic()
        response = await client.get("/hang")  # timeout=0.3 on the route
        assert response.status_code == 504
        assert 0.3 <= time.monotonic() - started < 2
        _, pid = await assert_receive(("hanging", ANY))
        await assert_receive(("stopped", pid))
        assert (await client.get("/")).status_code == 200  # the connection still works


@both
async def test_client_disconnect_stops_a_long_request(kind):
    beamish.register(WATCHER)
    async with serving(kind, tick=0.02, watch_disconnect_after=0.1) as (server, client):
        async with httpx.AsyncClient(base_url=server.url) as leaving:
            pending = asyncio.ensure_future(leaving.get("/wait"))
            _, pid = await assert_receive(("waiting", ANY), timeout=2)
            pending.cancel()  # the client gives up: httpx closes the connection
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await assert_receive(("stopped", pid), timeout=2)
        assert not beamish.is_alive(pid)


@both
async def test_static_files_mount_url_for_and_405(kind):
    async with serving(kind) as (server, client):
        static = await client.get("/static/hello.txt")
        assert static.status_code == 200 and static.text == "hello, static\n"
        legacy = {(await client.get("/legacy/hello")).text for _ in range(3)}
        assert len(legacy) == 3 and all(p.startswith("starlette in <0.") for p in legacy)
        user = (await client.get("/users/42")).json()
        assert user == {"id": 42, "self": f"{server.url}/users/7"}
        not_allowed = await client.post("/users/42")
        assert not_allowed.status_code == 405
        assert not_allowed.headers["allow"] == "GET, HEAD"


@both
async def test_max_connections_answers_503_at_once(kind):
    async with serving(kind, max_connections=2) as (server, client):
        busy = [asyncio.ensure_future(client.get("/sleep/0.5")) for _ in range(2)]
        while server.endpoint.connections() < 2:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        refused = await client.get("/")
        assert refused.status_code == 503
        assert time.monotonic() - started < 0.5
        assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]


@both
async def test_websocket_origin_check(kind):
    async with serving(kind) as (server, client):
        url = server.url.replace("http", "ws") + "/ws/echo"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url, origin=server.url) as ws:
            assert (await ws.recv()).startswith("hello from <0.")
            await ws.send("ping")
            assert await ws.recv() == "ping"


@both
async def test_websocket_frame_limit_closes_with_1009(kind):
    async with serving(kind, max_frame_size=1000) as (server, client):
        url = server.url.replace("http", "ws") + "/ws/echo"
        async with connect(url) as ws:
            await ws.recv()
            await ws.send("x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@both
async def test_websocket_connections_count_towards_the_limit(kind):
    async with serving(kind, max_connections=1) as (server, client):
        url = server.url.replace("http", "ws") + "/ws/echo"
        async with connect(url) as ws:
            await ws.recv()
            assert (await client.get("/")).status_code == 503
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url):
                    pass
            assert refused.value.response.status_code == 503


@both
async def test_port_taken_raises_listen_error_before_the_endpoint_starts(kind):
    async with serving(kind) as (server, client):
        taken = SERVERS[kind](make_endpoint(), port=server.port)
        with pytest.raises(ListenError) as info:
            await taken.start()
        assert info.value.errno == errno.EADDRINUSE
        assert str(info.value).startswith(
            f"cannot listen on http://127.0.0.1:{server.port}: the address is already in use"
        )
        assert isinstance(info.value, OSError)
        assert not taken.endpoint.running
        assert (await client.get("/")).status_code == 200  # the first one serves on


def test_endpoint_server_keeps_the_options_it_sets_itself():
    with pytest.raises(ValueError, match="sets uvicorn's 'limit_concurrency' itself"):
        EndpointServer(make_endpoint(), limit_concurrency=10)
    with pytest.raises(ValueError, match="sets uvicorn's 'http' itself"):
        EndpointServer(make_endpoint(), http="h11")
    with pytest.raises(ValueError, match="header_timeout must be a positive number"):
        EndpointServer(make_endpoint(), header_timeout=0)
    with pytest.raises(ValueError, match=r"max_headers must be a positive int, got 1\.5"):
        EndpointServer(make_endpoint(), max_headers=1.5)


def test_granian_refuses_what_it_cannot_do_by_name():
    with pytest.raises(ValueError, match="granian reads at most 100 header lines"):
        GranianEndpointServer(make_endpoint(), max_headers=50)
    with pytest.raises(ValueError, match="granian has no idle keep-alive timeout"):
        GranianEndpointServer(make_endpoint(), keep_alive_timeout=30)
    with pytest.raises(ValueError, match="does not negotiate permessage-deflate"):
        GranianEndpointServer(make_endpoint(compress=True))
    with pytest.raises(ValueError, match="at least 8192"):
        GranianEndpointServer(make_endpoint(), max_header_bytes=100)
    with pytest.raises(ValueError, match="sets granian's 'address' itself; use host"):
        GranianEndpointServer(make_endpoint(), address="0.0.0.0")


async def test_granian_a_head_past_max_header_bytes_is_refused():
    endpoint = make_endpoint()
    server = GranianEndpointServer(endpoint, port=0, graceful_timeout=2, max_header_bytes=16_384)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/", headers={"x-big": "a" * 8_000})).status_code == 200
            refused = await client.get("/", headers={"x-big": "a" * 40_000})
            assert refused.status_code == 431
            assert (await client.get("/")).status_code == 200
    finally:
        await server.stop()
    assert not endpoint.running


@both
async def test_stop_lets_a_request_in_flight_finish_then_runs_the_lifespan_shutdown(kind):
    endpoint = make_endpoint()
    server = SERVERS[kind](endpoint, port=0, graceful_timeout=5)
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        slow = asyncio.ensure_future(client.get("/sleep/0.3"))
        while endpoint.connections() < 1:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await server.stop()
        assert (await slow).status_code == 200
        assert time.monotonic() - started >= 0.2
    assert not endpoint.running


@both
async def test_stop_closes_the_websockets_still_open(kind):
    endpoint = make_endpoint()
    server = SERVERS[kind](endpoint, port=0, graceful_timeout=2)
    await server.start()
    url = server.url.replace("http", "ws") + "/ws/echo"
    async with connect(url) as ws:
        assert (await ws.recv()).startswith("hello from <0.")
        started = time.monotonic()
        await server.stop()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert time.monotonic() - started < 4
    assert not endpoint.running
