"""wait_until_idle: every process has handled what was sent to it."""

from __future__ import annotations

import pytest

import beamish
from beamish import Actor, receive, send
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
