"""``connect``: join this node to a cluster."""

from __future__ import annotations

import os
from typing import Any

from beamish._runtime import context as _context
from beamish.cluster._engine import transport_for
from beamish.cluster._node import ClusterNode, subject_prefix
from beamish.cluster._transport import Transport

__all__ = ["DEFAULT_TICK_TIME", "ClusterConfigError", "connect", "secret_from_env"]

DEFAULT_TICK_TIME = 60.0  # seconds, as the BEAM's net_ticktime
SECRET_ENV = "BEAMISH_COOKIE"


class ClusterConfigError(ValueError):
    """A cluster setting that cannot work; the message says which and how to fix it."""


def secret_from_env() -> bytes | None:
    value = os.environ.get(SECRET_ENV)
    return value.encode() if value else None


async def connect(
    url: str | Transport, *, cluster: str = "beamish", secret: bytes | str | None = None,
    tick_time: float = DEFAULT_TICK_TIME, max_pending: int = 10_000, runtime: Any = None,
) -> ClusterNode:
    """Join the current node to the cluster ``cluster`` on the engine at ``url``.

    ``url`` is ``nats://host:4222``, ``redis://host:6379`` (``rediss://`` with TLS) or
    ``local://NAME`` (nodes in one interpreter, for tests); or a ``Transport``. Every node of
    a cluster shares ``secret`` (default: the ``BEAMISH_COOKIE`` environment variable, at
    least 16 bytes); there is no default secret, and a node without it cannot join. A node
    is declared down after ``tick_time`` seconds without a word from it (default 60, as the
    BEAM's ``net_ticktime``). The node needs a name (``Runtime(node="chat@host")``, or
    ``beamish run --name``). Returns the started ``ClusterNode``; ``await node.stop()``
    leaves the cluster.
    """
    rt = runtime if runtime is not None else _context.current_runtime()
    if rt.node_id.name == "nonode@nohost":
        raise ClusterConfigError(
            "this node has no name: start it with a name to join a cluster "
            "(beamish run --name chat@host, or Runtime(node='chat@host'))"
        )
    if isinstance(secret, str):
        secret = secret.encode()
    if secret is None:
        secret = secret_from_env()
    if not secret:
        raise ClusterConfigError(
            f"a cluster needs a shared secret and none was given: set {SECRET_ENV} (at least "
            "16 bytes, the same on every node) or pass secret="
        )
    if len(secret) < 16:
        raise ClusterConfigError(f"the cluster secret must be at least 16 bytes, got {len(secret)}")
    try:
        subject_prefix(cluster)
    except ValueError as exc:
        raise ClusterConfigError(str(exc)) from None
    if isinstance(tick_time, bool) or not isinstance(tick_time, int | float) or tick_time <= 0:
        raise ClusterConfigError(f"tick_time must be a number of seconds > 0, got {tick_time!r}")
    transport = url if isinstance(url, Transport) else transport_for(url)
    node = ClusterNode(
        rt, transport, secret=secret, cluster=cluster, tick_time=float(tick_time),
        max_pending=max_pending,
    )
    await node.start()
    return node
