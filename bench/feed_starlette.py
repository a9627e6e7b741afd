"""The feed's fan-out as a Python team would write it without beamish: Starlette's
WebSockets, SQLite (its calls in Starlette's thread pool) and Redis pub/sub, in the shape
of ``broadcaster`` (one pub/sub connection per process, a queue per local subscriber).
``bench/feed.py`` runs it beside ``examples/feed`` on the same load.

Why not ``broadcaster`` itself: its 0.3.1 with redis-py 8.2, tried here first, delivered
nothing (subscribed, published, never received): its listener task can start listening
before the first SUBSCRIBE is acknowledged, find no subscription, and wait for a next one.
``Hub`` below is the same design, subscribed before it listens.

    python bench/feed_starlette.py PORT   (FEED_BENCH_DB: the SQLite file, seeded)

A connection ``/ws?user=NAME`` subscribes its queue to the channel ``author:<id>`` of
everyone the user follows (a task relays the queue to the socket) and answers
``{"ready": true}`` once they are all subscribed. A message ``{"post": body}`` is
stored (INSERT ... RETURNING id), then published on the author's channel, then answered
``{"ok": id}``: the same order as the beamish feed (stored, then announced).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from redis import asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

DB_PATH = os.environ.get("FEED_BENCH_DB", "feed.sqlite3")
REDIS_URL = os.environ.get("FEED_BENCH_REDIS", "redis://127.0.0.1:6379")


class Hub:
    """One Redis pub/sub connection for the process; each channel's local subscribers are
    queues, and one reader task hands each message to them (``broadcaster``'s design)."""

    def __init__(self, url: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.queues: dict[str, set[asyncio.Queue[str]]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.subscribe("hub:alive")  # subscribed before listening
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "message":
                data = message["data"].decode()
                for queue in self.queues.get(message["channel"].decode(), ()):
                    queue.put_nowait(data)

    async def subscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        first = channel not in self.queues
        self.queues.setdefault(channel, set()).add(queue)
        if first:
            await self.pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        queues = self.queues.get(channel)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.queues[channel]
                await self.pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: str) -> None:
        await self.redis.publish(channel, message)

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pubsub.aclose()
        await self.redis.aclose()


hub = Hub(REDIS_URL)


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB_PATH, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


_local: dict[int, sqlite3.Connection] = {}


def db() -> sqlite3.Connection:
    import threading

    key = threading.get_ident()
    conn = _local.get(key)
    if conn is None:
        conn = _local[key] = _connect()
    return conn


def lookup(name: str) -> tuple[int, list[int]]:
    conn = db()
    (uid,) = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    rows = conn.execute("SELECT followee_id FROM follows WHERE follower_id = ?", (uid,))
    return uid, [row[0] for row in rows]


def insert_post(author: int, body: str) -> tuple[int, int]:
    at = int(time.time() * 1000)
    (post_id,) = db().execute(
        "INSERT INTO posts (author_id, body, reply_to, created_at) VALUES (?, ?, NULL, ?) "
        "RETURNING id", (author, body, at),
    ).fetchone()
    return post_id, at


async def feed(ws: WebSocket) -> None:
    await ws.accept()
    name = ws.query_params["user"]
    uid, followees = await run_in_threadpool(lookup, name)
    queue: asyncio.Queue[str] = asyncio.Queue()
    channels = [f"author:{author}" for author in followees]

    async def relay() -> None:
        while True:
            await ws.send_text(await queue.get())

    for channel in channels:
        await hub.subscribe(channel, queue)
    relaying = asyncio.create_task(relay())
    try:
        await ws.send_json({"ready": True})
        while True:
            message = await ws.receive_json()
            body = message.get("post")
            if isinstance(body, str):
                post_id, at = await run_in_threadpool(insert_post, uid, body)
                await hub.publish(f"author:{uid}", json.dumps(
                    {"id": post_id, "author": name, "body": body, "at": at}))
                await ws.send_json({"ok": post_id})
    except WebSocketDisconnect:
        pass
    finally:
        relaying.cancel()
        for channel in channels:
            await hub.unsubscribe(channel, queue)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await hub.start()
    yield
    await hub.stop()


app = Starlette(routes=[WebSocketRoute("/ws", feed)], lifespan=lifespan)


def main(port: int, workers: int = 1) -> None:
    config: dict[str, Any] = {"host": "127.0.0.1", "port": port, "log_level": "warning",
                              "ws": "websockets-sansio", "ws_per_message_deflate": False,
                              "backlog": 4096, "loop": "uvloop", "http": "httptools"}
    if workers > 1:  # uvicorn's worker processes: Redis carries the posts between them
        uvicorn.run("feed_starlette:app", workers=workers,
                    app_dir=str(Path(__file__).resolve().parent), **config)
    else:
        uvicorn.run(app, **config)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
