"""Which transport a cluster URL names: ``nats://``, ``redis://`` / ``rediss://`` or
``ipc://DIRECTORY`` (siblings on one machine, no server) or ``local://NAME`` (an in-process
hub, for tests)."""

from __future__ import annotations

from typing import Any

from beamish.cluster._transport import Transport

__all__ = ["transport_for"]


def transport_for(url: str, **options: Any) -> Transport:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("nats", "tls"):
        from beamish.cluster._nats import NatsTransport

        return NatsTransport(url, **options)
    if scheme in ("redis", "rediss"):
        from beamish.cluster._redis import RedisTransport

        return RedisTransport(url, **options)
    if scheme == "ipc":
        from beamish.cluster._ipc import IpcTransport

        return IpcTransport(url, **options)
    if scheme == "local":
        from beamish.cluster._local import LocalTransport, hub

        return LocalTransport(hub(url.partition("://")[2] or "default"), **options)
    raise ValueError(
        f"unknown cluster engine in {url!r}: use nats://host:4222, redis://host:6379 (or "
        "rediss:// with TLS), ipc://DIRECTORY for nodes on one machine without a server, or "
        "local://NAME for nodes in one interpreter"
    )
