"""PubSub, by the reference behaviours (OTP-SEMANTICS section 12)."""

from __future__ import annotations

import pytest

import beamish
from beamish import Down, receive, send, spawn
from beamish.pubsub import PubSub
from beamish.testing import wait_until_idle


@pytest.fixture(params=[1, 8], ids=["1 partition", "8 partitions"])
def partitions(request):
    return request.param


async def subscriber(topic, report):
    PubSub.subscribe("ps", topic)
    send(report, "subscribed")
    while True:
        send(report, ("got", beamish.self(), await receive()))


async def test_broadcast_reaches_subscribers(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    PubSub.subscribe("ps", "t")
    PubSub.broadcast("ps", "t", ("hello", 1))
    assert await receive(timeout=1) == ("hello", 1)


async def test_topic_isolation_148(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    me = beamish.self()
    PubSub.subscribe("ps", "unknown")
    others = [beamish.spawn_link(subscriber, "T", me) for _ in range(11)]
    for _ in others:
        await receive("subscribed", timeout=1)
    PubSub.broadcast("ps", "T", "msg")
    got = [await receive(("got", beamish.ANY, "msg"), timeout=1) for _ in others]
    assert {g[1] for g in got} == set(others)
    assert await receive("msg", timeout=0.05, default=None) is None


async def test_broadcast_from_skips_the_sender_149(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    me = beamish.self()
    PubSub.subscribe("ps", "T")
    PubSub.broadcast_from("ps", me, "T", "ping")
    PubSub.local_broadcast_from("ps", me, "T", "ping")
    assert await receive(timeout=0.05, default=None) is None
    PubSub.local_broadcast("ps", "T", "ping")
    assert await receive(timeout=1) == "ping"


async def test_duplicate_subscriptions_151(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    PubSub.subscribe("ps", "T")
    PubSub.subscribe("ps", "T")
    PubSub.broadcast("ps", "T", "twice")
    assert [await receive(timeout=1), await receive(timeout=1)] == ["twice", "twice"]
    PubSub.unsubscribe("ps", "T")
    PubSub.broadcast("ps", "T", "after")
    assert await receive(timeout=0.05, default=None) is None


async def test_dead_subscribers_are_dropped_152(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    me = beamish.self()
    pid = spawn(subscriber, "T", me)
    await receive("subscribed", timeout=1)
    ref = beamish.monitor(pid)
    beamish.exit(pid, "kill")
    await receive(Down, timeout=1)
    assert PubSub.broadcast("ps", "T", "x") is None
    await wait_until_idle()  # the registry has taken the Down
    assert PubSub.subscribers("ps", "T") == []
    del ref


async def test_direct_broadcast_on_a_single_node_154(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    PubSub.subscribe("ps", "T")
    PubSub.direct_broadcast(PubSub.node_name("ps"), "ps", "T", "local")
    assert await receive(timeout=1) == "local"
    PubSub.direct_broadcast("unknown@node", "ps", "T", "nowhere")
    assert await receive(timeout=0.05, default=None) is None


async def test_custom_dispatcher_and_metadata():
    await PubSub.start_link("ps")
    PubSub.subscribe("ps", "T", {"tag": "a"})
    seen = []

    def dispatcher(entries, from_pid, message):
        for pid, meta in entries:
            seen.append(meta)
            send(pid, (meta["tag"], message))

    PubSub.broadcast("ps", "T", "m", dispatcher)
    assert await receive(timeout=1) == ("a", "m")
    assert seen == [{"tag": "a"}]


async def test_a_slow_subscriber_never_blocks_the_publisher():
    await PubSub.start_link("ps")
    me = beamish.self()

    async def sleepy():
        PubSub.subscribe("ps", "T")
        send(me, "ready")
        await beamish.sleep(10)

    beamish.spawn_link(sleepy)
    await receive("ready", timeout=1)
    for i in range(10_000):
        PubSub.broadcast("ps", "T", i)  # returns at once: the messages wait in its mailbox
    assert len(PubSub.subscribers("ps", "T")) == 1


async def test_mutable_broadcasts_are_isolated_per_subscriber():
    await PubSub.start_link("ps")
    me = beamish.self()

    async def mutator():
        PubSub.subscribe("ps", "T")
        send(me, "ready")
        msg = await receive()
        msg.append("changed")

    beamish.spawn_link(mutator)
    await receive("ready", timeout=1)
    PubSub.subscribe("ps", "T")
    PubSub.broadcast("ps", "T", ["original"])
    await wait_until_idle()  # the mutator has changed its copy
    assert await receive(list, timeout=1) == ["original"]


async def test_errors_and_supervision():
    with pytest.raises(TypeError, match="a PubSub topic is a str"):
        PubSub.subscribe("ps", 42)
    with pytest.raises(beamish.RegistryError, match="no PubSub named 'nope'"):
        PubSub.broadcast("nope", "T", "x")
    await beamish.Supervisor.start_link([(PubSub, {"name": "ps", "partitions": 2})])
    PubSub.subscribe("ps", "T")
    PubSub.broadcast("ps", "T", "supervised")
    assert await receive(timeout=1) == "supervised"
    with pytest.raises(TypeError, match="unknown PubSub option"):
        PubSub.child_spec({"name": "x", "pool": 3})


async def test_topics_counts_the_subscriptions_of_each_topic(partitions):
    await PubSub.start_link("ps", partitions=partitions)
    PubSub.subscribe("ps", "a")
    PubSub.subscribe("ps", "a")  # twice: two subscriptions
    PubSub.subscribe("ps", "b")
    assert PubSub.topics("ps") == {"a": 2, "b": 1}
    assert len(PubSub.topics("ps", limit=1)) == 1  # bounded: for introspection
    PubSub.unsubscribe("ps", "a")
    assert PubSub.topics("ps") == {"b": 1}
