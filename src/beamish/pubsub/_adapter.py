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
returns. ``LocalAdapter`` is the default: this node, and its cluster's nodes when it is in
one. Dispatchers cross nodes by name (``PubSub.register_dispatcher``).
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._runtime.pid import Pid

__all__ = ["REMOTE", "Adapter", "LocalAdapter"]


class Adapter(Protocol):
    def node_name(self) -> str: ...

    def broadcast(
        self, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None: ...

    def direct_broadcast(
        self, node: str, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None: ...


REMOTE = "beamish.pubsub.remote"
"""The owned table a cluster makes when the node joins one: its data is a function
``(node | None, pubsub, topic, message, dispatcher, from_pid)`` that hands a broadcast to every
other node (``node=None``) or to one."""


class LocalAdapter:
    """The default adapter: this node alone, and every node of its cluster once it is in one
    (``beamish.cluster.connect``), as Phoenix.PubSub's default adapter spans the BEAM's
    cluster. A broadcast then costs one message per other node, never one per subscriber."""

    __slots__ = ("_node", "_pubsub", "_tables")

    def __init__(self, node: str, pubsub: str | None = None,
                 tables: dict[Any, Any] | None = None) -> None:
        self._node = node
        self._pubsub = pubsub
        self._tables = tables if tables is not None else {}  # the runtime's owned tables

    def node_name(self) -> str:
        return self._node

    def broadcast(
        self, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None:
        remote = self._tables.get(REMOTE)
        if remote is not None:
            remote.data(None, self._pubsub, topic, message, dispatcher, from_pid)

    def direct_broadcast(
        self, node: str, topic: str, message: Any, dispatcher: Any, from_pid: Pid | None
    ) -> None:
        remote = self._tables.get(REMOTE)
        if remote is not None:
            remote.data(node, self._pubsub, topic, message, dispatcher, from_pid)
