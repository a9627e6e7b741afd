"""PubSub and the tracker (Presence's CRDT) across the nodes of a real cluster."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import ANY, Ok, Supervisor, receive, self, send
from beamish.cluster import WireError
from beamish.pubsub import PubSub, Tracker
from beamish.testing import assert_receive, local_cluster, refute_receive

pytestmark = pytest.mark.beamish(node="a@test")


async def subscriber(topic, report_to):
    """Subscribe to ``topic`` and pass on whatever arrives, tagged with this node's name."""
    PubSub.subscribe("ps", topic)
    send(report_to, ("subscribed", beamish.node()))
    while True:
        message = await receive()
        send(report_to, ("got", beamish.node(), message))


async def start_pubsub():
    await Supervisor.start([(PubSub, {"name": "ps"})])


async def broadcast_from_here(topic, message):
    PubSub.broadcast("ps", topic, message)


async def test_a_broadcast_reaches_the_subscribers_of_every_node():
    async with local_cluster("b@test", "c@test") as cluster:
        await beamish.testing.start_supervised((PubSub, {"name": "ps"}))
        for name in ("b@test", "c@test"):
            await cluster.node(name).run(start_pubsub)
            await cluster.node(name).spawn(subscriber, "room", self())
            await assert_receive(("subscribed", name))
        beamish.spawn(subscriber, "room", self())
        await assert_receive(("subscribed", "a@test"))
        frames_before = cluster.hub.frames
        PubSub.broadcast("ps", "room", ("hello", (1, 2)))
        for name in ("a@test", "b@test", "c@test"):
            await assert_receive(("got", name, ("hello", (1, 2))))
        await refute_receive(("got", ANY, ANY), timeout=0.05)
        # one frame per other node, not one per subscriber
        assert cluster.hub.frames - frames_before <= 2 + 2  # (+ heartbeats that may fall in)
        # from another node
        await cluster.node("c@test").run(broadcast_from_here, "room", "from c")
        for name in ("a@test", "b@test", "c@test"):
            await assert_receive(("got", name, "from c"))
        # to one node
        PubSub.direct_broadcast("b@test", "ps", "room", "only b")
        await assert_receive(("got", "b@test", "only b"))
        await refute_receive(("got", ANY, "only b"), timeout=0.05)


async def test_a_dispatcher_crosses_nodes_by_name():
    def tagged(entries, from_pid, message):
        for pid, _ in entries:
            send(pid, ("tagged", message))

    async with local_cluster("b@test") as cluster:
        await beamish.testing.start_supervised((PubSub, {"name": "ps"}))
        b = cluster.node("b@test")
        await b.run(start_pubsub)
        await b.spawn(subscriber, "room", self())
        await assert_receive(("subscribed", "b@test"))
        with pytest.raises(WireError, match="register_dispatcher"):
            PubSub.broadcast("ps", "room", "x", tagged)
        PubSub.register_dispatcher("tests.tagged", tagged)
        PubSub.broadcast("ps", "room", "x", tagged)
        await assert_receive(("got", "b@test", ("tagged", "x")))


class Told(Tracker):
    """Tells the process given as its argument of every diff: ``(node, diffs)``."""

    def handle_diff(self, diffs, state):
        send(state, (beamish.node(), diffs))
        return Ok(state)


TRACKER = {"name": "t", "pubsub": "ps", "broadcast_period": 0.1, "down_period": 1.5}


async def start_tracker(report_to):
    return await Supervisor.start(
        [(PubSub, {"name": "ps"}), (Told, {**TRACKER, "arg": report_to})],
        strategy="rest_for_one",
    )


async def idle():
    await receive(lambda m: False)


async def track_on(key):
    pid = beamish.spawn(idle)
    await Tracker.track("t", pid, "room", key, {"node": beamish.node()})
    return pid


def keys_in(diffs):
    joins, leaves = diffs.get("room", ([], []))
    return sorted(k for k, _ in joins), sorted(k for k, _ in leaves)


async def wait_for_keys(node, expected, timeout=3.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = sorted(k for k, _ in await node.run(Tracker.list, "t", "room"))
        if found == expected:
            return
        assert loop.time() < deadline, f"{node.name} shows {found}, not {expected}"
        await asyncio.sleep(0.02)


async def test_presence_replicates_between_nodes_and_a_lost_node_leaves():
    async with local_cluster("b@test", tick_time=1.0) as cluster:
        b = cluster.node("b@test")
        sup = await start_tracker(self())
        await b.run(start_tracker, self())
        here = await track_on("on-a")
        await b.run(track_on, "on-b")
        # each node sees both users: the other's arrives as a diff
        await wait_for_keys(b, ["on-a", "on-b"])
        assert sorted(k for k, _ in Tracker.list("t", "room")) == ["on-a", "on-b"]
        # b goes silent: past down_period its users leave a's view, as Phoenix.Tracker does
        cluster.pause("b@test")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while sorted(k for k, _ in Tracker.list("t", "room")) != ["on-a"]:
            assert loop.time() < deadline, "b's presence never left"
            await asyncio.sleep(0.02)
        cluster.resume("b@test")
        # b comes back: its users come back (the tracker's replica is up again)
        while sorted(k for k, _ in Tracker.list("t", "room")) != ["on-a", "on-b"]:
            assert loop.time() < deadline + 15, "b's presence never came back"
            await asyncio.sleep(0.02)
        beamish.exit(here, "kill")
        await Supervisor.stop(sup)
