"""Nobody joins or injects without the secret; replays are dropped; a node speaks only for
itself; the secret never reaches a log."""

from __future__ import annotations

import asyncio
import logging

import msgpack
import pytest

import beamish
from beamish import ANY, Exit, Runtime, receive, self, send
from beamish.cluster import ClusterConfigError, LocalHub, LocalTransport, connect
from beamish.cluster._node import _EXIT, _SEND
from beamish.cluster._session import DATA
from beamish.testing import assert_receive, local_cluster, refute_receive
from beamish.testing._cluster import TEST_SECRET

pytestmark = pytest.mark.beamish(node="a@test")


async def echo():
    while True:
        match await receive():
            case (sender, value):
                send(sender, ("echoed", value))


async def test_a_node_with_another_secret_never_joins():
    hub = LocalHub()
    me = await connect(LocalTransport(hub), secret=TEST_SECRET, tick_time=0.4)
    other = Runtime(node="intruder@test")
    await asyncio.create_task(other.start())  # its own context: the test stays on its node
    intruder = await connect(
        LocalTransport(hub), secret=b"not the cluster's secret!!", tick_time=0.4, runtime=other
    )
    try:
        await asyncio.sleep(0.3)  # several announcements each way: none is believed
        assert me.nodes() == [] and intruder.nodes() == []
        assert me.dropped > 0  # its frames were seen and dropped unread
    finally:
        await intruder.stop()
        await other.stop()
        await me.stop()


async def test_frames_injected_without_the_secret_do_nothing():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        pid = await b.spawn(echo)
        member = cluster.node("a@test").member
        subject = b.member.subject("b@test")
        dropped = b.member.dropped
        forged = msgpack.packb([1, DATA, "a@test", 1, 2, 3, 4, 5, b"\x90"])
        for junk in (b"", b"\x00" * 16, b"x" * 16 + forged, forged):
            cluster.node("a@test").transport.publish(subject, junk)
        await asyncio.sleep(0.05)
        assert b.member.dropped >= dropped + 4
        send(pid, (self(), "still fine"))
        await assert_receive(("echoed", "still fine"))
        assert member.nodes() == ["b@test"]


async def test_a_recorded_frame_replayed_is_dropped():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        pid = await b.spawn(echo)
        captured: list[bytes] = []
        subject = b.member.subject("b@test")
        hub = cluster.hub
        deliver = hub.deliver

        def tap(sender, subj, frame):
            if subj == subject:
                captured.append(frame)
            deliver(sender, subj, frame)

        hub.deliver = tap
        send(pid, (self(), "once"))
        await assert_receive(("echoed", "once"))
        hub.deliver = deliver
        for frame in captured:  # replay everything sent to b
            cluster.node("a@test").transport.publish(subject, frame)
        await refute_receive(("echoed", "once"), timeout=0.1)


async def test_a_node_cannot_speak_for_another(caplog):
    caplog.set_level(logging.WARNING, logger="beamish.cluster")
    async with local_cluster("b@test", "c@test") as cluster:
        b, c = cluster.node("b@test"), cluster.node("c@test")
        victim = await c.spawn(echo)  # on c; b will try to kill it as if a's process
        beamish.trap_exit(True)
        beamish.link(victim)
        member_b = b.member
        # an EXIT naming a pid of a (not b) as the sender, sent by b to c
        forged_sender = cluster.translate(self(), cluster.node("a@test").runtime, b.runtime)
        op = member_b.codec.encode([_EXIT, forged_sender, victim.id, "kill", False])
        peer = member_b.sessions.current["c@test"]
        member_b._outboxes.setdefault(peer, []).append(op)
        member_b._flush()
        await refute_receive(Exit(victim, ANY), timeout=0.1)
        assert "not of the sending node" in caplog.text
        # and a real one from b's own process works
        good = member_b.codec.encode([_SEND, victim.id, (cluster.translate(
            self(), cluster.node("a@test").runtime, b.runtime), "from b")])
        member_b._outboxes.setdefault(peer, []).append(good)
        member_b._flush()
        await assert_receive(("echoed", "from b"))


@pytest.mark.parametrize(("secret", "says"), [
    (None, "set BEAMISH_COOKIE"), (b"short", "at least 16 bytes"),
])
async def test_connect_refuses_a_missing_or_short_secret(secret, says, monkeypatch):
    monkeypatch.delenv("BEAMISH_COOKIE", raising=False)
    with pytest.raises(ClusterConfigError, match=says):
        await connect("local://x", secret=secret)


async def test_an_unnamed_node_cannot_join():
    async with Runtime() as unnamed:
        with pytest.raises(ClusterConfigError, match="has no name"):
            await connect("local://x", secret=TEST_SECRET, runtime=unnamed)


async def test_the_secret_never_reaches_a_log_or_a_repr(caplog):
    caplog.set_level(logging.DEBUG)
    async with local_cluster("b@test", tick_time=0.3) as cluster:
        cluster.partition("a@test", "b@test")
        await asyncio.sleep(0.5)  # down, logged
        cluster.heal()
        text = caplog.text + repr(cluster.node("b@test").member.sealer)
        assert TEST_SECRET.decode() not in text
        assert TEST_SECRET not in repr(vars(cluster.node("b@test").member)).encode()
