"""Registry, by the reference behaviours (OTP-SEMANTICS section 11 and item 132; item
numbers in names). Every test runs with 1 and with 8 partitions, and with each kind of
registry the item applies to.

Cleanup after an owner exits is asynchronous (the owner's partition removes its entries when
the Exit reaches it): tests sync with every partition (``sync``) before they look.
"""

from __future__ import annotations

import pytest

import beamish
from beamish import (
    ANY,
    Crash,
    Down,
    GenServer,
    NoReply,
    Ok,
    Registry,
    RegistryError,
    Reply,
    StartError,
    Supervisor,
    receive,
    send,
)

pytestmark = pytest.mark.parametrize("partitions", [1, 8])

UNIQUE = "unique"
DUPLICATES = ["duplicate", ("duplicate", "key")]
ALL_KINDS = [UNIQUE, *DUPLICATES]
each_kind = pytest.mark.parametrize("keys", ALL_KINDS, ids=["unique", "dup_pid", "dup_key"])
each_duplicate = pytest.mark.parametrize("keys", DUPLICATES, ids=["dup_pid", "dup_key"])

REG = "reg"


async def start(keys, partitions, **options):
    """A registry named REG, linked to the test process (it stops with the test)."""
    return await Registry.start_link(keys=keys, name=REG, partitions=partitions, **options)


def partitions_of(registry=REG):
    """The partition processes, by the names they are registered under (for debugging)."""
    return [beamish.whereis(n) for n in beamish.registered() if n.startswith(registry + ".")]


async def sync(registry=REG):
    """Return once every partition has handled the messages already sent to it."""
    for pid in partitions_of(registry):
        await GenServer.get_state(pid)


async def _hold(parent, entries):
    # register each (key, value), report, then wait to be stopped (or crash on request)
    me = beamish.self()
    owners = [Registry.register(REG, key, value) for key, value in entries]
    send(parent, ("registered", me, owners))
    match await receive("stop", "crash"):
        case "crash":
            raise RuntimeError("holder crashed on purpose")


async def holder(*entries):
    """A process (not linked to the test) that registers ``entries``; returns (pid, owner)."""
    pid = beamish.spawn(_hold, beamish.self(), entries)
    match await receive(("registered", pid, ANY), timeout=1):
        case (_, _, owners):
            return pid, owners[0] if owners else None


async def stop(pid):
    exited = beamish.wait_exit(pid)
    send(pid, "stop")
    await exited


async def kill(pid):
    exited = beamish.wait_exit(pid)
    beamish.exit(pid, "kill")
    await exited


# -- 130-134: registering and looking up -------------------------------------------------------


async def test_registry_unique_keys_across_processes_130(partitions):
    await start(UNIQUE, partitions)
    me = beamish.self()
    other, _ = await holder(("hello", "value"))
    with pytest.raises(RegistryError) as refused:
        Registry.register(REG, "hello", "value")
    assert refused.value.reason == ("already_registered", other)
    assert "already registered" in str(refused.value)
    assert Registry.keys(REG, me) == []
    assert Registry.keys(REG, other) == ["hello"]
    assert beamish.process_info(me).links == (beamish.whereis(REG),)  # no link was left
    # the holder itself gets the error too
    Registry.register(REG, "mine", 1)
    with pytest.raises(RegistryError) as again:
        Registry.register(REG, "mine", 2)
    assert again.value.reason == ("already_registered", me)
    assert Registry.lookup(REG, "mine") == [(me, 1)]
    await stop(other)


@each_duplicate
async def test_registry_duplicate_registration_131(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()
    owner = Registry.register(REG, "hello", "value")
    assert Registry.register(REG, "hello", "value") == owner
    assert Registry.register(REG, "world", "value") == owner
    assert Registry.keys(REG, me) == ["hello", "hello", "world"]
    assert Registry.values(REG, "hello", me) == ["value", "value"]
    other, _ = await holder(("hello", "other"))
    assert Registry.keys(REG, other) == ["hello"]
    assert Registry.values(REG, "hello", other) == ["other"]
    assert Registry.keys(REG, me) == ["hello", "hello", "world"]
    assert sorted(Registry.lookup(REG, "hello"), key=repr) == sorted(
        [(me, "value"), (me, "value"), (other, "other")], key=repr
    )
    assert Registry.count(REG) == 4
    await stop(other)


@each_kind
async def test_registry_entries_removed_when_owner_exits_132(keys, partitions):
    await start(keys, partitions)
    crashed, _ = await holder(("a", 1), ("b", 2))
    killed, _ = await holder(("c", 3), ("d", 4))
    normal, _ = await holder(("e", 5))
    assert Registry.count(REG) == 5
    down = beamish.monitor(crashed)
    send(crashed, "crash")
    match await receive(Down, timeout=1):
        case Down(ref, _, Crash(RuntimeError())) if ref == down:
            pass
    await kill(killed)
    await stop(normal)
    await sync()
    assert Registry.count(REG) == 0
    for key in "abcde":
        assert Registry.lookup(REG, key) == []
    assert Registry.select(REG) == []


async def test_registry_dead_holder_never_blocks_unique_key_133(partitions):
    await start(UNIQUE, partitions)
    me = beamish.self()
    dead, owner = await holder(("hello", "value"))
    await GenServer.suspend(owner)  # the holder's cleanup is delayed
    await kill(dead)
    Registry.register(REG, "hello", "other")
    assert Registry.lookup(REG, "hello") == [(me, "other")]
    await GenServer.resume(owner)  # the delayed cleanup runs now...
    await sync()
    assert Registry.lookup(REG, "hello") == [(me, "other")]  # ...and spares the new holder
    assert Registry.keys(REG, me) == ["hello"]
    assert Registry.count(REG) == 1


@each_kind
async def test_registry_lookup_134(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()
    assert Registry.lookup(REG, "hello") == []
    Registry.register(REG, "hello", "world")
    assert Registry.lookup(REG, "hello") == [(me, "world")]

    async def look(parent):
        send(parent, ("seen", Registry.lookup(REG, "hello")))

    beamish.spawn(look, me)
    assert await receive(("seen", ANY), timeout=1) == ("seen", [(me, "world")])
    if keys != UNIQUE:
        other, _ = await holder(("hello", "another"))
        assert sorted(Registry.lookup(REG, "hello"), key=repr) == sorted(
            [(me, "world"), (other, "another")], key=repr
        )
        await stop(other)


@each_kind
async def test_registry_register_links_the_caller_136(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()

    def links():
        return beamish.process_info(me).links

    assert links() == (beamish.whereis(REG),)
    owner = Registry.register(REG, "a", None)
    assert owner in links()
    assert Registry.register(REG, "b", None) == owner  # one owner, whatever the key
    Registry.unregister(REG, "a")
    assert owner in links()
    Registry.unregister(REG, "b")
    assert owner not in links()
    Registry.unregister(REG, "never registered")  # a no-op
    assert links() == (beamish.whereis(REG),)


# -- 137: via names ---------------------------------------------------------------------------


class Counter(GenServer):
    def init(self, start):
        return Ok(start)

    def handle_call(self, request, from_, state):
        return Reply(state, state)

    def handle_cast(self, request, state):
        return NoReply(state + request)

    def handle_info(self, message, state):
        match message:
            case ("add", n):
                return NoReply(state + n)
        return NoReply(state)


async def test_registry_via_names_137(partitions):
    await start(UNIQUE, partitions)
    name = Registry.via(REG, "hello")
    pid = await Counter.start_link(0, name=name)
    assert Registry.lookup(REG, "hello") == [(pid, None)]
    assert GenServer.whereis(name) == pid
    GenServer.cast(name, 1)
    name[1].send(name[2], ("add", 10))  # the via protocol's send
    assert await GenServer.call(name, "get") == 11
    with pytest.raises(StartError) as taken:
        await Counter.start_link(0, name=Registry.via(REG, "hello"))
    assert taken.value.reason == ("already_started", pid)

    valued = await Counter.start_link(0, name=Registry.via(REG, "hello2", "value"))
    assert Registry.lookup(REG, "hello2") == [(valued, "value")]

    await GenServer.stop(name)
    await sync()
    assert Registry.lookup(REG, "hello") == []
    assert GenServer.whereis(name) is None
    with pytest.raises(beamish.NotRegisteredError):
        name[1].send(name[2], "nobody")


@each_duplicate
async def test_registry_via_refused_on_duplicate_registry_137(keys, partitions):
    await start(keys, partitions)
    with pytest.raises(RegistryError) as refused:
        Registry.via(REG, "hello")
    assert refused.value.reason == ("not_supported", "via", "duplicate")
    assert "not supported for duplicate registries" in str(refused.value)


# -- 139-142: values, patterns, keys ------------------------------------------------------------


async def test_registry_update_value_139(partitions):
    await start(UNIQUE, partitions)
    me = beamish.self()
    other, _ = await holder(("hello", "value"))
    called = []

    def increment(value):
        called.append(value)
        return value + 1

    assert Registry.update_value(REG, "hello", increment) is None  # not ours
    assert Registry.update_value(REG, "nobody", increment) is None
    assert called == []
    Registry.register(REG, "world", 1)
    assert Registry.update_value(REG, "world", increment) == (2, 1)
    assert Registry.lookup(REG, "world") == [(me, 2)]
    assert Registry.lookup(REG, "hello") == [(other, "value")]
    await stop(other)


@each_duplicate
async def test_registry_update_value_refused_on_duplicate_registry_139(keys, partitions):
    await start(keys, partitions)
    Registry.register(REG, "world", 1)
    with pytest.raises(RegistryError) as refused:
        Registry.update_value(REG, "world", lambda v: v + 1)
    assert refused.value.reason == ("not_supported", "update_value", "duplicate")
    assert "Registry.update_value() is not supported" in str(refused.value)


@each_kind
async def test_registry_pattern_matching_on_values_140(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()
    first, second = (1, "atom", 1), (2, "atom", 2)
    Registry.register(REG, "hello", first)
    values = [first] if keys == UNIQUE else [first, second]
    if keys != UNIQUE:
        Registry.register(REG, "hello", second)

    def matched(pattern, guard=None):
        return sorted(v for _, v in Registry.match(REG, "hello", pattern, guard))

    assert matched((1, ANY, ANY)) == [first]
    assert matched((3, ANY, ANY)) == []
    assert matched(("1", ANY, ANY)) == []
    assert matched((ANY, "atom", ANY)) == values
    assert matched(lambda v: v[0] == v[2]) == values  # a repeated variable, as a predicate
    assert matched((ANY, ANY, ANY), guard=lambda v: v[2] > 1) == values[1:]
    assert matched((ANY, str, ANY)) == values  # a class: is_atom becomes isinstance
    assert matched(ANY) == values
    assert Registry.match(REG, "hello", (1, ANY, ANY)) == [(me, first)]
    assert Registry.match(REG, ANY, ANY) == []  # a key is never a pattern
    assert Registry.count_match(REG, "hello", (ANY, "atom", ANY)) == len(values)
    assert Registry.count_match(REG, "hello", ANY, guard=lambda v: v[0] > 1) == len(values) - 1
    assert Registry.count_match(REG, ANY, ANY) == 0

    Registry.register(REG, "map", {"a": 1, "b": 2})
    assert Registry.count_match(REG, "map", {"a": 1}) == 1  # a dict pattern: a subset
    assert Registry.count_match(REG, "map", {"a": 2}) == 0

    Registry.unregister_match(REG, "hello", (3, ANY, ANY))
    assert Registry.count_match(REG, "hello", ANY) == len(values)
    Registry.unregister_match(REG, "hello", ANY, guard=lambda v: v[0] > 1)
    assert Registry.lookup(REG, "hello") == [(me, first)]
    Registry.unregister_match(REG, "hello", (1, ANY, ANY))
    assert Registry.lookup(REG, "hello") == []
    assert Registry.keys(REG, me) == ["map"]


@each_kind
async def test_registry_python_key_semantics_141(keys, partitions):
    # A deliberate choice: keys are dict keys, so 1, 1.0 and True are one key, as in a
    # Python dict (Elixir's === would keep them apart); values match by ==.
    await start(keys, partitions)
    me = beamish.self()
    Registry.register(REG, 1, "one")
    assert Registry.lookup(REG, 1.0) == [(me, "one")]
    assert Registry.lookup(REG, True) == [(me, "one")]
    if keys == UNIQUE:
        with pytest.raises(RegistryError):
            Registry.register(REG, 1.0, "again")
    assert Registry.count_match(REG, 1, "one") == 1
    Registry.register(REG, "t", (1, "x"))
    assert Registry.count_match(REG, "t", (1.0, ANY)) == 1  # 1.0 == 1
    with pytest.raises(TypeError, match="must be hashable"):
        Registry.register(REG, ["a", "list"], None)


@each_kind
async def test_registry_pattern_looking_keys_are_literal_142(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()

    def predicate(value):
        return True

    small = frozenset({("a", 1)})
    large = frozenset({("a", 1), ("b", 2)})
    literal = [ANY, "_", ("$1", "x"), ("$$", "x"), int, predicate, small, large, None]
    for i, key in enumerate(literal):
        Registry.register(REG, key, i)
    Registry.register(REG, 5, "an int")
    for i, key in enumerate(literal):
        assert Registry.lookup(REG, key) == [(me, i)], key
        assert Registry.match(REG, key, ANY) == [(me, i)], key
        assert Registry.count_match(REG, key, ANY) == 1, key
    for i, key in enumerate(literal):
        if i % 2:
            Registry.unregister(REG, key)
        else:
            Registry.unregister_match(REG, key, i)
        assert Registry.lookup(REG, key) == [], key
        assert Registry.count(REG) == len(literal) - i, key
    assert Registry.lookup(REG, 5) == [(me, "an int")]
    assert Registry.keys(REG, me) == [5]


# -- 143: listeners -----------------------------------------------------------------------------


@each_kind
async def test_registry_listeners_143(keys, partitions):
    me = beamish.self()
    beamish.register("listener", me)
    await start(keys, partitions, listeners=["listener", "not_running"])
    other, _ = await holder(("hello", "world"))
    assert await receive(("register", ANY, ANY, ANY, ANY), timeout=1) == (
        "register", REG, "hello", other, "world"
    )
    Registry.register(REG, "world", "value")
    assert await receive(("register", ANY, ANY, ANY, ANY), timeout=1) == (
        "register", REG, "world", me, "value"
    )
    Registry.unregister(REG, "world")
    assert await receive(("unregister", ANY, ANY, ANY), timeout=1) == (
        "unregister", REG, "world", me
    )
    watching = beamish.monitor(other)
    send(other, "crash")  # no event for an exit: a listener monitors if it cares
    await receive(Down(watching, other, ANY), timeout=1)
    await sync()  # the registry's own Down was sent with ours: it is handled first
    assert Registry.lookup(REG, "hello") == []
    assert await receive(("unregister", ANY, ANY, ANY), timeout=0, default=None) is None


# -- 145: lock ------------------------------------------------------------------------------------


async def _locker(parent, key, tag, hold, fail):
    me = beamish.self()

    async def body():
        send(parent, ("locked", tag))
        if hold:
            await receive("unlock")
        if fail:
            raise RuntimeError("oops")
        return ("done", tag)

    send(parent, ("waiting", tag, me))
    send(parent, ("result", tag, await Registry.lock(REG, key, body)))


async def locker(key, tag, *, hold=True, fail=False):
    """A process that takes the lock ``key``; returns its pid once its request is in."""
    pid = beamish.spawn(_locker, beamish.self(), key, tag, hold, fail)
    await receive(("waiting", tag, pid), timeout=1)
    await sync()  # its lock request has been handled: it holds the lock or waits in line
    return pid


async def result(tag):
    return await receive(("result", tag, ANY), timeout=1)


async def nothing(pattern):
    return await receive(pattern, timeout=0.1, default=None) is None


@each_kind
async def test_registry_lock_different_keys_run_concurrently_145(keys, partitions):
    await start(keys, partitions)
    first = await locker(1, "one")
    assert await receive(("locked", "one"), timeout=1)
    second = await locker(2, "two")
    assert await receive(("locked", "two"), timeout=1)
    send(first, "unlock")
    send(second, "unlock")
    assert await result("one") == ("result", "one", ("done", "one"))
    assert await result("two") == ("result", "two", ("done", "two"))
    assert await Registry.lock(REG, 1, lambda: "done") == "done"
    assert await Registry.lock(REG, 2, lambda: "done") == "done"


@each_kind
async def test_registry_lock_same_key_runs_one_at_a_time_145(keys, partitions):
    await start(keys, partitions)
    first = await locker("ok", "one")
    assert await receive(("locked", "one"), timeout=1)
    await locker("ok", "two", hold=False)
    assert await nothing(("locked", "two"))
    send(first, "unlock")
    assert await result("one") == ("result", "one", ("done", "one"))
    assert await receive(("locked", "two"), timeout=1)
    assert await result("two") == ("result", "two", ("done", "two"))
    assert await Registry.lock(REG, "ok", lambda: "done") == "done"


@each_kind
async def test_registry_lock_released_when_holder_raises_145(keys, partitions):
    await start(keys, partitions)
    first = await locker("ok", "one", fail=True)
    down = beamish.monitor(first)
    assert await receive(("locked", "one"), timeout=1)
    await locker("ok", "two", hold=False)
    send(first, "unlock")
    match await receive(Down, timeout=1):
        case Down(ref, _, Crash(RuntimeError() as error)) if ref == down:
            assert str(error) == "oops"
    assert await result("two") == ("result", "two", ("done", "two"))
    assert await Registry.lock(REG, "ok", lambda: "done") == "done"


@each_kind
async def test_registry_lock_released_when_holder_is_killed_145(keys, partitions):
    await start(keys, partitions)
    first = await locker("ok", "one")
    assert await receive(("locked", "one"), timeout=1)
    await locker("ok", "two", hold=False)
    await kill(first)
    assert await result("two") == ("result", "two", ("done", "two"))
    assert await Registry.lock(REG, "ok", lambda: "done") == "done"


@each_kind
async def test_registry_lock_killed_waiter_does_not_keep_it_145(keys, partitions):
    await start(keys, partitions)
    first = await locker("ok", "one")
    assert await receive(("locked", "one"), timeout=1)
    waiter = await locker("ok", "two", hold=False)
    await kill(waiter)
    send(first, "unlock")
    assert await result("one") == ("result", "one", ("done", "one"))
    assert await Registry.lock(REG, "ok", lambda: "done") == "done"
    assert await nothing(("locked", "two"))


@each_kind
async def test_registry_lock_partition_watches_its_holders_145(keys, partitions):
    # A holder that dies without giving the lock back (no `finally` ran: here, a client of
    # the partitions' lock protocol that just exits) does not keep the key: the partition
    # monitors holders and waiters.
    await start(keys, partitions)

    async def take_and_exit(partition):
        assert await beamish.request(partition, ("lock", "k"), timeout=1) == "locked"

    for partition in partitions_of():
        gone = beamish.spawn(take_and_exit, partition)
        await beamish.wait_exit(gone)
    beamish.spawn(_locker, beamish.self(), "k", "after", False, False)
    assert await result("after") == ("result", "after", ("done", "after"))


@each_kind
async def test_registry_lock_returns_the_result_and_refuses_reentry_145(keys, partitions):
    await start(keys, partitions)

    async def later():
        await beamish.sleep(0)
        return beamish.self()

    assert await Registry.lock(REG, "k", later) == beamish.self()

    async def nested():
        return await Registry.lock(REG, "k", lambda: "inner")

    with pytest.raises(RegistryError) as refused:
        await Registry.lock(REG, "k", nested)
    assert refused.value.reason == ("reentrant_lock", "k")
    assert await Registry.lock(REG, "k", lambda: "free again") == "free again"


# -- 146: count and select ------------------------------------------------------------------------


@each_kind
async def test_registry_count_and_select_146(keys, partitions):
    await start(keys, partitions)
    me = beamish.self()
    assert Registry.count(REG) == 0
    assert Registry.select(REG) == []
    Registry.register(REG, "hello", "value")
    Registry.register(REG, "world", "value")
    assert Registry.count(REG) == 2
    assert sorted(Registry.select(REG)) == [("hello", me, "value"), ("world", me, "value")]
    assert sorted(Registry.select(REG, (ANY, ANY, ANY))) == sorted(Registry.select(REG))
    assert Registry.select(REG, ("hello", ANY, ANY)) == [("hello", me, "value")]
    assert [k for k, _, _ in Registry.select(REG, guard=lambda k, p, v: k > "p")] == ["world"]
    for malformed in [("hello", ANY), [ANY, ANY, ANY], "hello"]:
        with pytest.raises(ValueError, match=r"\(key, pid, value\)"):
            Registry.select(REG, malformed)


# -- beyond the reference items -------------------------------------------------------------------


@each_kind
async def test_registry_dispatch_calls_fn_per_partition(keys, partitions):
    await start(keys, partitions)
    owners = [await holder(("topic", i)) for i in range(1 if keys == UNIQUE else 20)]
    calls = []
    Registry.dispatch(REG, "topic", calls.append)
    assert Registry.dispatch(REG, "nobody", calls.append) is None
    assert all(calls), "dispatch never calls fn with an empty list"
    if keys == UNIQUE:
        assert calls == [[(owners[0][0], 0)]]
    else:
        assert sorted(v for batch in calls for _, v in batch) == list(range(20))
        assert len(calls) <= (partitions if keys == "duplicate" else 1)
    for pid, _ in owners:
        await stop(pid)


@each_kind
async def test_registry_values_are_isolated(keys, partitions):
    await start(keys, partitions)
    value = {"items": [1]}
    Registry.register(REG, "k", value)
    value["items"].append(2)  # the registry keeps what was registered
    [(_, seen)] = Registry.lookup(REG, "k")
    seen["items"].append(3)  # and a reader's copy is its own
    assert Registry.lookup(REG, "k")[0][1] == {"items": [1]}
    assert Registry.values(REG, "k", beamish.self()) == [{"items": [1]}]
    Registry.dispatch(REG, "k", lambda entries: entries[0][1]["items"].clear())
    assert Registry.match(REG, "k", {"items": [1]})[0][1] == {"items": [1]}


@each_kind
async def test_registry_meta(keys, partitions):
    await start(keys, partitions, meta={"pool_size": 4})
    assert Registry.meta(REG, "pool_size") == 4
    assert Registry.meta(REG, "missing") is None
    assert Registry.meta(REG, "missing", "default") == "default"
    Registry.put_meta(REG, ("tuple", "key"), "tuple_value")
    assert Registry.meta(REG, ("tuple", "key")) == "tuple_value"
    Registry.delete_meta(REG, ("tuple", "key"))
    assert Registry.meta(REG, ("tuple", "key")) is None


@each_kind
async def test_registry_runs_under_a_supervisor_and_restarts_whole(keys, partitions):
    sup = await Supervisor.start_link(
        [(Registry, {"keys": keys, "name": REG, "partitions": partitions})],
        strategy="one_for_one",
    )
    [child] = await Supervisor.which_children(sup)
    assert (child.id, child.type) == (REG, "supervisor")
    assert len(partitions_of()) == partitions
    member, _ = await holder(("k", 1))
    member_down = beamish.monitor(member)
    # a partition that dies takes the registry, and its members, down; it restarts empty
    partition = partitions_of()[-1]
    exited = beamish.wait_exit(child.pid)
    await kill(partition)
    assert await exited == "shutdown"
    match await receive(Down, timeout=1):
        case Down(ref, _, reason) if ref == member_down:
            assert reason in ("killed", "shutdown")
    [restarted] = await Supervisor.which_children(sup)
    assert restarted.pid != child.pid and beamish.whereis(REG) == restarted.pid
    assert Registry.count(REG) == 0
    Registry.register(REG, "k", 2)
    assert Registry.lookup(REG, "k") == [(beamish.self(), 2)]


async def test_registry_errors_teach(partitions):
    with pytest.raises(RegistryError) as unknown:
        Registry.lookup("nowhere", "k")
    assert unknown.value.reason == ("unknown_registry", "nowhere")
    assert "Registry.start_link" in str(unknown.value)
    with pytest.raises(ValueError, match='"unique"'):
        await Registry.start_link(keys="uniq", name=REG, partitions=partitions)
    with pytest.raises(ValueError, match="partitions"):
        await Registry.start_link(keys="unique", name=REG, partitions=0)
    with pytest.raises(TypeError, match="listeners"):
        await Registry.start_link(keys="unique", name=REG, listeners="one")
    with pytest.raises(beamish.InvalidNameError):
        await Registry.start_link(keys="unique", name=None)
    with pytest.raises(TypeError, match="options"):
        Registry.child_spec(None)
    with pytest.raises(TypeError, match="'size'"):
        Registry.child_spec({"keys": "unique", "name": REG, "size": 2})
    await start(UNIQUE, partitions)
    with pytest.raises(StartError) as taken:
        await start(UNIQUE, partitions)
    assert taken.value.reason == ("already_started", beamish.whereis(REG))
    with pytest.raises(TypeError, match="must be hashable"):
        Registry.via(REG, {"a": 1})
