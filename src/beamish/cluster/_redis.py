"""The Redis transport (``redis`` with ``hiredis``): pub/sub channels, because most Python
teams already run Redis.

Frames are published through one connection of our own and read through another,
subscribed. A ``PUBLISH`` is written at once when nothing waits before it, and its reply (the
number of receivers) is read by a task of its own: a frame never waits for the reply to the
one before it, and one connection keeps them in order. When the socket's buffer is full, or a
frame waits in the outbox, frames queue in the bounded outbox behind it and leave pipelined.
Redis pub/sub delivers in order per publishing connection and drops nothing silently but a
client whose output buffer passes the server's ``client-output-buffer-limit``, which the
server then disconnects: the cluster sees a lost connection, and its sessions restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from beamish.cluster._nats import _safe
from beamish.cluster._transport import (
    Handler,
    Subscription,
    Transport,
    TransportError,
    _cancel,
)

__all__ = ["RedisTransport"]

_log = logging.getLogger("beamish.cluster")

_PUBLISH = b"PUBLISH"


class RedisTransport(Transport):
    max_payload = 8 * 1024 * 1024

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self._client: Any = None
        self._pubsub: Any = None
        self._conn: Any = None  # the publishing connection
        self._generation = 0  # bumped at each (re)connection of _conn
        self._reconnected: asyncio.Event | None = None
        self._unacked = 0  # PUBLISHes written whose reply has not been read
        self._acked: asyncio.Event | None = None
        self._handlers: dict[bytes, Handler] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None
        self._replies: asyncio.Task[None] | None = None

    def preload(self) -> None:
        import redis.asyncio  # noqa: F401

    async def connect(self) -> None:
        import redis.asyncio as redis

        try:
            # RESP2: pub/sub messages are plain replies, read without the push handlers
            self._client = redis.Redis.from_url(
                self.url, decode_responses=False, socket_connect_timeout=5, protocol=2,
                client_name="beamish",  # as CLIENT LIST shows it to an operator
            )
            await asyncio.wait_for(self._client.ping(), 10)
            self._pubsub = self._client.pubsub()
            self._conn = await self._client.connection_pool.get_connection()
        except Exception as exc:
            raise TransportError(f"cannot connect to Redis at {_safe(self.url)}: {exc}") from None
        self._reconnected = asyncio.Event()
        self._acked = asyncio.Event()
        self._acked.set()
        self._replies = asyncio.get_running_loop().create_task(
            self._read_replies(), name="beamish-redis-replies"
        )
        self._set_state(True)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        channel = subject.encode()
        self._handlers[channel] = handler
        confirmed = self._confirmed[channel] = asyncio.Event()
        await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._read(), name="beamish-redis-reader"
            )
        try:  # the server's confirmation: from here on, what is published reaches us
            await asyncio.wait_for(confirmed.wait(), 10)
        except TimeoutError:
            raise TransportError(f"Redis did not confirm the subscription to {subject}") from None

        async def cancel() -> None:
            self._handlers.pop(channel, None)
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(channel)

        return Subscription(subject, cancel)

    # -- reading ----------------------------------------------------------------------------

    async def _read(self) -> None:
        """Reads the subscribed connection's replies straight from the client's parser while
        the connection holds; after a failure, through ``get_message``, which reconnects and
        subscribes again."""
        pubsub = self._pubsub
        while True:
            try:
                conn = pubsub.connection
                if self.connected and conn is not None and conn.is_connected:
                    reply = await conn.read_response(timeout=math.inf)
                else:
                    message = await pubsub.get_message(timeout=1.0)
                    self._set_state(True)
                    if message is None:
                        continue
                    reply = [message["type"].encode(), message["channel"], message["data"]]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("Redis at %s: %s", _safe(self.url), exc)
                self._set_state(False)
                await asyncio.sleep(0.5)
                continue
            if type(reply) is not list or len(reply) != 3:
                continue
            kind = reply[0]
            if kind == b"message":
                handler = self._handlers.get(reply[1])
                if handler is not None:
                    handler(reply[2])
            elif kind == b"subscribe":
                event = self._confirmed.pop(reply[1], None)
                if event is not None:
                    event.set()

    async def _read_replies(self) -> None:
        """The replies to the PUBLISHes, read as they come; they only count what is in
        flight (for ``flush``), or name an error."""
        assert self._reconnected is not None and self._acked is not None
        while True:
            generation = self._generation
            try:
                reply = await self._conn.read_response(timeout=math.inf)
            except asyncio.CancelledError:
                raise
            except Exception:  # lost: the next write reconnects, and says so
                while self._generation == generation:
                    self._reconnected.clear()
                    await self._reconnected.wait()
                continue
            if isinstance(reply, Exception):
                _log.warning("Redis at %s refused a PUBLISH: %s", _safe(self.url), reply)
            if self._unacked > 0:
                self._unacked -= 1
                if self._unacked == 0:
                    self._acked.set()

    # -- writing ----------------------------------------------------------------------------

    def publish(self, subject: str, frame: bytes) -> None:
        """Straight onto the socket when nothing waits before it (``Transport._write_now``)."""
        conn = self._conn
        if (not self._may_write_now() or conn is None or not conn.is_connected
                or not self.connected or len(frame) > self.max_payload):
            super().publish(subject, frame)  # in order behind what waits; or the errors
            return
        try:
            self._write_now(
                conn.send_packed_command(conn.pack_command(_PUBLISH, subject, frame), False)
            )
        except Exception as exc:
            _log.warning("Redis at %s lost a frame: %s", _safe(self.url), exc)
            self._set_state(False)
            return
        self._in_flight(1)

    def _in_flight(self, count: int) -> None:
        assert self._acked is not None
        self._unacked += count
        self._acked.clear()

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        conn = self._conn
        if not conn.is_connected:
            await conn.connect()
            self._unacked = 0  # what the old connection carried is answered no more
            assert self._acked is not None and self._reconnected is not None
            self._acked.set()
            self._generation += 1
            self._reconnected.set()
            self._set_state(True)
        commands = conn.pack_commands([(_PUBLISH, subject, frame) for subject, frame in batch])
        self._in_flight(len(batch))
        await conn.send_packed_command(commands, False)

    async def flush(self) -> None:
        await super().flush()
        if self._acked is not None and self._conn is not None and self._conn.is_connected:
            await self._acked.wait()  # Redis has them all: their replies have come

    async def close(self) -> None:
        await super().close()
        await _cancel(self._reader, self._replies)
        self._reader = self._replies = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.disconnect()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._pubsub = self._client = self._conn = None
