"""send and receive: ordering, dead and unregistered destinations, selective receive, timeouts."""

from __future__ import annotations

import time

import pytest

import beamish
from beamish import ANY, Down, NotRegisteredError, receive, send, spawn


async def test_send_to_self_and_receive_in_order():
    me = beamish.self()
    for i in range(1000):
        send(me, i)
    assert [await receive(timeout=1) for _ in range(1000)] == list(range(1000))


async def test_send_order_is_kept_per_sender_across_processes():
    me = beamish.self()

    async def sender(tag):
        for i in range(200):
            send(me, (tag, i))

    for tag in "abc":
        spawn(sender, tag)
    got = [await receive(timeout=1) for _ in range(600)]
    for tag in "abc":
        assert [i for t, i in got if t == tag] == list(range(200))


async def test_send_to_dead_pid_is_silently_dropped():
    pid, ref = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    assert send(pid, "anyone there?") is None


async def test_send_to_unregistered_name_raises():
    with pytest.raises(NotRegisteredError, match="no process is registered under that name"):
        send("nobody", "hello")


async def test_send_to_wrong_destination_type_raises():
    with pytest.raises(TypeError, match="a destination is a Pid or a registered name"):
        send(42, "hello")


async def test_send_to_registered_name():
    beamish.register("me")
    send("me", "by name")
    assert await receive(timeout=1) == "by name"


async def test_receive_selective_leaves_other_messages_in_order():  # OTP-SEMANTICS 1
    me = beamish.self()
    send(me, "a")
    send(me, ("b", 1))
    send(me, "c")
    assert await receive(("b", ANY), timeout=1) == ("b", 1)
    assert await receive(timeout=1) == "a"
    assert await receive(timeout=1) == "c"


async def test_receive_selective_waits_for_a_matching_message_and_skips_others():
    me = beamish.self()

    async def later():
        send(me, "noise-1")
        await beamish.sleep(0.02)  # the subject: the rest comes later, while the receive waits
        send(me, "noise-2")
        send(me, ("reply", 7))

    spawn(later)
    assert await receive(("reply", int), timeout=2) == ("reply", 7)
    assert [await receive(timeout=1), await receive(timeout=1)] == ["noise-1", "noise-2"]


async def test_receive_several_patterns_take_the_first_matching_message():
    me = beamish.self()
    send(me, "x")
    send(me, 5)
    send(me, b"y")
    assert await receive(int, bytes, timeout=1) == 5
    assert await receive(int, bytes, timeout=1) == b"y"
    assert await receive(timeout=1) == "x"


async def test_receive_after_zero_polls():  # OTP-SEMANTICS 2
    t = time.monotonic()
    with pytest.raises(TimeoutError, match="empty mailbox"):
        await receive(timeout=0)
    assert await receive(timeout=0, default="nothing") == "nothing"
    assert time.monotonic() - t < 0.5


async def test_receive_after_t_times_out_after_t():
    t = time.monotonic()
    assert await receive(timeout=0.05, default=None) is None
    elapsed = time.monotonic() - t
    assert 0.045 <= elapsed < 0.5


async def test_receive_timeout_names_the_unmatched_messages():
    send(beamish.self(), "other")
    with pytest.raises(TimeoutError, match=r"none of the 1 message\(s\) .* matched 'x'"):
        await receive("x", timeout=0.01)
    assert await receive(timeout=0) == "other"


async def test_receive_message_before_timeout_wins():
    me = beamish.self()

    async def sender():
        await beamish.sleep(0.02)  # the subject: a message that comes while the receive waits
        send(me, "in time")

    spawn(sender)
    assert await receive(timeout=1) == "in time"


async def test_receive_infinite_waits_until_a_message():
    me = beamish.self()

    async def sender():
        await beamish.sleep(0.05)  # the subject: a message that comes while the receive waits
        send(me, "finally")

    spawn(sender)
    assert await receive() == "finally"


async def test_receive_with_match_statement_reads_naturally():
    me = beamish.self()
    send(me, ("add", 2, 3, me))
    match await receive(timeout=1):
        case ("add", a, b, reply_to):
            send(reply_to, a + b)
        case other:
            pytest.fail(f"unexpected {other!r}")
    assert await receive(timeout=1) == 5


async def test_receive_by_class_and_predicate():
    me = beamish.self()
    ref = beamish.make_ref()
    send(me, 3)
    send(me, Down(ref, me, "x"))
    send(me, 10)
    assert await receive(Down, timeout=1) == Down(ref, me, "x")
    assert await receive(lambda m: m > 5, timeout=1) == 10
    assert await receive(timeout=1) == 3


async def test_receive_busy_loop_yields_to_other_processes():
    """A process that always finds a message waiting still lets others run."""
    me = beamish.self()
    ticks = []

    async def ticker():
        for i in range(3):
            ticks.append(i)
            await beamish.sleep(0)

    for i in range(5000):
        send(me, i)
    spawn(ticker)
    first_seen = None
    for i in range(5000):
        await receive()
        if ticks and first_seen is None:
            first_seen = i
    assert first_seen is not None and first_seen < 1000


async def test_receive_nowait_takes_a_waiting_match_or_returns_default():
    me = beamish.self()
    send(me, "a")
    send(me, ("b", 1))
    assert beamish.receive_nowait(("b", ANY)) == ("b", 1)
    assert beamish.receive_nowait(int) is None
    assert beamish.receive_nowait(int, default="none") == "none"
    assert beamish.receive_nowait() == "a"
    assert beamish.receive_nowait() is None


async def test_receive_nowait_works_in_a_plain_actor_handler():
    me = beamish.self()

    class Poller(beamish.Actor):
        def handle(self, message):
            if message == "poll":
                send(me, ("polled", beamish.receive_nowait("extra")))

    pid = spawn(Poller())
    send(pid, "poll")
    send(pid, "extra")  # queued behind "poll": taken by the poll, never handled
    assert await receive(timeout=1) == ("polled", "extra")
    beamish.exit(pid, "kill")
