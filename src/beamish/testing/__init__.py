"""Testing helpers for code built on beamish.

The pytest plugin (installed with beamish, enabled automatically) runs every ``async def``
test inside a fresh runtime, as a process, stops what it started with ``start_supervised``,
and fails a test that leaves processes or asyncio tasks behind. The helpers:

- ``assert_receive``/``refute_receive`` (and ``assert_received``/``refute_received``, which
  do not wait): ExUnit's mailbox assertions, with the mailbox shown on failure;
- ``start_supervised``/``stop_supervised``: servers that live as long as the test;
- ``VirtualClock``: time that moves when the test says (the ``virtual_clock`` fixture);
- ``wait_until_idle``: wait until every process has handled what was sent to it;
- ``capture_events``: the telemetry events a block caused, as a list;
- channel helpers (``channel_socket``, ``connect``, ``join``, ``subscribe_and_join``,
  ``push``, ``leave``, ``close``, ``assert_push``, ``assert_reply``, ``assert_broadcast``
  and their ``refute_`` twins): Phoenix.ChannelTest, in-process, no network;
- ``ASGIClient``: HTTP and WebSocket requests to an ASGI app (an endpoint), in-process,
  with its lifespan.

The web helpers (the channel helpers and ``ASGIClient``) need the web extra
(``pip install 'beamish[web]'``); without it, the rest works and the pytest plugin loads.

See ``docs/guides/testing.md``.
"""

from beamish._public import publish
from beamish.testing._clock import VirtualClock, VirtualTimer
from beamish.testing._driver_suite import DriverSuite
from beamish.testing._idle import wait_until_idle
from beamish.testing._leftovers import LeftoverError, check_leftovers
from beamish.testing._receive import (
    assert_receive,
    assert_received,
    refute_receive,
    refute_received,
)
from beamish.testing._supervised import start_supervised, stop_supervised, supervised_scope
from beamish.testing._telemetry import Captured, EventCapture, capture_events
from beamish.testing._two_nodes import Bridge, pubsub_on, second_node

_WEB = (
    "ASGIClient", "JoinError", "WebSocketDisconnected", "WebSocketRejected", "WebSocketSession",
    "assert_broadcast", "assert_push", "assert_reply", "broadcast_from", "channel_socket",
    "close", "connect", "join", "leave", "push", "refute_broadcast", "refute_push",
    "refute_reply", "subscribe_and_join",
)
_missing: ModuleNotFoundError | None = None
try:  # the web helpers need the web extra
    from beamish.testing._asgi_client import (
        ASGIClient,
        WebSocketDisconnected,
        WebSocketRejected,
        WebSocketSession,
    )
    from beamish.testing._channel_case import (
        JoinError,
        assert_broadcast,
        assert_push,
        assert_reply,
        broadcast_from,
        channel_socket,
        close,
        connect,
        join,
        leave,
        push,
        refute_broadcast,
        refute_push,
        refute_reply,
        subscribe_and_join,
    )
except ModuleNotFoundError as exc:  # installed without the web extra
    if (exc.name or "beamish").partition(".")[0] == "beamish":
        raise
    _missing = exc

_CLUSTER = ("LocalCluster", "LocalNode", "TransportSuite", "local_cluster")

_missing_cluster: ModuleNotFoundError | None = None
try:  # the cluster helpers need the cluster extra
    from beamish.testing._cluster import LocalCluster, LocalNode, local_cluster
    from beamish.testing._transport_suite import TransportSuite
except ModuleNotFoundError as exc:  # installed without the cluster extra
    if (exc.name or "beamish").partition(".")[0] == "beamish":
        raise
    _missing_cluster = exc


__all__ = [
    "ASGIClient",
    "Bridge",
    "Captured",
    "DriverSuite",
    "EventCapture",
    "JoinError",
    "LeftoverError",
    "LocalCluster",
    "LocalNode",
    "TransportSuite",
    "VirtualClock",
    "VirtualTimer",
    "WebSocketDisconnected",
    "WebSocketRejected",
    "WebSocketSession",
    "assert_broadcast",
    "assert_push",
    "assert_receive",
    "assert_received",
    "assert_reply",
    "broadcast_from",
    "capture_events",
    "channel_socket",
    "check_leftovers",
    "close",
    "connect",
    "join",
    "leave",
    "local_cluster",
    "pubsub_on",
    "push",
    "refute_broadcast",
    "refute_push",
    "refute_receive",
    "refute_received",
    "refute_reply",
    "second_node",
    "start_supervised",
    "stop_supervised",
    "subscribe_and_join",
    "supervised_scope",
    "wait_until_idle",
]


if _missing is not None:
    __all__ = [name for name in __all__ if name not in _WEB]
if _missing_cluster is not None:
    __all__ = [name for name in __all__ if name not in _CLUSTER]

publish(globals(), __all__, __name__)
del publish


def __getattr__(name: str) -> object:
    if name in _WEB and _missing is not None:
        raise ModuleNotFoundError(
            f"beamish.testing.{name} needs beamish's web extra ({_missing.name} is not "
            "installed): pip install 'beamish[web]'"
        )
    raise AttributeError(f"module 'beamish.testing' has no attribute {name!r}")
