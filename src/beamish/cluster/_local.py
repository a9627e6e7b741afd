"""The in-process transport: several nodes in one interpreter, for tests.

``LocalHub`` stands for an engine; ``LocalTransport(hub)`` is one node's connection to it.
A frame published is handed to each subscriber of its subject on a later loop turn, in the
order published, as NATS would. ``hub.partition(a, b)`` drops frames between two transports
(a network partition) until ``hub.heal()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from beamish.cluster._transport import Handler, Subscription, Transport

__all__ = ["LocalHub", "LocalTransport", "hub"]


class LocalHub:
    def __init__(self) -> None:
        self.subjects: dict[str, list[tuple[LocalTransport, Handler]]] = {}
        self.cut: set[frozenset[int]] = set()
        self.frames = 0

    def partition(self, a: LocalTransport, b: LocalTransport) -> None:
        self.cut.add(frozenset((id(a), id(b))))

    def heal(self) -> None:
        self.cut.clear()

    def deliver(self, sender: LocalTransport, subject: str, frame: bytes) -> None:
        self.frames += 1
        loop = asyncio.get_running_loop()
        for receiver, handler in self.subjects.get(subject, ()):
            if self.cut and frozenset((id(sender), id(receiver))) in self.cut:
                continue
            if receiver.paused:
                receiver.held.append((handler, frame))
                continue
            loop.call_soon(handler, frame)


_hubs: dict[str, LocalHub] = {}


def hub(name: str) -> LocalHub:
    """The hub named ``name`` in this interpreter (``local://name``), made on first use."""
    found = _hubs.get(name)
    if found is None:
        found = _hubs[name] = LocalHub()
    return found


class LocalTransport(Transport):
    max_payload = 8 * 1024 * 1024

    def __init__(self, hub: LocalHub, **options: Any) -> None:
        super().__init__(**options)
        self.hub = hub
        self.paused = False
        self.held: list[tuple[Handler, bytes]] = []
        self.held_out: list[tuple[str, bytes]] = []

    async def connect(self) -> None:
        self._set_state(True)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        entry = (self, handler)
        self.hub.subjects.setdefault(subject, []).append(entry)

        def cancel() -> None:
            subscribers = self.hub.subjects.get(subject)
            if subscribers and entry in subscribers:
                subscribers.remove(entry)

        return Subscription(subject, cancel)

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        if self.paused:
            self.held_out.extend(batch)
            return
        for subject, frame in batch:
            self.hub.deliver(self, subject, frame)

    def pause(self) -> None:
        """Hold what arrives and what leaves (a stopped OS process): ``resume()`` lets it
        through."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        held, self.held = self.held, []
        loop = asyncio.get_running_loop()
        for handler, frame in held:
            loop.call_soon(handler, frame)
        out, self.held_out = self.held_out, []
        for subject, frame in out:
            self.hub.deliver(self, subject, frame)


Factory = Callable[[], LocalTransport]
