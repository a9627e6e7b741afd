"""Remote pids behave as local ones do: send, links, monitors, exits and calls across nodes,
with ``noconnection`` when a node goes away (OTP-SEMANTICS, the items on links and monitors,
here with the two processes on two nodes)."""

from __future__ import annotations

import asyncio

import pytest

import beamish
import beamish.cluster
from beamish import (
    ANY,
    CallError,
    Down,
    Exit,
    GenServer,
    NodeDown,
    NodeUp,
    Ok,
    Reply,
    monitor,
    receive,
    self,
    send,
)
from beamish.cluster import RemoteError, WireError
from beamish.testing import assert_receive, local_cluster, refute_receive

pytestmark = pytest.mark.beamish(node="a@test")


async def echo() -> None:
    while True:
        match await receive():
            case ("echo", sender, value):
                send(sender, ("echoed", value, self()))
            case "crash":
                raise ValueError("asked to crash")
            case ("exit", reason):
                raise beamish.ProcessExit(reason)


async def waiter() -> None:
    await receive(lambda m: False)


async def register_echo(name: str) -> beamish.Pid:
    pid = beamish.spawn(echo)
    beamish.register(name, pid)
    return pid


@beamish.message
class Deposit:
    account: str
    amount: int


class Counter(GenServer):
    def init(self, arg):
        return Ok(arg)

    def handle_call(self, request, from_, state):
        match request:
            case ("add", n):
                return Reply(state + n, state + n)
            case ("sleep", seconds):
                return self._later(from_, seconds, state)
            case "boom":
                raise ValueError("boom")
            case Deposit(account, amount):
                return Reply(("deposited", account, amount), state)

    def _later(self, from_, seconds, state):
        beamish.send_after(self.pid, ("late", from_), seconds)
        return beamish.NoReply(state)

    def handle_info(self, message, state):
        match message:
            case ("late", from_):
                GenServer.reply(from_, "late answer")
        return beamish.NoReply(state)


async def start_counter(name: str) -> beamish.Pid:
    return await Counter.start(0, name=name)


async def test_send_to_a_remote_pid_and_name_keeps_order():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        pid = await b.run(register_echo, "echo")
        assert pid.node == "b@test" and beamish.node(pid) == "b@test"
        assert repr(pid).startswith("<1.")  # another node's pids print its index
        for i in range(500):
            send(pid, ("echo", self(), i))
        for i in range(500):
            await assert_receive(("echoed", i, pid))
        send(("echo", "b@test"), ("echo", self(), (1, [2], {"k": frozenset({3})}, b"x")))
        await assert_receive(("echoed", (1, [2], {"k": frozenset({3})}, b"x"), pid))
        assert beamish.nodes() == ["b@test"] and beamish.node() == "a@test"


async def test_a_message_that_cannot_cross_raises_at_the_sender():
    async with local_cluster("b@test") as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")

        class Opaque:
            pass

        with pytest.raises(WireError, match=r"Opaque.*@beamish.message"):
            send(pid, ("echo", self(), Opaque()))
        # the next message goes through: nothing was half sent
        send(pid, ("echo", self(), Deposit("acc", 5)))
        _, value, _ = await assert_receive(("echoed", ANY, pid))
        assert value == Deposit("acc", 5) and type(value) is Deposit


async def test_monitor_a_remote_process():
    async with local_cluster("b@test") as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")
        ref = monitor(pid)
        send(pid, "crash")
        down = await assert_receive(Down(ref, pid, ANY))
        assert down.reason.exception == RemoteError("ValueError", "asked to crash")
        # a dead remote pid: noproc, at once from its node
        ref2 = monitor(pid)
        await assert_receive(Down(ref2, pid, "noproc"))
        # by (name, node)
        ref3 = monitor(("nobody", "b@test"))
        await assert_receive(Down(ref3, ("nobody", "b@test"), "noproc"))


async def test_demonitor_a_remote_process():
    async with local_cluster("b@test") as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")
        ref = monitor(pid)
        assert beamish.demonitor(ref) is True
        send(pid, ("exit", "bye"))
        await refute_receive(Down(ref, ANY, ANY), timeout=0.1)


async def test_links_across_nodes_carry_exit_signals_both_ways():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        pid = await b.run(register_echo, "echo")
        beamish.trap_exit(True)
        beamish.link(pid)
        send(pid, ("exit", "gone"))
        await assert_receive(Exit(pid, "gone"))
        # the other way: a local process linked to a remote one takes it down
        pid2 = await b.run(register_echo, "echo2")

        async def linked_then_crash(target):
            beamish.link(target)
            await receive(lambda m: m == "crash")
            raise RuntimeError("local crash")

        ref = monitor(pid2)
        local = beamish.spawn(linked_then_crash, pid2)
        await asyncio.sleep(0)  # let it link
        send(local, "crash")
        down = await assert_receive(Down(ref, pid2, ANY))
        assert down.reason.exception == RemoteError("RuntimeError", "local crash")


async def test_link_to_a_dead_remote_pid_gives_noproc():
    async with local_cluster("b@test") as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")
        ref = monitor(pid)
        send(pid, ("exit", "normal"))
        await assert_receive(Down(ref, pid, "normal"))
        beamish.trap_exit(True)
        beamish.link(pid)
        await assert_receive(Exit(pid, "noproc"))


async def test_exit_signals_to_a_remote_pid():
    async with local_cluster("b@test") as cluster:
        b = cluster.node("b@test")
        pid = await b.run(register_echo, "echo")
        ref = monitor(pid)
        beamish.exit(pid, "normal")  # ignored by a process that does not trap exits
        await refute_receive(Down(ref, ANY, ANY), timeout=0.05)
        beamish.exit(pid, "kill")
        await assert_receive(Down(ref, pid, "killed"))


async def test_calls_across_nodes():
    async with local_cluster("b@test") as cluster:
        server = await cluster.node("b@test").run(start_counter, "counter")
        assert await GenServer.call(("counter", "b@test"), ("add", 2)) == 2
        assert await GenServer.call(server, ("add", 3)) == 5
        assert await GenServer.call(server, Deposit("x", 1)) == ("deposited", "x", 1)
        with pytest.raises(CallError) as failed:
            await GenServer.call(("nobody", "b@test"), ("add", 1))
        assert failed.value.why == "noproc"
        # a timeout, and the late reply never reaches the mailbox
        with pytest.raises(CallError) as failed:
            await GenServer.call(server, ("sleep", 0.1), timeout=0.02)
        assert failed.value.why == "timeout"
        await refute_receive(ANY, timeout=0.2)
        # the server crashes in the call: the caller gets its exit reason
        with pytest.raises(CallError) as failed:
            await GenServer.call(server, "boom")
        assert failed.value.why.exception == RemoteError("ValueError", "boom")
        # calling a node that is not connected
        with pytest.raises(CallError) as failed:
            await GenServer.call(("counter", "z@test"), ("add", 1))
        assert failed.value.why == ("nodedown", "z@test")


async def test_a_call_to_a_node_that_goes_down_fails_with_nodedown():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        server = await cluster.node("b@test").run(start_counter, "counter")
        call = asyncio.ensure_future(GenServer.call(server, ("sleep", 30), timeout=10))
        await asyncio.sleep(0.05)
        cluster.partition("a@test", "b@test")
        with pytest.raises(CallError) as failed:
            await call
        assert failed.value.why == ("nodedown", "b@test")
        cluster.heal()


async def test_a_node_that_goes_silent_is_down_with_noconnection():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        b = cluster.node("b@test")
        pid = await b.run(register_echo, "echo")
        beamish.monitor_nodes(True)
        beamish.monitor_node("b@test")
        beamish.trap_exit(True)
        beamish.link(pid)
        ref = monitor(pid)
        # b has the link before it stops: a round trip behind it in the session. (Paused in
        # the same turn, the link's frame could still be on its way when a's session ended:
        # then, as on the BEAM, b never had the link and its echo rightly lives on.)
        send(pid, ("echo", self(), "linked"))
        await assert_receive(("echoed", "linked", pid))
        loop = asyncio.get_running_loop()
        started = loop.time()
        cluster.pause("b@test")
        await assert_receive(Down(ref, pid, "noconnection"), timeout=2)
        took = loop.time() - started
        assert 0.4 - 0.1 <= took <= 1.2  # tick_time after the last word (a tick is 0.1 s)
        await assert_receive(Exit(pid, "noconnection"))
        await assert_receive(NodeDown("b@test", "noconnection"))
        await assert_receive(NodeDown("b@test", "noconnection"))  # monitor_node's, once
        assert beamish.nodes() == []
        # resumed: the nodes meet again, in a new session
        cluster.resume("b@test")
        await assert_receive(NodeUp("b@test"), timeout=2)
        # b saw the link break too (as on the BEAM, both sides): its echo died with it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5  # b may meet a's new session before its own tick fires
        while await b.run(beamish.whereis, "echo") is not None:
            assert loop.time() < deadline, "b's end of the link never broke"
            await asyncio.sleep(0.01)
        fresh = await b.run(register_echo, "echo")
        send(fresh, ("echo", self(), "again"))
        await assert_receive(("echoed", "again", fresh))
        await refute_receive(NodeDown, timeout=0.5)  # it stays up: heartbeats flow again


async def test_a_restarted_node_is_a_new_incarnation():
    async with local_cluster("b@test", tick_time=0.4) as cluster:
        old = await cluster.node("b@test").run(register_echo, "echo")
        beamish.monitor_nodes(True)
        ref = monitor(old)
        await cluster.restart("b@test")
        new = await cluster.node("b@test").run(register_echo, "echo")
        assert new.node == old.node and new != old  # same name, another creation
        assert new.node_id.creation != old.node_id.creation
        await assert_receive(NodeUp("b@test"), timeout=2)
        await assert_receive(Down(ref, old, "noconnection"), timeout=2)
        send(old, ("echo", self(), "to the old one"))  # dropped: that incarnation is gone
        send(new, ("echo", self(), "to the new one"))
        await assert_receive(("echoed", "to the new one", new))
        await refute_receive(("echoed", "to the old one", ANY), timeout=0.1)


async def test_a_node_that_stops_says_goodbye():
    async with local_cluster("b@test", "c@test", tick_time=30) as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")
        ref = monitor(pid)
        send(pid, ("echo", self(), "sync"))  # in order after the monitor: it is in place
        await assert_receive(("echoed", "sync", pid))
        beamish.monitor_nodes(True)
        await cluster.stop_node("b@test")
        # at once: no need to wait for the 30 s heartbeat period
        await assert_receive(NodeDown("b@test", "disconnect"), timeout=1)
        await assert_receive(Down(ref, pid, ANY), timeout=1)
        assert beamish.nodes() == ["c@test"]


async def test_monitor_node_on_a_node_that_is_not_connected():
    beamish.monitor_node("nowhere@test")
    await assert_receive(NodeDown("nowhere@test", "noconnection"))


@beamish.cluster.remote
async def report_node(to):
    send(to, ("ran on", beamish.node()))


async def start_task_supervisor():
    await beamish.Task.Supervisor.start(name="tasks")


async def test_a_task_supervisor_child_started_from_another_node():
    async with local_cluster("b@test") as cluster:
        await cluster.node("b@test").run(start_task_supervisor)
        pid = await beamish.Task.Supervisor.start_child(("tasks", "b@test"), report_node, self())
        assert pid.node == "b@test"
        await assert_receive(("ran on", "b@test"))

        async def not_marked(to):
            send(to, "never")

        with pytest.raises(WireError, match=r"@beamish.cluster.remote"):
            await beamish.Task.Supervisor.start_child(("tasks", "b@test"), not_marked, self())


async def test_a_burst_from_a_sender_that_never_yields_goes_out_in_order():
    async with local_cluster("b@test") as cluster:
        pid = await cluster.node("b@test").run(register_echo, "echo")
        member = cluster.node("a@test").member
        for i in range(5000):  # one turn: the node's outbox for b flushes early, in order
            send(pid, ("echo", self(), i))
        assert sum(len(box) for box in member._outboxes.values()) < 1024
        for i in range(5000):
            await assert_receive(("echoed", i, pid))


class Burst(beamish.Actor):
    """Sends ``count`` messages to ``dest`` in one handle; notes what the loop ran before."""

    def __init__(self, dest, count, seen, tag):
        self.dest, self.count, self.seen, self.tag = dest, count, seen, tag

    def handle(self, message):
        self.seen.append((self.tag, "started", list(turns)))
        asyncio.get_running_loop().call_soon(turns.append, self.tag)
        for i in range(self.count):
            send(self.dest, i)


turns: list[str] = []


@pytest.mark.parametrize(("count", "cut"), [(2000, True), (10, False)])
async def test_an_actor_that_fills_a_frame_ends_the_tick_so_the_frame_is_written(count, cut):
    """The BEAM makes a sender pay for a busy distribution port; here an actor whose sends
    fill a frame for another node ends the scheduler's tick, so the loop turns (the engine's
    client writes) before the next actor runs. Small senders share one tick."""
    async with local_cluster("b@test") as cluster:
        await cluster.node("b@test").run(register_echo, "sink")
        turns.clear()
        seen: list = []
        senders = [beamish.spawn(Burst(("sink", "b@test"), count, seen, t)) for t in "xy"]
        for pid in senders:
            send(pid, "go")
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        assert seen[0] == ("x", "started", [])
        assert seen[1] == ("y", "started", ["x"] if cut else [])
        for pid in senders:
            beamish.exit(pid, "kill")
