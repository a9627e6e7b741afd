"""Global names and process groups across nodes."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import ANY, GenServer, Ok, Reply, receive, send
from beamish.cluster import global_names, pg
from beamish.testing import assert_receive, local_cluster

pytestmark = pytest.mark.beamish(node="a@test")


async def sleeper() -> None:
    await receive(lambda m: m == "stop")


def spawn_sleeper() -> beamish.Pid:
    return beamish.spawn(sleeper)


def register(name, pid) -> bool:
    return global_names.register_name(name, pid)


async def eventually(check, timeout=2.0):
    """Wait until ``check()`` (a function, or one returning an awaitable) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def _equals(awaitable, expected):
    return await awaitable == expected


def _sorted_members(group):
    return sorted(pg.get_members(group))


class Named(GenServer):
    def init(self, arg):
        return Ok(arg)

    def handle_call(self, request, from_, state):
        return Reply((state, beamish.node()), state)


async def start_named(tag):
    return await Named.start(tag, name=("global", "the-one"))


async def test_a_global_name_is_seen_on_every_node_and_unique():
    async with local_cluster("b@test", "c@test") as cluster:
        b, c = cluster.node("b@test"), cluster.node("c@test")
        holder = await b.spawn(sleeper)
        assert await b.run(register, "svc", holder) is True
        await eventually(lambda: global_names.whereis_name("svc") == holder)
        await eventually(lambda: _equals(c.run(global_names.whereis_name, "svc"), holder))
        # taken: refused on any node
        other = beamish.spawn(sleeper)
        assert global_names.register_name("svc", other) is False
        global_names.send("svc", "stop")  # reaches the holder on b
        await eventually(lambda: global_names.whereis_name("svc") is None)
        await eventually(lambda: _equals(c.run(global_names.whereis_name, "svc"), None))
        assert global_names.register_name("svc", other) is True
        beamish.exit(other, "kill")


async def test_a_server_started_with_a_global_name_is_called_from_anywhere():
    async with local_cluster("b@test") as cluster:
        await cluster.node("b@test").run(start_named, "from b")
        await eventually(lambda: global_names.whereis_name("the-one") is not None)
        assert await GenServer.call(("global", "the-one"), "hi") == ("from b", "b@test")
        # a second server under the same global name is refused
        with pytest.raises(beamish.StartError) as failed:
            await Named.start("from a", name=("global", "the-one"))
        assert "as ('global', 'the-one'): already started" in str(failed.value)


async def test_the_names_of_a_node_that_goes_down_are_dropped():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        b = cluster.node("b@test")
        holder = await b.spawn(sleeper)
        await b.run(register, "svc", holder)
        await eventually(lambda: global_names.whereis_name("svc") == holder)
        cluster.pause("b@test")
        await eventually(lambda: global_names.whereis_name("svc") is None, timeout=3)
        cluster.resume("b@test")


async def test_a_healed_partition_resolves_a_name_registered_twice():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        b = cluster.node("b@test")
        beamish.monitor_nodes(True)
        cluster.partition("a@test", "b@test")
        await assert_receive(beamish.NodeDown("b@test", ANY), timeout=3)
        mine = beamish.spawn(sleeper)
        theirs = await b.spawn(sleeper)  # as a sees it
        assert global_names.register_name("svc", mine) is True
        assert await b.run(register, "svc", theirs) is True
        cluster.heal()
        await assert_receive(beamish.NodeUp("b@test"), timeout=3)
        # both nodes pick the same winner, the lower pid, and the loser's node kills it
        winner, loser = (mine, theirs) if mine < theirs else (theirs, mine)
        await eventually(lambda: global_names.whereis_name("svc") == winner)
        await eventually(lambda: _equals(b.run(global_names.whereis_name, "svc"), winner))
        alive_on_b = await b.run(lambda pid: beamish.process_info(pid) is not None, theirs)
        assert (beamish.is_alive(mine), alive_on_b) == (
            (True, False) if winner == mine else (False, True)
        )
        send(winner, "stop")


async def join_group(group):
    pid = beamish.spawn(sleeper)
    await pg.join(group, pid)
    return pid


async def test_process_groups_span_the_nodes():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        here = beamish.spawn(sleeper)
        await pg.join("workers", here)
        there = await b.run(join_group, "workers")
        await eventually(lambda: sorted(pg.get_members("workers")) == sorted([here, there]))
        assert pg.get_local_members("workers") == [here]
        await eventually(lambda: _equals(b.run(_sorted_members, "workers"), sorted([here, there])))
        assert "workers" in pg.which_groups()
        # a member that exits leaves, everywhere
        send(there, "stop")
        await eventually(lambda: pg.get_members("workers") == [here])
        assert await pg.leave("workers", here) is True
        assert await pg.leave("workers", here) is False
        await eventually(lambda: pg.get_members("workers") == [])
        beamish.exit(here, "kill")
        with pytest.raises(ValueError, match="only a process of this node"):
            await pg.join("workers", there)


async def test_the_members_of_a_node_that_goes_down_leave():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        b = cluster.node("b@test")
        there = await b.run(join_group, "g")
        await eventually(lambda: pg.get_members("g") == [there])
        cluster.pause("b@test")
        await eventually(lambda: pg.get_members("g") == [], timeout=3)
        cluster.resume("b@test")
        await eventually(lambda: pg.get_members("g") == [there], timeout=3)


# -- locks ------------------------------------------------------------------------------


async def lock_holder(resource, tell):
    """Take ``resource``'s lock (one try), say how it went, then do as told."""
    send(tell, ("locked", beamish.self(), await global_names.set_lock(resource, retries=0)))
    while True:
        order = await receive()
        if order == "release":
            global_names.del_lock(resource)
            send(tell, ("released", beamish.self()))
        elif order == "stop":
            return


async def hold(node, resource):
    """A process on ``node`` that took ``resource``'s lock and keeps it until told."""
    holder = await node.spawn(lock_holder, resource, beamish.self())
    await assert_receive(("locked", holder, True), timeout=3)
    return holder


async def taken(resource, retries=0):
    """Whether a new process on this node can take ``resource``'s lock (it gives it back)."""
    got = await global_names.set_lock(resource, retries=retries)
    if got:
        global_names.del_lock(resource)
    return got


async def test_a_lock_is_one_processs_on_every_node_until_it_gives_it_back():
    async with local_cluster("b@test", "c@test") as cluster:
        b, c = cluster.node("b@test"), cluster.node("c@test")
        holder = await hold(b, "res")
        assert await global_names.set_lock("res", retries=0) is False  # held, from a
        assert await c.run(taken, "res") is False  # and from c
        assert await b.run(taken, "res") is False  # and by another process of b
        assert await taken("other") is True  # another resource is free
        send(holder, "release")
        await assert_receive(("released", holder), timeout=3)
        # taken again from a: the holder's release reached every node first
        assert await global_names.set_lock("res", retries=20) is True
        assert await global_names.set_lock("res", retries=0) is True  # again: counted
        global_names.del_lock("res")
        assert await c.run(taken, "res") is False  # still held once
        global_names.del_lock("res")
        await eventually(lambda: c.run(taken, "res"))
        send(holder, "stop")


async def test_a_holder_that_exits_gives_its_locks_back_everywhere():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        holder = await hold(b, "res")
        assert await taken("res") is False
        await b.run(beamish.exit, holder, "kill")
        await eventually(lambda: taken("res"))
        assert await b.run(taken, "res", 20) is True  # once a's release has reached b


async def test_a_holders_node_that_goes_down_gives_its_locks_back():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        await hold(cluster.node("b@test"), "res")
        assert await taken("res") is False
        await cluster.stop_node("b@test")
        await eventually(lambda: taken("res"), timeout=3)


async def test_a_waiting_set_lock_gets_the_lock_once_it_is_given_back():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        holder = await hold(b, "res")
        waiting = asyncio.ensure_future(global_names.set_lock("res", retries=200))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        send(holder, "release")
        assert await asyncio.wait_for(waiting, 5) is True
        global_names.del_lock("res")
        send(holder, "stop")


async def test_trans_runs_under_the_lock_and_gives_it_back_whatever_happens():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")

        async def inside():
            return await b.run(taken, "job")  # b cannot take it meanwhile

        assert await global_names.trans("job", inside) is False
        assert await b.run(taken, "job", 20) is True  # given back
        with pytest.raises(KeyError):
            await global_names.trans("job", lambda: {}["missing"])
        await eventually(lambda: b.run(taken, "job"))
        holder = await hold(b, "job")
        with pytest.raises(TimeoutError, match="held elsewhere"):
            await global_names.trans("job", lambda: None, retries=1)
        with pytest.raises(ValueError, match="retries"):
            await global_names.set_lock("job", retries=-1)
        send(holder, "stop")


@pytest.mark.beamish(node=None)
async def test_a_lock_outside_a_cluster_says_how_to_join_one():
    with pytest.raises(beamish.NotRegisteredError, match="connect it first"):
        await global_names.set_lock("res")
