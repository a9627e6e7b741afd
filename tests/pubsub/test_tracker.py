"""Tracker: the shard processes around the presence CRDT (OTP-SEMANTICS section 14)."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import (
    ANY,
    CallError,
    GenServer,
    Ok,
    Runtime,
    StartError,
    Supervisor,
    receive,
    send,
    spawn,
)
from beamish.pubsub import PubSub, Tracker, TrackerError
from beamish.pubsub._tracker import _pool
from beamish.pubsub._tracker_shard import _Heartbeat
from beamish.testing import (
    assert_receive,
    assert_received,
    refute_receive,
    start_supervised,
    stop_supervised,
    wait_until_idle,
)
from beamish.testing._two_nodes import pubsub_on, second_node


class Watched(Tracker):
    """Tells the process given as its argument of every diff: ``(label, diffs)``."""

    def handle_diff(self, diffs, state):
        pid, label = state
        send(pid, (label, diffs))
        return Ok(state)


class ANY_REF:
    """Equal to any phx_ref (a non-empty str)."""

    def __eq__(self, other):
        return isinstance(other, str) and len(other) > 0


async def idle():
    await receive()


async def start(name="t", label="t", **options):
    """Start a Watched tracker (and the PubSub "ps" it uses, the first time)."""
    options.setdefault("pubsub", "ps")
    if beamish.whereis("ps") is None:
        await start_supervised((PubSub, {"name": "ps"}))
    return await start_supervised(
        (Watched, {"name": name, "arg": (beamish.self(), label), **options}), id=name
    )


def keys(listing):
    return [key for key, _ in listing]


async def diff_from(label):
    """The next diff ``label``'s tracker reported, as {topic: (joined keys, left keys)}."""
    _, diffs = await assert_receive((label, ANY))
    return {topic: (keys(joins), keys(leaves)) for topic, (joins, leaves) in diffs.items()}


# -- one node --------------------------------------------------------------------------------------


async def test_track_list_get_by_key_untrack():
    await start()
    me, other = beamish.self(), spawn(idle)
    ref = await Tracker.track("t", me, "room", "u1", {"name": "ada"})
    await Tracker.track("t", other, "room", "u1", {"name": "ada, on her phone"})
    await Tracker.track("t", me, "room", "u2", {})
    await Tracker.track("t", me, "hall", "u1", {})

    assert Tracker.list("t", "room") == [
        ("u1", {"name": "ada", "phx_ref": ref}), ("u1", {"name": "ada, on her phone",
                                                         "phx_ref": ANY_REF()}),
        ("u2", {"phx_ref": ANY_REF()}),
    ]
    assert [pid for pid, _ in Tracker.get_by_key("t", "room", "u1")] == [me, other]
    assert Tracker.get_by_key("t", "room", "nobody") == [] and Tracker.list("t", "nil") == []

    await Tracker.untrack("t", me, "room", "u1")
    assert keys(Tracker.list("t", "room")) == ["u1", "u2"]
    await Tracker.untrack("t", me)  # everywhere
    assert keys(Tracker.list("t", "room")) == ["u1"] and Tracker.list("t", "hall") == []
    beamish.exit(other, "kill")


async def test_reads_copy_and_need_no_message():
    await start()
    me = beamish.self()
    await Tracker.track("t", me, "room", "u1", {"tags": ["a"]})
    [(_, meta)] = Tracker.list("t", "room")
    meta["tags"].append("changed")  # a copy: the tracker's state does not change
    await GenServer.suspend("t.Shard0")  # the shard takes no message now; reads still work
    assert Tracker.list("t", "room")[0][1]["tags"] == ["a"]
    assert Tracker.get_by_key("t", "room", "u1")[0][1]["tags"] == ["a"]
    await GenServer.resume("t.Shard0")


async def test_handle_diff_hears_joins_and_leaves_per_topic():
    await start()
    me = beamish.self()
    ref = await Tracker.track("t", me, "room", "u1", {"n": 1})
    assert await assert_receive(("t", ANY)) == (
        "t", {"room": ([("u1", {"n": 1, "phx_ref": ref})], [])}
    )
    await Tracker.untrack("t", me, "room", "u1")
    assert await assert_receive(("t", ANY)) == (
        "t", {"room": ([], [("u1", {"n": 1, "phx_ref": ref})])}
    )


async def test_a_pid_that_exits_leaves_all_its_presences():
    await start()
    pid = spawn(idle)
    await Tracker.track("t", pid, "room", "u1", {})
    await Tracker.track("t", pid, "hall", "u1", {})
    assert await diff_from("t") == {"room": (["u1"], [])}
    assert await diff_from("t") == {"hall": (["u1"], [])}
    beamish.exit(pid, "kill")
    _, diffs = await assert_receive(("t", ANY))
    assert sorted(diffs) == ["hall", "room"]
    assert all(joins == [] and keys(leaves) == ["u1"] for joins, leaves in diffs.values())
    assert Tracker.list("t", "room") == [] and Tracker.list("t", "hall") == []


async def test_duplicate_tracking_182():
    await start()
    pid = spawn(idle)
    await Tracker.track("t", pid, "T", "u1", {})
    with pytest.raises(TrackerError) as refused:
        await Tracker.track("t", pid, "T", "u1", {})
    assert refused.value.reason == ("already_tracked", pid, "T", "u1")
    assert "use update()" in str(refused.value)
    await Tracker.track("t", pid, "another topic", "u1", {})
    await Tracker.track("t", pid, "T", "another key", {})
    assert len(Tracker.list("t", "T")) == 2
    beamish.exit(pid, "kill")


async def test_untrack_what_is_not_tracked_is_a_noop_179():
    await start()
    me = beamish.self()
    assert await Tracker.untrack("t", me, "never", "tracked") is None
    assert await Tracker.untrack("t", me) is None
    await refute_receive(("t", ANY), timeout=0.01)


async def test_update_replaces_the_meta():
    await start()
    me = beamish.self()
    first = await Tracker.track("t", me, "room", "u1", {"status": "away"})
    second = await Tracker.update("t", me, "room", "u1", {"status": "online"})
    assert Tracker.list("t", "room") == [
        ("u1", {"status": "online", "phx_ref": second, "phx_ref_prev": first})
    ]
    third = await Tracker.update("t", me, "room", "u1", lambda meta: {**meta, "typing": True})
    [(_, meta)] = Tracker.list("t", "room")
    assert meta == {"status": "online", "typing": True, "phx_ref": third,
                    "phx_ref_prev": second}
    assert await diff_from("t") == {"room": (["u1"], [])}
    assert await assert_receive(("t", ANY)) == ("t", {"room": (
        [("u1", {"status": "online", "phx_ref": second, "phx_ref_prev": first})],
        [("u1", {"status": "away", "phx_ref": first})],
    )})

    with pytest.raises(TrackerError) as missing:
        await Tracker.update("t", me, "room", "nobody", {})
    assert missing.value.reason == "nopresence"

    def broken(meta):
        raise ValueError("bad update")

    with pytest.raises(ValueError, match="bad update"):  # raised here, the shard goes on
        await Tracker.update("t", me, "room", "u1", broken)
    with pytest.raises(TypeError, match="a presence meta is a dict"):
        await Tracker.update("t", me, "room", "u1", lambda meta: "not a dict")
    assert beamish.is_alive(beamish.whereis("t.Shard0"))


async def test_bad_arguments_are_refused_with_the_accepted_forms():
    await start()
    me = beamish.self()
    with pytest.raises(TypeError, match="a presence meta is a dict"):
        await Tracker.track("t", me, "room", "u1", ["not", "a", "dict"])
    with pytest.raises(TypeError, match="topic is a str"):
        await Tracker.track("t", me, ("room",), "u1", {})
    with pytest.raises(TypeError, match="must be hashable"):
        await Tracker.track("t", me, "room", ["u1"], {})
    with pytest.raises(TypeError, match="pid of the tracked process"):
        await Tracker.track("t", "me", "room", "u1", {})
    with pytest.raises(TypeError, match=r"\(tracker, pid, topic, key\)"):
        await Tracker.untrack("t", me, "room")
    with pytest.raises(TrackerError) as unknown:
        Tracker.list("nobody", "room")
    assert unknown.value.reason == ("unknown_tracker", "nobody")


async def test_options_are_checked_when_the_child_spec_is_made():
    with pytest.raises(TypeError, match=r"unknown tracker option.*'pubsub_server'"):
        Tracker.child_spec({"name": "t", "pubsub_server": "ps"})
    with pytest.raises(TypeError, match="needs pubsub="):
        Tracker.child_spec({"name": "t"})
    with pytest.raises(ValueError, match="down_period"):
        Tracker.child_spec({"name": "t", "pubsub": "ps", "broadcast_period": 1,
                            "max_silent_periods": 5, "down_period": 5})
    with pytest.raises(TypeError, match="unknown tracker option"):

        class Typo(Tracker, pool=2):
            pass

    spec = Watched.child_spec({"name": "t", "pubsub": "ps"})
    assert (spec.id, spec.type, spec.shutdown) == ("t", "supervisor", "infinity")


async def test_permdown_period_must_be_larger_than_down_period():
    """Phoenix.Tracker.Shard's "validates permdown_period": equal periods are refused."""
    base = {"name": "t", "pubsub": "ps", "broadcast_period": 1, "max_silent_periods": 5}
    with pytest.raises(ValueError, match=r"permdown_period .* must be longer than down_period"):
        Tracker.child_spec({**base, "down_period": 10, "permdown_period": 10})
    with pytest.raises(ValueError, match="permdown_period"):
        Tracker.child_spec({**base, "down_period": 10, "permdown_period": 9})
    spec = Tracker.child_spec({**base, "down_period": 10, "permdown_period": 10.5})
    assert spec.id == "t"


async def test_a_tracker_needs_its_pubsub():
    with pytest.raises(StartError):
        await Tracker.start_link(name="t", pubsub="not started")
    assert beamish.whereis("t") is None


async def test_class_line_options_and_a_supervision_tree():
    class Presences(Tracker, name="presences", pubsub="chat", pool_size=2):
        pass

    sup = await Supervisor.start_link(
        [(PubSub, {"name": "chat"}), Presences], strategy="rest_for_one"
    )
    shards = await Supervisor.which_children("presences")
    assert sorted(child.id for child in shards) == [("shard", 0), ("shard", 1)]
    await Tracker.track("presences", beamish.self(), "room", "u1", {})
    assert keys(Tracker.list("presences", "room")) == ["u1"]
    await Supervisor.stop(sup)


async def test_a_pool_spreads_topics_over_shards():
    await start(pool_size=4)
    me = beamish.self()
    topics = [f"room:{n}" for n in range(40)]
    for topic in topics:
        await Tracker.track("t", me, topic, "u1", {"topic": topic})
    for topic in topics:
        assert Tracker.list("t", topic) == [("u1", {"topic": topic, "phx_ref": ANY_REF()})]
    pool = _pool("t")
    per_shard = [len(state.topics()) for state in pool.states]
    assert sum(per_shard) == 40 and all(n > 0 for n in per_shard)
    for i in range(4):  # each shard runs the callback module with its own state
        assert await GenServer.get_state(f"t.Shard{i}") == (me, "t")
    await Tracker.untrack("t", me)  # everywhere: every shard
    assert all(Tracker.list("t", topic) == [] for topic in topics)


class AsyncCallbacks(Tracker):
    async def init(self, pid):
        await beamish.sleep(0)
        return ("ok", pid)  # Elixir's tuples work too

    async def handle_diff(self, diffs, pid):
        await beamish.sleep(0)
        send(pid, ("diff", diffs))
        return Ok(pid)

    def handle_info(self, message, pid):
        send(pid, ("info", message))
        return Ok(pid)


async def test_callbacks_may_be_async_and_hear_other_messages():
    await start_supervised((PubSub, {"name": "ps"}))
    me = beamish.self()
    await start_supervised((AsyncCallbacks, {"name": "t", "pubsub": "ps", "arg": me}))
    ref = await Tracker.track("t", me, "room", "u1", {})
    # handle_diff ran before track returned
    assert await assert_received(("diff", ANY)) == (
        "diff", {"room": ([("u1", {"phx_ref": ref})], [])}
    )
    send(beamish.whereis("t.Shard0"), "hello")
    assert await assert_receive(("info", ANY)) == ("info", "hello")


class BadReturn(Tracker):
    def handle_diff(self, diffs, state):
        return state  # not Ok(state)


async def test_a_bad_return_from_handle_diff_crashes_the_shard():
    await start_supervised((PubSub, {"name": "ps"}))
    await start_supervised((BadReturn, {"name": "t", "pubsub": "ps"}))
    shard = beamish.whereis("t.Shard0")
    ref = beamish.monitor(shard)
    with pytest.raises(CallError) as failed:  # the caller learns of it
        await Tracker.track("t", beamish.self(), "room", "u1", {})
    assert failed.value.why == ("bad_return_value", None)
    assert await assert_receive(beamish.Down) == beamish.Down(
        ref, shard, ("bad_return_value", None)
    )


async def test_a_crashed_shard_restarts_empty():
    await start()
    pid = spawn(idle)
    await Tracker.track("t", pid, "room", "u1", {})
    shard = beamish.whereis("t.Shard0")
    beamish.exit(shard, "kill")
    await wait_until_idle()
    assert beamish.whereis("t.Shard0") not in (None, shard)
    assert Tracker.list("t", "room") == []  # the state lived in the shard
    beamish.exit(pid, "kill")


# -- several replicas sharing one PubSub -----------------------------------------------------------

FAST = {"broadcast_period": 1, "max_silent_periods": 2, "permdown_period": 10, "scope": "p"}


async def two_replicas():
    await start("ta", "a", replica="a", **FAST)
    await start("tb", "b", replica="b", **FAST)
    await wait_until_idle()


async def test_replicas_exchange_changes_on_heartbeats(virtual_clock):
    await two_replicas()
    pid = spawn(idle)
    ref = await Tracker.track("ta", pid, "room", "u1", {"n": 1})
    assert await diff_from("a") == {"room": (["u1"], [])}
    assert Tracker.list("tb", "room") == []  # not before the next heartbeat
    await virtual_clock.advance(1)
    assert await assert_receive(("b", ANY)) == ("b", {"room": ([("u1", {"n": 1, "phx_ref": ref})],
                                                               [])})
    assert Tracker.list("tb", "room") == Tracker.list("ta", "room")
    assert [p for p, _ in Tracker.get_by_key("tb", "room", "u1")] == [pid]

    beamish.exit(pid, "kill")
    assert await diff_from("a") == {"room": ([], ["u1"])}
    await virtual_clock.advance(1)
    assert await assert_receive(("b", ANY)) == ("b", {"room": ([], [("u1", {"n": 1,
                                                                             "phx_ref": ref})])})
    assert Tracker.list("tb", "room") == []


async def test_a_new_replica_gets_the_others_state_at_once(virtual_clock):
    await start("ta", "a", replica="a", **FAST)
    me = beamish.self()
    for n in range(3):
        await Tracker.track("ta", me, "room", f"u{n}", {})
    await start("tb", "b", replica="b", **FAST)
    await wait_until_idle()  # no time passed: b announced itself, a pushed its state
    assert keys(Tracker.list("tb", "room")) == ["u0", "u1", "u2"]
    [(a, up)] = Tracker.replicas("tb").items()
    [(b, also_up)] = Tracker.replicas("ta").items()
    assert a.startswith("a#") and b.startswith("b#") and up == also_up == "up"


async def test_a_silent_replica_is_down_then_up_again(virtual_clock):
    await two_replicas()
    me = beamish.self()
    await Tracker.track("ta", me, "room", "u1", {})
    await virtual_clock.advance(1)
    assert await diff_from("b") == {"room": (["u1"], [])}

    await GenServer.suspend("ta.Shard0")  # as if a's node were cut off
    await virtual_clock.advance(4)  # down_period: 2 x broadcast_period x max_silent_periods
    assert await diff_from("b") == {"room": ([], ["u1"])}
    assert Tracker.list("tb", "room") == [] and list(Tracker.replicas("tb").values()) == ["down"]

    await GenServer.resume("ta.Shard0")  # back: its entries come back, without a transfer
    await virtual_clock.advance(1)
    assert await diff_from("b") == {"room": (["u1"], [])}
    assert keys(Tracker.list("tb", "room")) == ["u1"]


async def test_a_replica_down_too_long_is_forgotten_then_caught_up(virtual_clock):
    await two_replicas()
    me = beamish.self()
    await Tracker.track("ta", me, "room", "u1", {})
    await virtual_clock.advance(1)
    await GenServer.suspend("ta.Shard0")
    await virtual_clock.advance(10)  # permdown_period
    await wait_until_idle()
    assert Tracker.replicas("tb") == {}

    await GenServer.resume("ta.Shard0")
    await Tracker.track("ta", me, "room", "u2", {})  # its next delta does not start at 1:
    await virtual_clock.advance(1)  # b sees a gap and asks for a's whole state
    await wait_until_idle()
    assert sorted(keys(Tracker.list("tb", "room"))) == ["u1", "u2"]


async def test_a_stopped_replica_says_goodbye(virtual_clock):
    await two_replicas()
    await Tracker.track("ta", beamish.spawn_link(idle), "room", "u1", {})
    await virtual_clock.advance(1)
    assert await diff_from("b") == {"room": (["u1"], [])}
    await stop_supervised("ta")
    assert await diff_from("b") == {"room": ([], ["u1"])}
    assert Tracker.replicas("tb") == {}


async def test_a_restarted_replica_replaces_its_old_self(virtual_clock):
    await two_replicas()
    await Tracker.track("ta", beamish.spawn_link(idle), "room", "u1", {})
    await virtual_clock.advance(1)
    assert await diff_from("b") == {"room": (["u1"], [])}
    [old] = Tracker.replicas("tb")
    beamish.exit(beamish.whereis("ta.Shard0"), "kill")  # no goodbye
    # restarted at once, with a new version: its announcement replaces the old one
    assert await diff_from("b") == {"room": ([], ["u1"])}
    [new] = Tracker.replicas("tb")
    assert new != old and new.startswith("a#")


# -- two runtimes: the adapter path ----------------------------------------------------------------


class Queued(Tracker):
    def handle_diff(self, diffs, queue):
        queue.put_nowait(diffs)
        return Ok(queue)


async def test_two_nodes_replicate_through_the_pubsub_adapter(runtime):
    nodes: dict[str, Runtime] = {"a": runtime}
    options = {"name": "t", "pubsub": "ps", "broadcast_period": 0.01}
    async with second_node(nodes) as b:
        queue_b: asyncio.Queue = asyncio.Queue()

        async def start_b():  # not linked to this short-lived process
            await Supervisor.start(
                [pubsub_on("b", nodes), (Queued, {**options, "arg": queue_b})],
                strategy="rest_for_one",
            )

        await b.run(start_b)
        await start_supervised(pubsub_on("a", nodes))
        await start_supervised((Watched, {**options, "arg": (beamish.self(), "a")}))

        pid = spawn(idle)
        ref = await Tracker.track("t", pid, "room", "u1", {"on": "a"})
        assert await asyncio.wait_for(queue_b.get(), 5) == {
            "room": ([("u1", {"on": "a", "phx_ref": ref})], [])
        }
        assert await b.run(Tracker.list, "t", "room") == [("u1", {"on": "a", "phx_ref": ref})]
        [(pid_on_b, _)] = await b.run(Tracker.get_by_key, "t", "room", "u1")
        assert pid_on_b == pid
        beamish.exit(pid, "kill")
        assert await asyncio.wait_for(queue_b.get(), 5) == {
            "room": ([], [("u1", {"on": "a", "phx_ref": ref})])
        }
        assert list((await b.run(Tracker.replicas, "t")).values()) == ["up"]
        assert list(Tracker.replicas("t").values()) == ["up"]


async def test_a_lost_heartbeat_is_made_up_by_a_transfer(runtime):
    """a's heartbeat with u1 is lost on the way to b; the next one, with u2, does not follow
    what b has, so b does not merge it but asks a for its whole state: b never shows u2
    without u1."""
    nodes: dict[str, Runtime] = {"a": runtime}
    lost = asyncio.Event()

    def lose(message):
        if (type(message) is _Heartbeat and message.delta is not None and not lost.is_set()
                and [e.key for e in message.delta.entries] == ["u1"]):
            lost.set()
            return True
        return False

    options = {"name": "t", "pubsub": "ps", "broadcast_period": 0.01}
    async with second_node(nodes) as b:
        queue_b: asyncio.Queue = asyncio.Queue()

        async def start_b():
            await Supervisor.start(
                [pubsub_on("b", nodes), (Queued, {**options, "arg": queue_b})],
                strategy="rest_for_one",
            )

        await b.run(start_b)
        await start_supervised(pubsub_on("a", nodes, lose=lose))
        await start_supervised((Watched, {**options, "arg": (beamish.self(), "a")}))
        me = beamish.self()
        await Tracker.track("t", me, "room", "u1", {})
        await asyncio.wait_for(lost.wait(), 5)
        await Tracker.track("t", me, "room", "u2", {})
        diffs = await asyncio.wait_for(queue_b.get(), 5)
        assert sorted(keys(diffs["room"][0])) == ["u1", "u2"]  # together, from the transfer
        assert sorted(keys(await b.run(Tracker.list, "t", "room"))) == ["u1", "u2"]
