"""Server-Sent Events over a real uvicorn server: live, resume from Last-Event-ID, gaps."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import socket

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

import beamish
from beamish import Supervisor
from beamish.pubsub import PubSub
from beamish.web import Broadcast, Endpoint, EventStream, Router
from tests.web.sse_client import (
    ID,
    attached,
    eventually,
    next_block,
    read_events,
    serving,
    start,
    stream,
)


def seq(event_id):
    return int(event_id.rsplit("-", 1)[1])


def epoch(event_id):
    return event_id.rsplit("-", 1)[0]


async def test_events_stream_live_with_ids_and_names():
    await start()
    async with (
        serving(EventStream.app("news")) as url,
        httpx.AsyncClient() as client,
        stream(client, f"{url}/?topic=sports") as (response, lines),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        position = await next_block(lines)  # where this client starts: an id, no event
        assert set(position) == {"id"} and ID.match(position["id"])
        await attached()
        EventStream.publish("news", "sports", {"score": "1-0"}, event="goal")
        EventStream.publish("news", "weather", "rain")  # another topic: not ours
        EventStream.publish("news", "sports", "line one\nline two")
        events = await asyncio.wait_for(read_events(lines, 2), 5)
    assert [(e[1], e[2]) for e in events] == [("goal", '{"score":"1-0"}'),
                                              (None, "line one\nline two")]
    first, second = events[0][0], events[1][0]
    assert ID.match(first) and epoch(first) == epoch(second) == epoch(position["id"])
    assert seq(position["id"]) < seq(first) < seq(second)


async def test_resume_from_last_event_id_replays_then_goes_live():
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, first):
            await attached()
            for i in range(5):
                EventStream.publish("news", "t", f"event {i}")
            seen = await asyncio.wait_for(read_events(first, 2), 5)
        headers = {"last-event-id": seen[1][0]}
        async with stream(client, f"{url}/?topic=t", headers=headers) as (_, lines):
            replayed = await asyncio.wait_for(read_events(lines, 3), 5)
            assert [e[2] for e in replayed] == ["event 2", "event 3", "event 4"]
            EventStream.publish("news", "t", "live")
            live = await asyncio.wait_for(read_events(lines, 1), 5)
            assert live[0][2] == "live" and seq(live[0][0]) > seq(replayed[-1][0])


async def test_a_new_client_resumes_from_the_position_it_was_given():
    # A client that drops before its first event still resumes: it was given its position.
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            position = (await next_block(lines))["id"]
        await eventually(lambda: _no_connections(), what="the first connection ending")
        for i in range(3):
            EventStream.publish("news", "t", i)
        headers = {"last-event-id": position}
        async with stream(client, f"{url}/?topic=t", headers=headers) as (_, lines):
            missed = await asyncio.wait_for(read_events(lines, 3), 5)
    assert [e[2] for e in missed] == ["0", "1", "2"]


async def _no_connections():
    return not (await EventStream.info("news")).connections


async def gap_then_live(client, url, last_event_id, topic="t"):
    """Connect with ``last_event_id``; the gap block, and three events published after."""
    headers = {"last-event-id": last_event_id}
    async with stream(client, f"{url}/?topic={topic}", headers=headers) as (response, lines):
        assert response.status_code == 200
        gap = await asyncio.wait_for(next_block(lines), 5)
        await attached()
        for i in range(3):
            EventStream.publish("news", topic, f"new {i}")
        live = await asyncio.wait_for(read_events(lines, 3), 5)
    return gap, live


def assert_gap(block, reason, last_event_id):
    assert block["event"] == "beamish:gap"
    assert json.loads(block["data"]) == {"reason": reason, "last_event_id": last_event_id}
    assert ID.match(block["id"])  # the client resumes from here next time


async def test_a_client_away_longer_than_the_buffer_is_told_of_the_gap():
    await start(buffer_size=3)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, first):
            await attached()
            for i in range(10):
                EventStream.publish("news", "t", i)
            seen = await asyncio.wait_for(read_events(first, 10), 5)
        gap, live = await gap_then_live(client, url, seen[1][0])
    assert_gap(gap, "expired", seen[1][0])
    # after the gap, the live stream (what the buffer still held is in the reloaded state)
    assert [e[2] for e in live] == ["new 0", "new 1", "new 2"]
    assert seq(gap["id"]) < seq(live[0][0])


async def test_event_ids_survive_a_hub_restart():
    # The case: 24 events seen, the hub restarts, the client resumes from id 24.
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            await attached()
            for i in range(24):
                EventStream.publish("news", "t", i)
            seen = await asyncio.wait_for(read_events(lines, 24), 5)
            hub = beamish.whereis("beamish.sse:news")
            beamish.exit(hub, "kill")
            # the connection ends its response, so the client reconnects at once
            assert await asyncio.wait_for(next_block(lines), 5) is None
        await eventually(lambda: beamish.whereis("beamish.sse:news") not in (None, hub),
                         what="the hub's restart")
        gap, live = await gap_then_live(client, url, seen[-1][0])
    assert_gap(gap, "restarted", seen[-1][0])
    assert [e[2] for e in live] == ["new 0", "new 1", "new 2"]  # 3 of 3
    assert epoch(live[0][0]) != epoch(seen[-1][0])


async def test_an_id_ahead_of_the_counter_is_told():
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            position = (await next_block(lines))["id"]
        ahead = f"{epoch(position)}-{seq(position) + 1000}"
        gap, live = await gap_then_live(client, url, ahead)
    assert_gap(gap, "ahead", ahead)
    assert [e[2] for e in live] == ["new 0", "new 1", "new 2"]


@pytest.mark.parametrize("sent", ["24", "nonsense", "x" * 300])
async def test_a_malformed_id_is_told(sent):
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        gap, live = await gap_then_live(client, url, sent)
    assert_gap(gap, "malformed", sent[:100])  # echoed back, cut short
    assert [e[2] for e in live] == ["new 0", "new 1", "new 2"]


async def test_a_topic_the_stream_stopped_following_is_a_gap():
    # With no linger, the hub lets go of a topic when its last client leaves: whatever is
    # published meanwhile is never numbered, and a client coming back is told so.
    await start(linger=0)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            await attached()
            EventStream.publish("news", "t", "seen")
            seen = await asyncio.wait_for(read_events(lines, 1), 5)
        await eventually(lambda: _not_following("t"), what="the hub letting go of t")
        EventStream.publish("news", "t", "published while nobody followed t")
        gap, live = await gap_then_live(client, url, seen[0][0])
    assert_gap(gap, "not_followed", seen[0][0])
    assert [e[2] for e in live] == ["new 0", "new 1", "new 2"]


async def _not_following(topic):
    return topic not in (await EventStream.info("news")).topics


async def test_a_client_that_comes_back_within_the_linger_misses_nothing():
    await start(linger=60)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            await attached()
            EventStream.publish("news", "t", "seen")
            seen = await asyncio.wait_for(read_events(lines, 1), 5)
        await eventually(lambda: _no_connections(), what="the connection ending")
        assert "t" in (await EventStream.info("news")).topics  # still followed
        EventStream.publish("news", "t", "while away")
        headers = {"last-event-id": seen[0][0]}
        async with stream(client, f"{url}/?topic=t", headers=headers) as (_, lines):
            missed = await asyncio.wait_for(read_events(lines, 1), 5)
    assert missed[0][2] == "while away"


async def test_channel_broadcasts_on_the_topic_are_streamed_too():
    await start()
    async with (
        serving(EventStream.app("news")) as url,
        httpx.AsyncClient() as client,
        stream(client, f"{url}/?topic=room:lobby") as (_, lines),
    ):
        await attached()
        PubSub.broadcast("app", "room:lobby", Broadcast("room:lobby", "new_msg", {"body": "hi"}))
        events = await asyncio.wait_for(read_events(lines, 1), 5)
    assert [(e[1], e[2]) for e in events] == [("new_msg", '{"body":"hi"}')]


async def test_data_cannot_add_fields_and_event_names_cannot_either(caplog):
    await start()
    async with (
        serving(EventStream.app("news")) as url,
        httpx.AsyncClient() as client,
        stream(client, f"{url}/?topic=room:lobby") as (_, lines),
    ):
        await attached()
        # a lone CR ends a line for an EventSource: it must not start an `id:` or `event:`
        EventStream.publish("news", "room:lobby", "a\rid: forged\revent: forged\r\nb")
        for name in ("beamish:gap", "x\nid: forged"):  # a client can choose event names
            PubSub.broadcast("app", "room:lobby", Broadcast("room:lobby", name, {}))
        EventStream.publish("news", "room:lobby", "after")
        events = await asyncio.wait_for(read_events(lines, 2), 5)
    assert [(e[1], e[2]) for e in events] == [
        (None, "a\nid: forged\nevent: forged\nb"), (None, "after"),
    ]
    assert ID.match(events[0][0])
    refused = [r for r in caplog.records if "is not streamed" in r.getMessage()]
    assert len(refused) == 2
    with pytest.raises(ValueError, match="one line"):
        EventStream.publish("news", "t", 1, event="a\nb")
    with pytest.raises(ValueError, match="the stream's own"):
        EventStream.publish("news", "t", 1, event="beamish:gap")


async def test_keepalive_comments_and_disconnect_ends_the_connection_process():
    await start(keepalive=0.05)
    before = len(beamish.processes())
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, lines):
            block = await next_block(lines)
            while "comments" not in block:
                block = await next_block(lines)
            assert ": keepalive" in block["comments"]
            assert len(beamish.processes()) > before  # the connection's process
        await eventually(lambda: len(beamish.processes()) == before,
                         what="the connection's process ending")


async def test_bad_requests(caplog):
    supervisor = await start(max_topics=3)
    caplog.set_level(logging.WARNING)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/")).status_code == 400
        empty = await client.get(f"{url}/?topic=")
        assert empty.status_code == 400 and "non-empty" in empty.text
        many = await client.get(f"{url}/?" + "&".join(f"topic=t{i}" for i in range(4)))
        assert many.status_code == 400 and "at most 3 (the stream's max_topics)" in many.text
        post = await client.post(f"{url}/?topic=t")
        assert post.status_code == 405 and post.headers["allow"] == "GET"
        assert (await EventStream.info("news")).connections == ()
        await Supervisor.terminate_child(supervisor, ("EventStream", "news"))
        stopped = await client.get(f"{url}/?topic=t")
        assert stopped.status_code == 503 and stopped.headers["retry-after"] == "1"
        assert "the event stream 'news' is not running" in stopped.text
    with pytest.raises(LookupError, match="no EventStream named 'nope'"):
        EventStream.publish("nope", "t", 1)


async def test_the_stream_runs_under_hypercorn_through_an_endpoint():
    # The connection writes without waiting on the server's send (write_now): hypercorn's
    # HTTP send, which waits on a lock and a drain, must go through it as uvicorn's does.
    await start()
    router = Router()
    router.mount("/events", EventStream.app("news"), timeout=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 2
    stop = asyncio.Event()
    context = contextvars.Context()
    context.run(beamish.current_runtime().bind)
    task = asyncio.get_running_loop().create_task(
        serve(Endpoint(router=router), config, shutdown_trigger=stop.wait), context=context
    )
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"http://127.0.0.1:{port}/events?topic=t"

            async def listening():
                with contextlib.suppress(httpx.ConnectError):
                    return (await client.get(f"{url}&topic=")).status_code == 400

            await eventually(listening, what="hypercorn listening")
            async with stream(client, url) as (response, lines):
                assert response.status_code == 200
                for i in range(2000):
                    EventStream.publish("news", "t", f"{i:0100}")
                events = await asyncio.wait_for(read_events(lines, 2000), 10)
        assert [int(e[2]) for e in events] == list(range(2000))
    finally:
        stop.set()
        await task
