"""VirtualClock: alone, then driving a runtime (timers, timeouts, GenServer, Supervisor)."""

from __future__ import annotations

import asyncio
import math

import pytest

import beamish
from beamish import (
    CallError,
    Down,
    GenServer,
    NoReply,
    Ok,
    Reply,
    Supervisor,
    receive,
    send,
)
from beamish.testing import (
    VirtualClock,
    assert_receive,
    assert_received,
    refute_received,
    start_supervised,
    wait_until_idle,
)

# -- the clock alone --------------------------------------------------------------------------


def test_virtual_clock_fires_due_timers_in_time_order():
    clock = VirtualClock()
    fired = []
    clock.call_later(3, fired.append, "c")
    clock.call_later(1, fired.append, "a")
    clock.call_later(2, fired.append, "b1")
    clock.call_later(2, fired.append, "b2")  # same deadline: in the order set
    clock.advance_nowait(2.5)
    assert fired == ["a", "b1", "b2"]
    assert clock.now() == 2.5
    clock.advance_nowait(0.5)
    assert fired == ["a", "b1", "b2", "c"]


def test_virtual_clock_callbacks_see_their_own_deadline():
    clock = VirtualClock(start=100)
    seen = []
    clock.call_later(1, lambda: seen.append(clock.now()))
    clock.call_later(4, lambda: seen.append(clock.now()))
    clock.advance_nowait(10)
    assert seen == [101, 104]
    assert clock.now() == 110


def test_virtual_clock_fires_timers_set_by_callbacks_within_the_window():
    clock = VirtualClock()
    fired = []

    def tick(n):
        fired.append((n, clock.now()))
        clock.call_later(1, tick, n + 1)

    clock.call_later(1, tick, 1)
    clock.advance_nowait(3.5)
    assert fired == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert clock.next_deadline() == 4.0


def test_virtual_clock_cancel_and_introspection():
    clock = VirtualClock()
    fired = []
    keep = clock.call_later(2, fired.append, "kept")
    drop = clock.call_later(1, fired.append, "dropped")
    assert (keep.when(), drop.when()) == (2, 1)
    assert clock.pending_timers == 2 and clock.next_deadline() == 1
    drop.cancel()
    drop.cancel()  # idempotent
    assert drop.cancelled() and not keep.cancelled()
    assert clock.pending_timers == 1 and clock.next_deadline() == 2
    clock.advance_nowait(5)
    assert fired == ["kept"]
    keep.cancel()  # after it fired: a no-op
    assert not keep.cancelled()
    assert clock.pending_timers == 0 and clock.next_deadline() is None
    assert repr(clock) == "<VirtualClock now=5.0 pending_timers=0>"
    assert repr(keep) == "<VirtualTimer when=2.0 fired>"


def test_virtual_clock_forgets_cancelled_timers():
    clock = VirtualClock()
    for _ in range(1000):
        clock.call_later(1, print).cancel()
    assert clock.pending_timers == 0
    assert len(clock._heap) < 200


def test_virtual_clock_due_timers_need_no_advance_on_a_loop():
    async def main():
        clock = VirtualClock()
        clock.bind(asyncio.get_running_loop())
        fired = []
        clock.call_later(0, fired.append, "now")
        clock.call_later(-1, fired.append, "overdue")
        await asyncio.sleep(0)
        return fired, clock.now()

    assert asyncio.run(main()) == (["now", "overdue"], 0.0)


def test_virtual_clock_without_a_loop_fires_due_timers_on_advance():
    clock = VirtualClock()
    fired = []
    clock.call_later(0, fired.append, "now")
    assert fired == []
    clock.advance_nowait(0)
    assert fired == ["now"]


@pytest.mark.parametrize("bad", [-1, math.inf, math.nan, True, "1"])
def test_virtual_clock_advance_needs_finite_seconds(bad):
    with pytest.raises(ValueError, match=r"advance_nowait\(\) needs a finite number of seconds"):
        VirtualClock().advance_nowait(bad)


def test_virtual_clock_refuses_to_advance_from_its_own_callback():
    clock = VirtualClock()
    errors = []

    def nested():
        try:
            clock.advance_nowait(1)
        except RuntimeError as exc:
            errors.append(str(exc))

    clock.call_later(1, nested)
    clock.advance_nowait(1)
    assert "already being advanced" in errors[0]


def test_virtual_clock_callback_errors_go_to_the_loop_handler():
    async def main():
        clock = VirtualClock()
        loop = asyncio.get_running_loop()
        clock.bind(loop)
        reported = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
        clock.call_later(1, lambda: 1 / 0)
        clock.call_later(2, reported.append, "next timer still fires")
        clock.advance_nowait(2)
        return reported

    first, second = asyncio.run(main())
    assert isinstance(first, ZeroDivisionError) and second == "next timer still fires"


def test_virtual_clock_bound_to_one_loop_at_a_time():
    clock = VirtualClock()

    async def bind():
        clock.bind(asyncio.get_running_loop())
        other = asyncio.new_event_loop()
        try:
            with pytest.raises(RuntimeError, match="already bound to another running"):
                clock.bind(other)
        finally:
            other.close()

    asyncio.run(bind())


def test_virtual_clock_start_must_be_finite():
    with pytest.raises(ValueError, match="finite number"):
        VirtualClock(start=math.inf)


# -- driving a runtime --------------------------------------------------------------------


async def test_virtual_clock_fixture_is_the_runtime_clock(virtual_clock, runtime):
    assert runtime.clock is virtual_clock
    assert beamish.monotonic() == virtual_clock.now() == 0.0
    await virtual_clock.advance(12.5)
    assert beamish.monotonic() == 12.5


@pytest.mark.beamish(clock="virtual")
async def test_virtual_clock_from_the_marker(runtime):
    assert isinstance(runtime.clock, VirtualClock)


async def test_send_after_and_read_timer_follow_the_virtual_clock(virtual_clock):
    ref = beamish.send_after(beamish.self(), "tick", 60)
    assert beamish.read_timer(ref) == 60
    await virtual_clock.advance(59)
    assert beamish.read_timer(ref) == 1
    await refute_received("tick")
    await virtual_clock.advance(1)
    assert await assert_received("tick") == "tick"


async def test_receive_timeout_on_the_virtual_clock(virtual_clock):
    me = beamish.self()

    async def waiter():
        try:
            await receive("never", timeout=10)
        except TimeoutError as exc:
            send(me, ("timed out", beamish.monotonic(), str(exc)))

    beamish.spawn_link(waiter)
    await virtual_clock.advance(9.99)
    await refute_received()
    await virtual_clock.advance(0.01)
    assert await assert_received() == (
        "timed out", 10.0,
        "receive() timed out after 10s: none of the 0 message(s) in the mailbox matched 'never'",
    )


async def test_sleep_on_the_virtual_clock(virtual_clock):
    me = beamish.self()

    async def sleeper():
        await beamish.sleep(3600)
        send(me, "awake")

    beamish.spawn_link(sleeper)
    await virtual_clock.advance(3599)
    await refute_received()
    await virtual_clock.advance(1)
    await assert_received("awake")


async def test_a_zero_delay_timer_fires_without_an_advance(virtual_clock):
    beamish.send_after(beamish.self(), "now", 0)
    assert await assert_receive("now") == "now"
    assert virtual_clock.now() == 0


class Silent(GenServer):
    """Never answers a call."""

    def init(self, arg):
        return Ok(None)

    def handle_call(self, request, from_, state):
        return NoReply(state)


async def test_call_timeout_on_the_virtual_clock(virtual_clock):
    server = await start_supervised(Silent)
    me = beamish.self()

    async def caller():
        try:
            await GenServer.call(server, "hello?", 5)
        except CallError as failed:
            send(me, (failed.why, beamish.monotonic()))

    beamish.spawn_link(caller)
    await virtual_clock.advance(4)
    await refute_received()
    await virtual_clock.advance(1)
    assert await assert_received() == ("timeout", 5.0)


class Idle(GenServer):
    """Tells its owner each time it has been idle for 30 seconds."""

    def init(self, owner):
        return Ok(owner, 30)

    def handle_call(self, request, from_, owner):
        return Reply("ok", owner, 30)

    def handle_info(self, message, owner):
        if message == "timeout":
            send(owner, ("idle", beamish.monotonic()))
        return NoReply(owner, 30)


async def test_gen_server_idle_timeout_on_the_virtual_clock(virtual_clock):
    server = await start_supervised((Idle, beamish.self()))
    await virtual_clock.advance(29)
    assert await GenServer.call(server, "work") == "ok"  # at t=29: the idle time restarts
    await virtual_clock.advance(29)
    await refute_received()
    await virtual_clock.advance(1)
    assert await assert_received() == ("idle", 59.0)
    # `await advance` lets the server re-arm its timeout after each one: three more fire
    await virtual_clock.advance(90)
    assert [await assert_received() for _ in range(3)] == [
        ("idle", 89.0), ("idle", 119.0), ("idle", 149.0)
    ]
    await refute_received()


async def test_advance_nowait_fires_timers_but_lets_no_process_react(virtual_clock):
    await start_supervised((Idle, beamish.self()))
    await wait_until_idle()
    virtual_clock.advance_nowait(90)  # the timeout at 30 fires; nothing re-arms it meanwhile
    await wait_until_idle()
    assert await assert_received() == ("idle", 90.0)  # handled after the advance, at t=90
    await refute_received()


class Crashy(GenServer):
    def init(self, arg):
        return Ok(None)

    def handle_cast(self, request, state):
        raise RuntimeError("crash on purpose")


class Tree(Supervisor):
    """At most one restart in any 5 seconds."""

    def init(self, arg):
        return Supervisor.init([Crashy], max_restarts=1, max_seconds=5)


async def _crash_child(sup):
    """Crash Tree's child and let the node react; returns the pid that crashed."""
    [child] = await Supervisor.which_children(sup)
    GenServer.cast(child.pid, "crash")
    await wait_until_idle()
    return child.pid


async def _child_pid(sup):
    [child] = await Supervisor.which_children(sup)
    return child.pid


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_supervisor_restart_window_on_the_virtual_clock(virtual_clock, caplog):
    # temporary: when Tree gives up, the test's own supervisor must not restart it
    sup = await start_supervised(Tree, restart="temporary")
    ref = beamish.monitor(sup)
    crashed = await _crash_child(sup)  # t=0: the first restart
    assert await _child_pid(sup) != crashed
    await virtual_clock.advance(6)
    crashed = await _crash_child(sup)  # t=6: the restart at t=0 has left the 5 s window
    assert await _child_pid(sup) != crashed
    await refute_received(Down)
    await virtual_clock.advance(0.5)
    await _crash_child(sup)  # t=6.5: a second restart within 5 s is one too many
    assert await assert_received(Down) == Down(ref, sup, "shutdown")
    assert "shutting down: restart intensity exceeded (2 restarts in 5 s" in caplog.text
