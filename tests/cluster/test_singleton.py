"""``Singleton``: a server started from every node's tree runs on one node of the cluster,
and on another when its node goes."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import GenServer, Ok, Reply, Supervisor
from beamish.cluster import Singleton
from beamish.testing import local_cluster

pytestmark = pytest.mark.beamish(node="a@test")


class Clock(GenServer):
    def init(self, start):
        return Ok(start)

    def handle_call(self, request, from_, n):
        return Reply((n + 1, beamish.node()), n + 1)


async def start_tree():
    return await Supervisor.start([Singleton.spec(Clock, 0, name="clock")], name="tree")


def local_clocks():
    """The Clock processes of the node this runs on."""
    return [p for p in beamish.processes()
            if isinstance(getattr(beamish.current_runtime()._procs.get(p.id), "actor", None),
                          Clock)]


async def until(check, what, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"waited {timeout}s for {what}"
        await asyncio.sleep(0.05)
    return result


async def clocks_on(cluster, name):
    return len(local_clocks()) if name == "a@test" else len(
        await cluster.node(name).run(local_clocks))


@pytest.mark.parametrize("how", ["its node goes down", "its tree stops"])
async def test_a_singleton_runs_once_and_moves_when_its_node_goes(how):
    async with local_cluster("b@test", "c@test") as cluster:
        await cluster.node("b@test").run(start_tree)  # first: it takes the name
        await start_tree()
        await cluster.node("c@test").run(start_tree)
        assert [await clocks_on(cluster, n) for n in ("a@test", "b@test", "c@test")] == [0, 1, 0]
        holder = Singleton.whereis("clock")
        assert holder is not None and holder.node == "b@test"
        assert await GenServer.call(("global", "clock"), "tick") == (1, "b@test")
        if how == "its node goes down":
            await cluster.stop_node("b@test")
        else:
            await cluster.node("b@test").run(Supervisor.stop, "tree")

        async def moved():
            now = Singleton.whereis("clock")
            return now is not None and now.node != "b@test" and now

        await until(moved, "the singleton to start elsewhere")

        async def once():  # both survivors may start it at once: the conflict keeps one
            counts = [await clocks_on(cluster, n) for n in ("a@test", "c@test")]
            return sorted(counts) == [0, 1]

        await until(once, "one singleton left after the survivors' race")
        now = Singleton.whereis("clock")
        assert now is not None and now.node != "b@test"
        assert await GenServer.call(("global", "clock"), "tick") == (1, now.node)
        assert sorted([await clocks_on(cluster, n) for n in ("a@test", "c@test")]) == [0, 1]
        await Supervisor.stop("tree")


async def test_a_crashing_singleton_is_restarted_by_its_nodes_supervisor():
    async with local_cluster("b@test"):
        await start_tree()
        first = Singleton.whereis("clock")
        assert first is not None and first.node == "a@test"
        beamish.exit(first, "kill")

        async def again():
            now = Singleton.whereis("clock")
            return now is not None and now != first and now

        await until(again, "the singleton to come back")
        assert (await GenServer.call(("global", "clock"), "tick"))[0] == 1  # a fresh start
        await Supervisor.stop("tree")


@pytest.mark.beamish(node=None)
async def test_on_a_node_alone_the_singleton_runs_under_its_local_name():
    tree = await Supervisor.start([Singleton.spec(Clock, 0, name="clock")], name="tree")
    holder = Singleton.whereis("clock")
    assert holder is not None and holder == beamish.whereis("clock")
    assert Singleton.server("clock") == "clock"
    assert await GenServer.call(Singleton.server("clock"), "tick") == (1, beamish.node())
    beamish.exit(holder, "kill")  # its crash restarts it, under the same name

    async def restarted():
        now = Singleton.whereis("clock")
        return now is not None and now != holder

    await until(restarted, "the singleton's restart")
    assert await GenServer.call("clock", "tick") == (1, beamish.node())
    await Supervisor.stop(tree)


async def test_in_a_cluster_the_server_to_call_is_the_global_name():
    async with local_cluster("b@test"):
        assert Singleton.server("clock") == ("global", "clock")


@pytest.mark.beamish(node=None)
async def test_a_singleton_alone_needs_a_string_name():
    with pytest.raises(Exception, match="must be a string"):
        await Supervisor.start([Singleton.spec(Clock, 0, name=("clock", 1))], name="tree")


INITS: list[str] = []  # the nodes where a SlowClock's init began (all nodes share a process)


class SlowClock(Clock):
    async def init(self, start):
        INITS.append(beamish.node())
        await asyncio.sleep(0.2)  # a wide window for two nodes to start it at once
        return Ok(start)


async def start_slow_tree():
    return await Supervisor.start([Singleton.spec(SlowClock, 0, name="clock")], name="tree")


async def test_two_nodes_that_start_it_at_once_start_it_once_and_both_trees_stay_up():
    """Both guards try at the same moment: the cluster lock lets one start the server (its
    init runs once, on one node) and the other finds it registered and watches it; both
    trees stay up."""
    INITS.clear()
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        await asyncio.gather(b.run(start_slow_tree), start_slow_tree())

        async def settled():
            holder = Singleton.whereis("clock")
            counts = [len(local_clocks()), len(await b.run(local_clocks))]
            return holder is not None and sorted(counts) == [0, 1] and holder

        holder = await until(settled, "one clock left")
        assert len(INITS) == 1 and INITS[0] == holder.node  # one init, on the holder's node
        assert await GenServer.call(("global", "clock"), "tick") == (1, holder.node)
        assert beamish.whereis("tree") is not None
        assert await b.run(lambda: beamish.whereis("tree") is not None)
        await Supervisor.stop("tree")
        await b.run(Supervisor.stop, "tree")


async def start_shelf_clock():
    return await Clock.start_link(0, name="shelf.clock")


class Shelf(Supervisor):
    """A singleton supervisor: its child ``shelf.clock`` is found beside it."""

    def init(self, _):
        return Supervisor.init([{"id": "clock", "start": (start_shelf_clock, ())}])


async def test_a_process_beside_a_singleton_is_called_on_the_singletons_node():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")

        async def start_shelf():
            return await Supervisor.start([Singleton.spec(Shelf, None, name="shelf")],
                                          name="tree")

        await b.run(start_shelf)
        await start_shelf()
        assert Singleton.whereis("shelf").node == "b@test"
        assert Singleton.beside("shelf", "shelf.clock") == ("shelf.clock", "b@test")
        assert await GenServer.call(Singleton.beside("shelf", "shelf.clock"), "t") == (
            1, "b@test")
        assert Singleton.beside("nobody", "shelf.clock") == "shelf.clock"
        await Supervisor.stop("tree")
        await b.run(Supervisor.stop, "tree")
