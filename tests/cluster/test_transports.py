"""Every transport passes the shared conformance suite (``beamish.testing.TransportSuite``):
the in-process one, NATS (127.0.0.1:4222) and Redis (127.0.0.1:6379)."""

from __future__ import annotations

import socket

import pytest

from beamish.cluster import LocalHub, LocalTransport, transport_for
from beamish.testing import TransportSuite
from tests.integration.support import require


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TestLocalTransport(TransportSuite):
    hub = LocalHub()

    async def make_transport(self):
        return LocalTransport(self.hub)


class TestNatsTransport(TransportSuite):
    async def make_transport(self):
        require(reachable(4222), "NATS is not running at 127.0.0.1:4222 (`.ci/run` starts it)")
        return transport_for("nats://127.0.0.1:4222")


class TestRedisTransport(TransportSuite):
    async def make_transport(self):
        require(reachable(6379), "Redis is not running at 127.0.0.1:6379 (`.ci/run` starts it)")
        return transport_for("redis://127.0.0.1:6379")


async def test_an_unknown_engine_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"nats://host:4222, redis://host:6379"):
        transport_for("amqp://127.0.0.1")
