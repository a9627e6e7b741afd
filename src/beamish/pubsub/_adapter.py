"""The adapter protocol: how PubSub reaches the other nodes of a cluster.

A PubSub broadcast is delivered to local subscribers by the PubSub itself and handed to the
adapter for every other node. The contract is small on purpose, so that a cluster transport
(Redis, the cluster's own links) can implement it in a page:

- ``node_name()``: the name of this node, as other nodes address it;
- ``broadcast(topic, message, dispatcher, from_pid)``: deliver to the subscribers of
  ``topic`` on every *other* node (the local ones are already served), skipping
  ``from_pid``'s subscriptions if it is not None;
- ``direct_broadcast(node, topic, message, dispatcher, from_pid)``: on one node only.

``dispatcher`` travels with the message: it names how the receiving node fans it out
(``None`` for plain sends). An adapter must never block the publisher: it queues and
returns. ``LocalAdapter`` is the single-node adapter: there are no other nodes.
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._runtime.pid import Pid

__all__ = ["Adapter", "LocalAdapter"]


class Adapter(Protocol):
    def node_name(self) -> str: ...

    def broadcast(
        self, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None: ...

    def direct_broadcast(
        self, node: str, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None: ...


class LocalAdapter:
    """A single node: broadcasts reach local subscribers only."""

    __slots__ = ("_node",)

    def __init__(self, node: str) -> None:
        self._node = node

    def node_name(self) -> str:
        return self._node

    def broadcast(
        self, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None:
        return None

    def direct_broadcast(
        self, node: str, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None:
        return None  # another node: unknown on a single node, so nothing is delivered
