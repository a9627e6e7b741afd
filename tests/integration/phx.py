"""A small Phoenix Channels client (protocol V2, JSON) over ``websockets``, for tests.

It speaks the wire protocol directly, as any non-JavaScript client would: frames are
``[join_ref, ref, topic, event, payload]``. ``receive`` waits for the first frame that
matches and keeps the others for later calls, so a test waits on events, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

WAIT = 20.0  # seconds; only reached when something is broken

Frame = tuple[str | None, str | None, str, str, Any]


class PhxClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.refs = itertools.count(1)
        self.join_refs: dict[str, str] = {}
        self.pending: list[Frame] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[PhxClient]:
        """Connect to the socket at ``/socket`` of the server at ``url`` (http://...)."""
        ws_url = url.replace("http", "ws", 1) + "/socket/websocket?vsn=2.0.0"
        async with connect(ws_url) as ws:
            yield cls(ws)

    async def send(self, topic: str, event: str, payload: Any) -> str:
        ref = str(next(self.refs))
        if event == "phx_join":
            self.join_refs[topic] = ref
        frame = [self.join_refs.get(topic), ref, topic, event, payload]
        await self.ws.send(json.dumps(frame))
        return ref

    async def join(self, topic: str, payload: Any) -> tuple[str, Any]:
        """Join ``topic``; returns the reply's ``(status, response)``."""
        return await self.reply(topic, await self.send(topic, "phx_join", payload))

    async def push(self, topic: str, event: str, payload: Any) -> tuple[str, Any]:
        """Push ``event``; returns the reply's ``(status, response)``."""
        return await self.reply(topic, await self.send(topic, event, payload))

    async def leave(self, topic: str) -> tuple[str, Any]:
        return await self.push(topic, "phx_leave", {})

    async def reply(self, topic: str, ref: str) -> tuple[str, Any]:
        payload = await self.receive(topic, "phx_reply", ref=ref)
        return payload["status"], payload["response"]

    async def receive(
        self, topic: str, event: str, matches: Callable[[Any], bool] = lambda _: True, *,
        ref: str | None = None, timeout: float = WAIT,
    ) -> Any:
        """The payload of the first frame of ``topic`` and ``event`` (and ``ref``, if given)
        whose payload ``matches``; the frames passed over stay for later calls."""

        def wanted(frame: Frame) -> bool:
            return (frame[2] == topic and frame[3] == event
                    and (ref is None or frame[1] == ref) and matches(frame[4]))

        for i, frame in enumerate(self.pending):
            if wanted(frame):
                del self.pending[i]
                return frame[4]
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame: Frame = tuple(json.loads(await self.ws.recv()))  # type: ignore[assignment]
                    if wanted(frame):
                        return frame[4]
                    self.pending.append(frame)
        except TimeoutError:
            raise AssertionError(
                f"no {event!r} on {topic!r} within {timeout:g}s; frames received meanwhile: "
                f"{self.pending}"
            ) from None
