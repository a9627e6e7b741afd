"""Server-Sent Events over a real uvicorn server: live, resume from Last-Event-ID, gaps."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
import uvicorn

import beamish
from beamish import Supervisor
from beamish.pubsub import PubSub
from beamish.web import Broadcast, EventStream


@contextlib.asynccontextmanager
async def serving(app):
    """Serve ``app`` with uvicorn on a free port, inside this runtime's loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                            http="httptools", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def stream(client, url, **kwargs):
    """An SSE response and its line iterator, closed on the way out."""
    async with (
        client.stream("GET", url, **kwargs) as response,
        contextlib.aclosing(response.aiter_lines()) as lines,
    ):
        yield response, lines


async def start(buffer_size=100, keepalive=15.0):
    await Supervisor.start_link([
        (PubSub, {"name": "app"}),
        (EventStream, {"name": "news", "pubsub": "app", "buffer_size": buffer_size,
                       "keepalive": keepalive}),
    ])


async def read_events(lines, count):
    """The next ``count`` events (id, event, data) from an SSE response's line iterator
    (``response.aiter_lines()``, made once per response); comments skipped."""
    events, current = [], {}
    async for line in lines:
        if line.startswith(":"):
            current.setdefault("comments", []).append(line)
            continue
        if not line:
            if "data" in current:
                events.append((current.get("id"), current.get("event"), current["data"]))
                if len(events) == count:
                    return events
            current = {}
            continue
        field, _, value = line.partition(": ")
        if field == "data" and "data" in current:
            current["data"] += "\n" + value  # a multi-line event: its lines join with \n
        else:
            current[field] = value
    return events


async def test_events_stream_live_with_ids_and_names():
    await start()
    async with (
        serving(EventStream.app("news")) as url,
        httpx.AsyncClient() as client,
        stream(client, f"{url}/?topic=sports") as (response, lines),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        await beamish.sleep(0.05)  # the stream has attached its topic
        EventStream.publish("news", "sports", {"score": "1-0"}, event="goal")
        EventStream.publish("news", "weather", "rain")  # another topic: not ours
        EventStream.publish("news", "sports", "line one\nline two")
        events = await asyncio.wait_for(read_events(lines, 2), 5)
    # weather is not a topic of this stream: it is neither numbered nor sent
    assert events == [("1", "goal", '{"score":"1-0"}'), ("2", None, "line one\nline two")]


async def test_resume_from_last_event_id_replays_then_goes_live():
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, first):
            await beamish.sleep(0.05)
            for i in range(5):
                EventStream.publish("news", "t", f"event {i}")
            seen = await asyncio.wait_for(read_events(first, 2), 5)
        assert [e[0] for e in seen] == ["1", "2"]
        headers = {"last-event-id": "2"}
        async with stream(client, f"{url}/?topic=t", headers=headers) as (_, lines):
            replayed = await asyncio.wait_for(read_events(lines, 3), 5)
            assert [e[2] for e in replayed] == ["event 2", "event 3", "event 4"]
            EventStream.publish("news", "t", "live")
            live = await asyncio.wait_for(read_events(lines, 1), 5)
            assert live == [("6", None, "live")]


async def test_a_client_away_longer_than_the_buffer_is_told_of_the_gap():
    await start(buffer_size=3)
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, first):
            await beamish.sleep(0.05)
            for i in range(10):
                EventStream.publish("news", "t", i)
            await asyncio.wait_for(read_events(first, 10), 5)
        async with stream(client, f"{url}/?topic=t", headers={"last-event-id": "2"}) as (_, it):
            got = []
            async for line in it:
                got.append(line)
                if line == "data: 9":
                    break
    assert got[0] == ": gap"
    assert [line for line in got if line.startswith("id:")] == ["id: 8", "id: 9", "id: 10"]


async def test_channel_broadcasts_on_the_topic_are_streamed_too():
    await start()
    async with (
        serving(EventStream.app("news")) as url,
        httpx.AsyncClient() as client,
        stream(client, f"{url}/?topic=room:lobby") as (_, lines),
    ):
        await beamish.sleep(0.05)
        PubSub.broadcast("app", "room:lobby", Broadcast("room:lobby", "new_msg", {"body": "hi"}))
        events = await asyncio.wait_for(read_events(lines, 1), 5)
    assert events == [("1", "new_msg", '{"body":"hi"}')]


async def test_keepalive_comments_and_disconnect_ends_the_connection_process():
    await start(keepalive=0.05)
    before = len(beamish.processes())
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        async with stream(client, f"{url}/?topic=t") as (_, it):
            got = []
            async for line in it:
                got.append(line)
                if len(got) >= 2:
                    break
            assert ": keepalive" in got
            assert len(beamish.processes()) > before  # the connection's process
        for _ in range(100):
            if len(beamish.processes()) == before:
                break
            await beamish.sleep(0.01)
        assert len(beamish.processes()) == before  # the client left: its process ended


async def test_bad_requests():
    await start()
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/")).status_code == 400
        assert (await client.post(f"{url}/?topic=t")).status_code == 405
    with pytest.raises(LookupError, match="no EventStream named 'nope'"):
        EventStream.publish("nope", "t", 1)
    with pytest.raises(TypeError, match="unknown EventStream option"):
        EventStream.child_spec({"name": "x", "pubsub": "y", "size": 1})
