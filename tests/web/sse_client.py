"""What the Server-Sent Events tests share: a real server, a reader of the format, waits."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re

import uvicorn

import beamish
from beamish import Supervisor
from beamish.pubsub import PubSub
from beamish.web import EventStream
from tests.conditions import eventually

__all__ = [
    "ID", "attached", "eventually", "next_block", "read_events", "serving", "start", "stream",
]

ID = re.compile(r"[0-9a-f]{16}-[0-9]+\Z")


@contextlib.asynccontextmanager
async def serving(app):
    """Serve ``app`` with uvicorn on a free port, inside this runtime's loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                            http="httptools", ws="none")
    server = uvicorn.Server(config)
    # as EndpointServer does: the server's tasks see the runtime, and no process of the test
    context = contextvars.Context()
    context.run(beamish.current_runtime().bind)
    task = asyncio.get_running_loop().create_task(server.serve(), context=context)
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


async def start(**options):
    """A PubSub "app" and an EventStream "news" on it (allowing every ``t*`` topic unless
    the test says otherwise); the supervisor's pid."""
    options.setdefault("allow", ["t*", "sports", "weather", "room:lobby"])
    return await Supervisor.start_link([
        (PubSub, {"name": "app"}),
        (EventStream, {"name": "news", "pubsub": "app", **options}),
    ])


async def next_block(lines):
    """The next block of the stream (the fields up to a blank line) as a dict; comments
    are collected under ``"comments"``. None at the end of the stream."""
    current: dict = {}
    async for line in lines:
        if line.startswith(":"):
            current.setdefault("comments", []).append(line)
            continue
        if not line:
            if current:
                return current
            continue
        field, _, value = line.partition(": ")
        if field == "data" and "data" in current:
            current["data"] += "\n" + value  # a multi-line event: its lines join with \n
        else:
            current[field] = value
    return current or None


async def read_events(lines, count):
    """The next ``count`` events (id, event, data), skipping comments and data-less blocks
    (a position marker sets the client's id without being an event)."""
    events = []
    while len(events) < count:
        block = await next_block(lines)
        if block is None:
            break
        if "data" in block:
            events.append((block.get("id"), block.get("event"), block["data"]))
    return events


async def attached(count=1, stream_name="news"):
    """Wait until the stream has ``count`` connections; their records."""

    async def check():
        info = await EventStream.info(stream_name)
        return info.connections if len(info.connections) == count else None

    return await eventually(check, what=f"{count} connection(s) attaching")
