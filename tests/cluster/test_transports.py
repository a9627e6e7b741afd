"""Every transport passes the shared conformance suite (``beamish.testing.TransportSuite``):
the in-process one, NATS (127.0.0.1:4222) and Redis (127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import socket
import tempfile

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


class TestIpcTransport(TransportSuite):
    """Siblings on one machine: ZeroMQ over ipc:// sockets in one directory, no server."""

    directory = tempfile.mkdtemp(prefix="beamish-ipc-test-")

    async def make_transport(self):
        return transport_for(f"ipc://{self.directory}")


async def test_an_unknown_engine_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"nats://host:4222, redis://host:6379"):
        transport_for("amqp://127.0.0.1")


async def test_the_redis_transport_comes_back_when_its_connections_are_killed():
    """Both connections killed by the server (``CLIENT KILL``, as a Redis restart or a
    dropped link would): the transport says it is down, reconnects, subscribes again and
    carries frames, in order."""
    import redis.asyncio as redis

    require(reachable(6379), "Redis is not running at 127.0.0.1:6379 (`.ci/run` starts it)")
    transport = transport_for("redis://127.0.0.1:6379")
    admin = redis.Redis.from_url("redis://127.0.0.1:6379")
    await transport.connect()
    try:
        states: list[bool] = []
        transport.on_state(states.append)
        got: list[bytes] = []
        await transport.subscribe("beamish.test.redis-kill", got.append)
        transport.publish("beamish.test.redis-kill", b"before")
        await transport.flush()
        await wait_for(lambda: got == [b"before"])
        killed = 0
        for client in await admin.client_list():
            if client.get("name") == "beamish":
                killed += await admin.client_kill_filter(_id=client["id"])
        assert killed >= 2  # the publishing and the subscribed connection
        await wait_for(lambda: states[:1] == [False])
        sent = 0
        while not any(frame.startswith(b"after") for frame in got):
            transport.publish("beamish.test.redis-kill", b"after %d" % sent)
            sent += 1
            assert sent < 100, f"no frame came through after the kill: {got}"
            await asyncio.sleep(0.1)
        await transport.flush()
        await wait_for(lambda: got[-1] == b"after %d" % (sent - 1))
        assert transport.connected and states[-1] is True
        after = [int(frame.split()[1]) for frame in got[1:]]
        assert after == sorted(after) and after[-1] == sent - 1  # in order, to the last
    finally:
        await transport.close()
        await admin.aclose()


async def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_ipc_directory_must_be_closed_to_other_users(tmp_path):
    """Anyone who can open the sockets can read the frames: a directory open to the group or
    others is refused, naming its mode; a new one is made 0700."""
    from beamish.cluster import TransportError

    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(TransportError, match=r"closed to others.*drwxr-xr-x"):
        await transport_for(f"ipc://{open_dir}").connect()
    made = tmp_path / "made" / "here"
    transport = transport_for(f"ipc://{made}")
    await transport.connect()
    try:
        assert made.stat().st_mode & 0o777 == 0o700
        assert transport.path.stat().st_mode & 0o777 == 0o600
    finally:
        await transport.close()
    assert not transport.path.exists()  # a node that closes takes its socket with it


async def test_the_socket_of_a_killed_sibling_is_removed(tmp_path):
    """A node killed with -9 leaves its socket file: the next scan that finds its process gone
    removes it, so the directory does not fill with the dead."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"{dead.stdout.strip()}-deadbeef.sock"
    stale.touch()
    transport = transport_for(f"ipc://{tmp_path}")
    await transport.connect()
    try:
        assert not stale.exists()
        assert transport.path.exists()
    finally:
        await transport.close()
