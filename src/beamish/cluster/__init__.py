"""beamish.cluster: nodes that form a cluster over NATS or Redis.

Pids of other nodes work as local ones do: ``send``, ``request`` and ``GenServer.call``,
``link``, ``monitor`` and ``exit`` reach them, with ``noconnection`` when their node goes
down; ``global_names`` and ``pg`` name processes across the cluster; ``Singleton`` runs a
server once per cluster; PubSub broadcasts reach every node. See docs/guides/cluster.md.
"""

from beamish._runtime.records import message, register_wire_callable, register_wire_type, remote
from beamish.cluster import global_names, pg
from beamish.cluster._codec import Codec, RemoteError, WireError
from beamish.cluster._connect import (
    DEFAULT_TICK_TIME,
    ClusterConfigError,
    connect,
    secret_from_env,
)
from beamish.cluster._engine import transport_for
from beamish.cluster._local import LocalHub, LocalTransport
from beamish.cluster._node import ClusterNode
from beamish.cluster._singleton import Singleton
from beamish.cluster._sync import DEFAULT_SYNC_TIMEOUT, sync_nodes
from beamish.cluster._transport import (
    FrameTooLarge,
    Subscription,
    Transport,
    TransportBusy,
    TransportError,
)

__all__ = [
    "DEFAULT_SYNC_TIMEOUT",
    "DEFAULT_TICK_TIME",
    "ClusterConfigError",
    "ClusterNode",
    "Codec",
    "FrameTooLarge",
    "LocalHub",
    "LocalTransport",
    "RemoteError",
    "Singleton",
    "Subscription",
    "Transport",
    "TransportBusy",
    "TransportError",
    "WireError",
    "connect",
    "global_names",
    "message",
    "pg",
    "register_wire_callable",
    "register_wire_type",
    "remote",
    "secret_from_env",
    "sync_nodes",
    "transport_for",
]
