"""wait_until_idle: every process has handled what was sent to it."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import Actor, Agent, Request, Supervisor, receive, reply, request, send
from beamish.testing import assert_received, wait_until_idle


class Sink(Actor):
    def handle(self, message):
        pass


async def test_wait_until_idle_lets_actors_drain_their_mailboxes():
    pid = beamish.spawn_link(Sink())
    for n in range(5000):
        send(pid, n)
    assert beamish.process_info(pid).message_queue_len > 0
    await wait_until_idle()
    assert beamish.process_info(pid).message_queue_len == 0


async def _relay(next_hop):
    message = await receive()
    send(next_hop, message)


async def test_wait_until_idle_follows_task_shaped_processes_hop_by_hop():
    hop = beamish.self()
    for _ in range(50):
        hop = beamish.spawn_link(_relay, hop)
    send(hop, "through fifty processes")
    await wait_until_idle()
    assert await assert_received() == "through fifty processes"


class Caller(Actor):
    """Answers a request by asking the next hop (in an async handler); the last hop
    answers itself."""

    def __init__(self, next_hop):
        self.next_hop = next_hop

    async def handle(self, message):
        match message:
            case Request(reply_to, n):
                reply(reply_to, await request(self.next_hop, n + 1) if self.next_hop else n)


async def test_wait_until_idle_follows_calls_through_their_replies():
    """A reply wakes its caller with no message, no dispatch and no exit: the runtime counts
    that wake-up too. On the way back, each hop is only a reply."""
    hop = None
    for _ in range(20):
        hop = beamish.spawn_link(Caller(hop))
    me = beamish.self()

    async def ask():
        send(me, ("answer", await request(hop, 0)))

    beamish.spawn_link(ask)
    await wait_until_idle()
    assert await assert_received() == ("answer", 19)  # one more at each hop but the last


async def test_wait_until_idle_waits_for_a_restart_under_a_supervisor():
    sup = await Supervisor.start_link([(Agent, lambda: 0)])
    [child] = await Supervisor.which_children(sup)
    beamish.exit(child.pid, "kill")
    await wait_until_idle()  # the supervisor has the exit, restarts, and hears the ack
    [restarted] = await Supervisor.which_children(sup)
    assert type(restarted.pid) is beamish.Pid and restarted.pid != child.pid


async def test_wait_until_idle_waits_for_a_timer_that_is_due():
    beamish.send_after(beamish.self(), "now", 0)
    await wait_until_idle()
    assert await assert_received() == "now"


async def test_wait_until_idle_gives_plain_asyncio_hops_their_turns():
    """Work a process hands on through asyncio, not through the runtime, is not counted;
    two such hops in a row still run before wait_until_idle returns."""
    me = beamish.self()
    loop = asyncio.get_running_loop()

    async def tell():
        send(me, "after two hops")

    async def handing_on():
        await receive()
        loop.call_soon(lambda: loop.create_task(tell()))  # hop 1, then hop 2

    send(beamish.spawn_link(handing_on), "go")
    await wait_until_idle()
    assert await assert_received() == "after two hops"


async def test_wait_until_idle_does_not_wait_for_timers():
    ref = beamish.send_after(beamish.self(), "in an hour", 3600)
    await wait_until_idle()
    assert beamish.read_timer(ref) > 3599
    beamish.cancel_timer(ref)


async def _ping_pong(peer):
    if peer is None:
        peer = await receive()
    while True:
        send(peer, "ball")
        await receive()


async def test_wait_until_idle_times_out_naming_the_busy_processes():
    first = beamish.spawn_opt(_ping_pong, (None,), name="pinger")
    second = beamish.spawn(_ping_pong, first)
    send(first, second)
    with pytest.raises(TimeoutError) as failed:
        await wait_until_idle(timeout=0.1)
    text = str(failed.value)
    assert text.startswith("wait_until_idle() gave up after 0.1s: the node never settled.\n")
    assert "2 process(es) kept running or messaging:\n  <" in text
    assert "(pinger): tests.testing.test_idle._ping_pong, " in text
    assert "message each other forever" in text
    beamish.exit(first, "kill")
    beamish.exit(second, "kill")


async def test_wait_until_idle_rejects_a_bad_timeout():
    with pytest.raises(ValueError, match="timeout in seconds > 0, got 0"):
        await wait_until_idle(timeout=0)


def test_wait_until_idle_outside_a_process_with_an_explicit_runtime():
    async def main():
        async with beamish.Runtime() as rt:
            pid = rt.spawn(Sink())
            for n in range(100):
                send(pid, n)
            await wait_until_idle(rt)
            return rt.process_info(pid).message_queue_len

    assert beamish.run(lambda: 0) == 0  # a loop of its own, like the plugin's
    import asyncio

    assert asyncio.run(main()) == 0
