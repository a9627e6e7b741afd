"""Which topics an event stream serves: its allow list, its authorize callback, deny by default."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.requests import Request

import beamish
from beamish import Supervisor
from beamish._otp.registry.registry import Registry
from beamish.pubsub import PubSub
from beamish.web import Broadcast, Endpoint, EndpointServer, EventStream, Router
from tests.web.sse_client import attached, read_events, serving, start, stream


def secret_broadcasts():
    """What a member of room:secret says there, and the presence diff of their join."""
    PubSub.broadcast("app", "room:secret", Broadcast("room:secret", "new_msg", {"body": "psst"}))
    PubSub.broadcast("app", "room:secret", Broadcast(
        "room:secret", "presence_diff", {"joins": {"alice": {"metas": []}}, "leaves": {}},
    ))


def test_a_stream_that_allows_nothing_is_refused_when_configured():
    with pytest.raises(TypeError, match="would serve no topic") as refused:
        EventStream.child_spec({"name": "news", "pubsub": "app"})
    assert "allow=" in str(refused.value) and "authorize=" in str(refused.value)
    with pytest.raises(ValueError, match=r"only at its end \('room:\*'\), got 'a\*b'"):
        EventStream.child_spec({"name": "news", "pubsub": "app", "allow": ["a*b"]})
    with pytest.raises(TypeError, match="a list of topics"):
        EventStream.child_spec({"name": "news", "pubsub": "app", "allow": "room:lobby"})
    with pytest.raises(TypeError, match="authorize is a function"):
        EventStream.child_spec({"name": "news", "pubsub": "app", "authorize": True})
    with pytest.raises(TypeError, match="unknown EventStream option"):
        EventStream.child_spec({"name": "x", "pubsub": "y", "allow": [], "size": 1})


async def test_an_anonymous_client_cannot_read_a_topic_outside_the_allow_list():
    # The issue's case: GET /events?topic=room:secret read another user's channel.
    await start(allow=["news:*"])
    before = Registry.count("app")
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        refused = await client.get(f"{url}/?topic=room:secret")
        assert refused.status_code == 403
        assert refused.text == (
            "the event stream 'news' does not serve topic 'room:secret' to this request: it "
            "does not match the stream's allow list (to be served, it must match the "
            "stream's allow list)\n"
        )
        # one forbidden topic refuses the whole request: no topic can be slipped in
        mixed = await client.get(f"{url}/?topic=news:today&topic=room:secret")
        assert mixed.status_code == 403
        secret_broadcasts()
    assert Registry.count("app") == before  # nothing subscribed to room:secret
    assert (await EventStream.info("news")).topics == ()


async def test_authorize_decides_with_the_request_and_the_topic():
    seen = []

    async def authorize(request: Request, topic: str) -> bool:
        seen.append((request.headers.get("authorization"), topic))
        await beamish.sleep(0)  # an async check (a session store, a database)
        member = request.headers.get("authorization") == "Bearer alice"
        return topic == "room:lobby" or (topic == "room:secret" and member)

    await start(allow=None, authorize=authorize)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        anonymous = await client.get(f"{url}/?topic=room:secret")
        assert anonymous.status_code == 403
        assert "the stream's authorize callback said no" in anonymous.text
        alice = {"authorization": "Bearer alice"}
        async with stream(client, f"{url}/?topic=room:secret", headers=alice) as (r, lines):
            assert r.status_code == 200
            await attached()
            secret_broadcasts()
            events = await asyncio.wait_for(read_events(lines, 2), 5)
    assert [e[1] for e in events] == ["new_msg", "presence_diff"]
    assert seen == [(None, "room:secret"), ("Bearer alice", "room:secret")]


async def test_with_both_rules_a_topic_must_pass_both():
    await start(allow=["room:*"], authorize=lambda request, topic: topic != "room:staff")
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/?topic=other")).status_code == 403  # not in allow
        staff = await client.get(f"{url}/?topic=room:staff")  # allowed, but authorize says no
        assert staff.status_code == 403
        assert "to be served, it must match the stream's allow list and its authorize " \
               "callback must say True" in staff.text
        async with stream(client, f"{url}/?topic=room:lobby") as (response, _):
            assert response.status_code == 200


async def test_the_topics_function_chooses_and_the_rules_still_apply():
    def topics(request: Request) -> list[str]:
        return [f"user:{request.path_params.get('id') or request.url.path.rsplit('/', 1)[1]}"]

    def authorize(request: Request, topic: str) -> bool:
        return topic == f"user:{request.headers.get('x-user')}"

    await start(allow=None, topics=topics, authorize=authorize)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        # the query cannot add topics when the stream chooses them
        own = {"x-user": "7"}
        async with stream(client, f"{url}/users/7?topic=user:8", headers=own) as (r, lines):
            assert r.status_code == 200
            (connection,) = await attached()
            assert connection.topics == ("user:7",)
            EventStream.publish("news", "user:8", "not yours")
            EventStream.publish("news", "user:7", "yours")
            events = await asyncio.wait_for(read_events(lines, 1), 5)
        assert events[0][2] == "yours"
        assert (await client.get(f"{url}/users/8", headers=own)).status_code == 403


async def test_an_authorize_callback_must_answer_true_or_false(caplog):
    await Supervisor.start_link([
        (PubSub, {"name": "app"}),
        (EventStream, {"name": "news", "pubsub": "app", "authorize": lambda r, t: None}),
    ])
    router = Router()
    router.mount("/events", EventStream.app("news"), timeout=None)
    server = EndpointServer(Endpoint(router=router), port=0)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{server.url}/events?topic=t")
    finally:
        await server.stop()
    assert answer.status_code == 500  # a bug in the application, not a refusal
    assert any("must answer True or False, got None for topic 't'" in r.getMessage()
               for r in caplog.records)
