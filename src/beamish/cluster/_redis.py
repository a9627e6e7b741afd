"""The Redis transport (``redis`` with ``hiredis``): pub/sub channels, because most Python
teams already run Redis.

Frames are published through one connection with pipelining (a batch costs one round trip,
not one per frame) and read through another, subscribed. Redis pub/sub delivers in order per
publishing connection and drops nothing silently but a client whose output buffer passes the
server's ``client-output-buffer-limit``, which the server then disconnects: the cluster sees a
lost connection, and its sessions restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from beamish.cluster._nats import _safe
from beamish.cluster._transport import Handler, Subscription, Transport, TransportError

__all__ = ["RedisTransport"]

_log = logging.getLogger("beamish.cluster")


class RedisTransport(Transport):
    max_payload = 8 * 1024 * 1024

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self._client: Any = None
        self._pubsub: Any = None
        self._handlers: dict[bytes, Handler] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._reader: asyncio.Task[None] | None = None

    def preload(self) -> None:
        import redis.asyncio  # noqa: F401

    async def connect(self) -> None:
        import redis.asyncio as redis

        try:
            self._client = redis.Redis.from_url(
                self.url, decode_responses=False, socket_connect_timeout=5
            )
            await asyncio.wait_for(self._client.ping(), 10)
            self._pubsub = self._client.pubsub()
        except Exception as exc:
            raise TransportError(f"cannot connect to Redis at {_safe(self.url)}: {exc}") from None
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

    async def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("Redis at %s: %s", _safe(self.url), exc)
                self._set_state(False)
                await asyncio.sleep(0.5)
                continue
            if not self.connected:
                self._set_state(True)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "subscribe":
                event = self._confirmed.pop(message["channel"], None)
                if event is not None:
                    event.set()
                continue
            if kind != "message":
                continue
            handler = self._handlers.get(message["channel"])
            if handler is not None:
                handler(message["data"])

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for subject, frame in batch:
            pipe.publish(subject, frame)
        await pipe.execute()

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._pubsub = self._client = None
