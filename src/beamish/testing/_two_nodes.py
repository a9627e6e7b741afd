"""Two runtimes on one event loop, joined by a PubSub adapter alone: the reference an adapter
author tests against (``local_cluster`` joins whole nodes instead).

``Bridge`` is a PubSub adapter that delivers a broadcast on the other runtimes by spawning a
process there that broadcasts locally; spawn copies its arguments, as a wire would.
``pubsub_on(node, nodes)`` is the child spec of a PubSub bridged to the other runtimes, and
``second_node(nodes)`` starts one more runtime beside the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from beamish._runtime.runtime import Runtime
from beamish.pubsub import PubSub


class Bridge:
    """A PubSub adapter joining runtimes that share one event loop.

    ``lose(message)``, if given, drops the messages for which it returns true: a lossy wire.
    """

    def __init__(
        self, node: str, pubsub: str, nodes: dict[str, Runtime],
        lose: Callable[[Any], bool] | None = None,
    ) -> None:
        self.node, self.pubsub, self.nodes, self.lose = node, pubsub, nodes, lose

    def node_name(self) -> str:
        return self.node

    def broadcast(self, topic: str, message: Any, dispatcher: Any, from_pid: Any) -> None:
        for name in self.nodes:
            if name != self.node:
                self.direct_broadcast(name, topic, message, dispatcher, from_pid)

    def direct_broadcast(
        self, node: str, topic: str, message: Any, dispatcher: Any, from_pid: Any
    ) -> None:
        runtime = self.nodes.get(node)
        if self.lose is not None and self.lose(message):
            return
        if runtime is not None and node != self.node:
            runtime.spawn(_deliver, (self.pubsub, topic, message))


async def _deliver(pubsub: str, topic: str, message: Any) -> None:
    PubSub.local_broadcast(pubsub, topic, message)


def pubsub_on(
    node: str, nodes: dict[str, Runtime], name: str = "ps",
    lose: Callable[[Any], bool] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The child of a PubSub named ``name`` on ``node``, bridged to the other nodes."""
    return (PubSub, {"name": name, "adapter": lambda _: Bridge(node, name, nodes, lose)})


@contextlib.asynccontextmanager
async def second_node(nodes: dict[str, Runtime], name: str = "b") -> AsyncIterator[Runtime]:
    """Start a runtime named ``name`` next to the test's, in ``nodes``; stop it after."""
    runtime = nodes[name] = Runtime(node=name, long_schedule=None)
    await asyncio.create_task(runtime.start())  # its own context: the test stays where it is
    try:
        yield runtime
    finally:
        await runtime.stop()
        del nodes[name]
