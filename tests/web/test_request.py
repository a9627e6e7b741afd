"""The request process's helpers: the relay of the disconnect watch, request ids, bodies."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from beamish.testing._asgi_client import ASGIClient
from beamish.web import Endpoint, Router, request_id
from beamish.web._request import _has_body, _Relay


async def test_relay_hands_messages_in_order_then_disconnects_forever():
    relay = _Relay()
    waiting = asyncio.ensure_future(relay.get())
    await asyncio.sleep(0)
    relay.put({"type": "http.request", "body": b"a", "more_body": True})
    relay.put({"type": "http.request", "body": b"b", "more_body": False})
    assert (await waiting)["body"] == b"a"
    assert (await relay.get())["body"] == b"b"
    relay.close()
    assert await relay.get() == {"type": "http.disconnect"}
    assert await relay.get() == {"type": "http.disconnect"}


def test_has_body():
    assert not _has_body({"headers": []})
    assert not _has_body({"headers": [(b"content-length", b"0")]})
    assert _has_body({"headers": [(b"content-length", b"12")]})
    assert _has_body({"headers": [(b"transfer-encoding", b"chunked")]})


def test_request_id_outside_an_endpoint_is_none():
    assert request_id({"type": "http"}) is None


async def test_request_id_is_the_one_in_the_response():
    router = Router()

    @router.get("/")
    async def home(request: Request):
        return PlainTextResponse(request_id(request) or "")

    async with ASGIClient(Endpoint(router=router)) as client:
        response = await client.get("/")
        assert response.text == response.headers["x-request-id"]


async def test_a_watched_request_still_reads_its_body_through_the_relay():
    router = Router()

    @router.post("/late", timeout=None)
    async def late(request: Request):
        await asyncio.sleep(0.2)  # long enough to be watched before it reads
        watched = request.scope["beamish.request"].watched
        return PlainTextResponse(f"{watched}:{(await request.body()).decode()}")

    endpoint = Endpoint(router=router, tick=0.02, watch_disconnect_after=0.05)
    async with ASGIClient(endpoint) as client:
        # an empty body is read by the watch and relayed; a non-empty one is left unread
        assert (await client.post("/late")).text == "True:"
        assert (await client.post("/late", content=b"payload")).text == "False:payload"
