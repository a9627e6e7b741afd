"""Presence, by the reference behaviours (OTP-SEMANTICS section 14)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

import beamish
from beamish import ANY, Ok, Pid, Runtime, StartError, Supervisor, receive, send, spawn
from beamish.pubsub import PubSub, TrackerError
from beamish.testing import assert_receive, refute_receive, start_supervised
from beamish.testing._two_nodes import pubsub_on, second_node
from beamish.web import Broadcast, Presence


class ChatPresence(Presence, pubsub="ps"):
    pass


@dataclass
class FakeSocket:
    """What a joined channel's socket offers Presence (the Channels module's stand-in)."""

    topic: str
    channel_pid: Pid
    pubsub: str = "ps"
    assigns: dict[str, Any] = field(default_factory=dict)
    joined: bool = True


async def idle():
    await receive()


async def start(presence: type[Presence] = ChatPresence, **options: Any) -> Pid:
    if beamish.whereis("ps") is None:
        await start_supervised((PubSub, {"name": "ps"}))
    return await start_supervised((presence, options), id=presence.tracker_name)


def diff(joins=None, leaves=None, topic="T"):
    return Broadcast(topic, "presence_diff", {"joins": joins or {}, "leaves": leaves or {}})


# -- the reference items ---------------------------------------------------------------------------


async def test_presence_diff_on_join_and_exit_178():
    await start()
    PubSub.subscribe("ps", "T")
    p = spawn(idle)
    ref = await ChatPresence.track(p, "T", "u1", {"name": "u1"})
    metas = {"u1": {"metas": [{"name": "u1", "phx_ref": ref}]}}
    assert await assert_receive(Broadcast) == diff(joins=metas)
    beamish.exit(p, "kill")
    assert await assert_receive(Broadcast) == diff(leaves=metas)  # the same phx_ref
    assert ChatPresence.list("T") == {}


async def test_untrack_179():
    await start()
    me = beamish.self()
    PubSub.subscribe("ps", "T")
    await ChatPresence.track(me, "T", "u1", {})
    await ChatPresence.track(me, "T", "u2", {})
    await assert_receive(Broadcast)
    await assert_receive(Broadcast)

    assert await ChatPresence.untrack(me, "T", "u1") is None
    message = await assert_receive(Broadcast)
    assert list(message.payload["leaves"]) == ["u1"] and message.payload["joins"] == {}
    assert list(ChatPresence.list("T")) == ["u2"]

    assert await ChatPresence.untrack(me, "T", "never tracked") is None  # a no-op
    await refute_receive(Broadcast, timeout=0.01)


async def test_track_and_untrack_with_a_socket_179():
    await start()
    PubSub.subscribe("ps", "room:1")
    channel = beamish.spawn_link(idle)
    socket = FakeSocket("room:1", channel)
    ref = await ChatPresence.track(socket, "ada", {"device": "phone"})
    metas = {"ada": {"metas": [{"device": "phone", "phx_ref": ref}]}}
    assert await assert_receive(Broadcast) == diff(joins=metas, topic="room:1")
    assert ChatPresence.list(socket) == ChatPresence.list("room:1") == metas
    assert [pid for pid, _ in _tracker_entries("room:1", "ada")] == [channel]
    await ChatPresence.untrack(socket, "ada")
    assert await assert_receive(Broadcast) == diff(leaves=metas, topic="room:1")
    assert ChatPresence.list(socket) == {}


def _tracker_entries(topic, key):
    from beamish.pubsub import Tracker

    return Tracker.get_by_key(ChatPresence.tracker_name, topic, key)


async def test_get_by_key_181():
    await start()
    me = beamish.self()
    p2, p3 = beamish.spawn_link(idle), beamish.spawn_link(idle)
    ref1 = await ChatPresence.track(me, "T", 1, {"name": "me"})
    ref2 = await ChatPresence.track(p2, "T", 1, {"name": "p2"})
    await ChatPresence.track(p3, "T", 2, {"name": "p3"})
    assert ChatPresence.get_by_key("T", 1) == {
        "metas": [{"name": "me", "phx_ref": ref1}, {"name": "p2", "phx_ref": ref2}]
    }
    assert ChatPresence.get_by_key("T", "another_key") == {}
    assert ChatPresence.get_by_key("another_topic", 2) == {}
    assert list(ChatPresence.list("T")) == ["1", "2"]  # keys, as strings, for the client


async def test_duplicate_tracking_182():
    await start()
    me = beamish.self()
    await ChatPresence.track(me, "T", "u1", {})
    with pytest.raises(TrackerError) as refused:
        await ChatPresence.track(me, "T", "u1", {})
    assert refused.value.reason == ("already_tracked", me, "T", "u1")
    await ChatPresence.track(me, "another topic", "u1", {})
    await ChatPresence.track(me, "T", "another key", {})


class Extra(Presence, pubsub="ps"):
    def fetch(self, topic, presences):
        return {key: {**value, "extra": "extra"} for key, value in presences.items()}


async def test_fetch_extends_list_and_diffs_184():
    await start(Extra)
    PubSub.subscribe("ps", "T")
    p = spawn(idle)
    ref = await Extra.track(p, "T", "u1", {"name": "u1"})
    fetched = {"u1": {"metas": [{"name": "u1", "phx_ref": ref}], "extra": "extra"}}
    assert Extra.list("T") == fetched
    assert Extra.get_by_key("T", "u1") == fetched["u1"]
    assert await assert_receive(Broadcast) == diff(joins=fetched)
    beamish.exit(p, "kill")
    assert await assert_receive(Broadcast) == diff(leaves=fetched)
    # the default fetch passes the data through
    assert ChatPresence().fetch("T", {"k": {"metas": []}}) == {"k": {"metas": []}}


def custom_dispatcher(entries, from_pid, message):
    for pid, _ in entries:
        send(pid, ("custom_dispatcher", message))


class Dispatched(Presence, pubsub="ps", dispatcher=custom_dispatcher):
    pass


async def test_a_custom_dispatcher_delivers_the_diffs_184():
    await start(Dispatched)
    PubSub.subscribe("ps", "T")
    p = spawn(idle)
    ref = await Dispatched.track(p, "T", "u1", {})
    metas = {"u1": {"metas": [{"phx_ref": ref}]}}
    assert await assert_receive(("custom_dispatcher", ANY)) == (
        "custom_dispatcher", diff(joins=metas)
    )
    beamish.exit(p, "kill")
    assert await assert_receive(("custom_dispatcher", ANY)) == (
        "custom_dispatcher", diff(leaves=metas)
    )


class Rebroadcast(Presence, pubsub="ps"):
    def init(self, options):
        return Ok({"calls": 0})

    def handle_metas(self, topic, diff, presences, state):
        PubSub.local_broadcast("ps", topic, ("handle_metas", diff, presences, state["calls"]))
        return Ok({"calls": state["calls"] + 1})


async def metas_event():
    _, diff, presences, calls = await assert_receive(("handle_metas", ANY, ANY, ANY))
    return diff, presences, calls


async def test_handle_metas_gets_each_diff_and_the_presences_185():
    await start(Rebroadcast)
    PubSub.subscribe("ps", "T")
    p1, p2, p3 = (beamish.spawn_link(idle) for _ in range(3))
    r1 = await Rebroadcast.track(p1, "T", "u1", {"n": 1})
    r2 = await Rebroadcast.track(p2, "T", "u2", {"n": 2})
    r3 = await Rebroadcast.track(p3, "T", "u2", {"n": 3})  # a second presence under u2
    m1, m2, m3 = ({"n": n, "phx_ref": r} for n, r in ((1, r1), (2, r2), (3, r3)))

    assert await metas_event() == ({"joins": {"u1": {"metas": [m1]}}, "leaves": {}},
                                   {"u1": [m1]}, 0)
    assert await metas_event() == ({"joins": {"u2": {"metas": [m2]}}, "leaves": {}},
                                   {"u1": [m1], "u2": [m2]}, 1)
    assert (await metas_event())[1:] == ({"u1": [m1], "u2": [m2, m3]}, 2)

    await Rebroadcast.untrack(p2, "T", "u2")  # the other meta under u2 remains
    diff_, presences, _ = await metas_event()
    assert diff_ == {"joins": {}, "leaves": {"u2": {"metas": [m2]}}}
    assert presences == {"u1": [m1], "u2": [m3]}
    await Rebroadcast.untrack(p1, "T", "u1")  # u1's last meta: the key goes
    assert (await metas_event())[1] == {"u2": [m3]}
    await Rebroadcast.untrack(p3, "T", "u2")  # the last one: the topic's map is empty
    assert (await metas_event())[1] == {}


class MetasWithoutInit(Presence, pubsub="ps"):
    def handle_metas(self, topic, diff, presences, state):
        return Ok(state)


async def test_handle_metas_without_init_fails_at_start_185():
    await start_supervised((PubSub, {"name": "ps"}))
    with pytest.raises(TypeError, match=r"missing MetasWithoutInit\.init\(options\) callback "
                                        "for client state"):
        await MetasWithoutInit.start_link()
    with pytest.raises(TypeError, match="missing"):
        MetasWithoutInit.child_spec()


class AsyncMetas(Presence, pubsub="ps"):
    async def init(self, options):
        return Ok(options["pubsub"])

    async def handle_metas(self, topic, diff, presences, pubsub):
        await beamish.sleep(0)
        PubSub.local_broadcast(pubsub, topic, ("async handle_metas", presences))
        return ("ok", pubsub)


async def test_client_callbacks_may_be_async():
    await start(AsyncMetas)
    PubSub.subscribe("ps", "T")
    ref = await AsyncMetas.track(beamish.self(), "T", "u1", {})
    assert await assert_receive(("async handle_metas", ANY)) == (
        "async handle_metas", {"u1": [{"phx_ref": ref}]}
    )


# -- the rest of the API ---------------------------------------------------------------------------


async def test_update_sends_the_old_meta_as_leave_and_the_new_as_join():
    await start()
    PubSub.subscribe("ps", "room")
    socket = FakeSocket("room", beamish.spawn_link(idle))
    first = await ChatPresence.track(socket, "ada", {"status": "online"})
    await assert_receive(Broadcast)
    second = await ChatPresence.update(socket, "ada", {"status": "away"})
    assert await assert_receive(Broadcast) == diff(
        joins={"ada": {"metas": [{"status": "away", "phx_ref": second,
                                  "phx_ref_prev": first}]}},
        leaves={"ada": {"metas": [{"status": "online", "phx_ref": first}]}},
        topic="room",
    )
    third = await ChatPresence.update(
        socket.channel_pid, "room", "ada", lambda meta: {**meta, "status": "busy"}
    )
    assert ChatPresence.list(socket)["ada"]["metas"][0]["phx_ref"] == third
    assert ChatPresence.list(socket)["ada"]["metas"][0]["status"] == "busy"


async def test_a_supervision_tree_and_its_processes():
    sup = await Supervisor.start_link(
        [(PubSub, {"name": "ps"}), (ChatPresence, {"pool_size": 2})], strategy="rest_for_one"
    )
    name = ChatPresence.tracker_name
    assert name == "tests.web.test_presence.ChatPresence"
    for process in (name, f"{name}.Supervisor", f"{name}.Broadcaster", f"{name}.Shard0",
                    f"{name}.Shard1"):
        assert beamish.whereis(process) is not None, process
    PubSub.subscribe("ps", "T")
    for topic in ("T", "room:1", "room:2", "room:3"):
        await ChatPresence.track(beamish.self(), topic, "u1", {"in": topic})
        assert ChatPresence.list(topic)["u1"]["metas"][0]["in"] == topic
    assert (await assert_receive(Broadcast)).topic == "T"
    await Supervisor.stop(sup)


async def test_options_and_arguments_are_checked():
    with pytest.raises(TypeError, match=r"unknown presence option\(s\) 'pubsub_server'"):

        class Typo(Presence, pubsub_server="ps"):
            pass

    class NoPubSub(Presence):
        pass

    with pytest.raises(TypeError, match="needs pubsub="):
        NoPubSub.child_spec()
    with pytest.raises(TypeError, match="name goes on the class line"):
        ChatPresence.child_spec({"name": "other"})
    with pytest.raises(TypeError, match="must be a plain function"):

        class AsyncFetch(Presence, pubsub="ps"):
            async def fetch(self, topic, presences):
                return presences

    with pytest.raises(ValueError, match="pool_size"):
        ChatPresence.child_spec({"pool_size": 0})
    with pytest.raises(TypeError, match="dispatcher must be a function"):
        ChatPresence.child_spec({"dispatcher": "fastlane"})
    spec = ChatPresence.child_spec({"pool_size": 2})
    assert (spec.id, spec.type) == (ChatPresence.tracker_name, "supervisor")

    await start()
    me = beamish.self()
    with pytest.raises(TypeError, match=r"track\(socket, key, meta\) or .*track\(pid, topic"):
        await ChatPresence.track(me, "T", "u1")
    with pytest.raises(TypeError, match="neither a pid nor a channel's socket"):
        await ChatPresence.track("me", "T", "u1", {})
    with pytest.raises(TypeError, match="no channel process or topic yet"):
        await ChatPresence.track(FakeSocket("T", None, joined=False), "u1", {})
    with pytest.raises(TypeError, match=r"a topic .* or a joined channel.s socket"):
        ChatPresence.list(42)


async def test_a_presence_needs_its_pubsub():
    with pytest.raises(StartError):
        await ChatPresence.start_link()


# -- several nodes ---------------------------------------------------------------------------------


class NodePresence(Presence, pubsub="ps", broadcast_period=0.01):
    pass


async def test_each_node_pushes_every_diff_once_to_its_own_subscribers(runtime):
    nodes: dict[str, Runtime] = {"a": runtime}
    async with second_node(nodes) as b:
        seen_on_b: asyncio.Queue = asyncio.Queue()

        async def subscriber():
            PubSub.subscribe("ps", "room")
            while True:
                seen_on_b.put_nowait(await receive())

        async def start_b():  # not linked to this short-lived process
            await Supervisor.start([pubsub_on("b", nodes), NodePresence],
                                   strategy="rest_for_one")
            beamish.spawn(subscriber)

        await b.run(start_b)
        await start_supervised(pubsub_on("a", nodes))
        await start_supervised(NodePresence)

        p = spawn(idle)
        ref = await NodePresence.track(p, "room", "ada", {"on": "a"})
        metas = {"ada": {"metas": [{"on": "a", "phx_ref": ref}]}}
        assert await asyncio.wait_for(seen_on_b.get(), 5) == diff(joins=metas, topic="room")
        assert await b.run(NodePresence.list, "room") == metas
        beamish.exit(p, "kill")
        assert await asyncio.wait_for(seen_on_b.get(), 5) == diff(leaves=metas, topic="room")
        await asyncio.sleep(0.05)  # a second copy would have arrived by now
        assert seen_on_b.empty()
