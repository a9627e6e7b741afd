"""send_after, cancel_timer, read_timer."""

from __future__ import annotations

import time

import pytest

import beamish
from beamish import receive, spawn
from tests.conditions import eventually


async def test_send_after_delivers_after_the_delay():
    t = time.monotonic()
    beamish.send_after(beamish.self(), "tick", 0.05)
    assert await receive(timeout=1) == "tick"
    assert time.monotonic() - t >= 0.045


async def test_cancel_timer_returns_time_left_and_stops_delivery():
    ref = beamish.send_after(beamish.self(), "tick", 10)
    left = beamish.read_timer(ref)
    assert 9 < left <= 10
    cancelled = beamish.cancel_timer(ref)
    assert 9 < cancelled <= 10
    assert beamish.cancel_timer(ref) is None
    assert beamish.read_timer(ref) is None
    assert await receive(timeout=0.05, default=None) is None


async def test_cancel_timer_after_it_fired_returns_none():
    ref = beamish.send_after(beamish.self(), "tick", 0)
    assert await receive(timeout=1) == "tick"
    assert beamish.cancel_timer(ref) is None


async def test_timer_to_a_pid_is_cancelled_when_the_process_exits():
    async def idle():
        await receive()

    pid = spawn(idle)
    ref = beamish.send_after(pid, "late", 10)
    assert beamish.statistics().timers == 1
    beamish.exit(pid, "kill")
    assert beamish.read_timer(ref) is None
    assert beamish.statistics().timers == 0


async def test_timer_to_a_name_resolves_when_it_fires():
    beamish.send_after("later", "found you", 0.02)
    beamish.register("later")
    assert await receive(timeout=1) == "found you"


async def test_timer_to_a_name_nobody_holds_is_dropped():
    beamish.send_after("nobody", "lost", 0)
    await eventually(lambda: beamish.statistics().timers == 0, what="the timer firing")
    assert beamish.statistics().timers == 0


async def test_timer_message_is_isolated_at_set_time():
    data = [1]
    beamish.send_after(beamish.self(), data, 0)
    data.append(2)
    assert await receive(timeout=1) == [1]


async def test_send_after_validates_arguments():
    with pytest.raises(ValueError, match="delay in seconds >= 0"):
        beamish.send_after(beamish.self(), "x", -1)
    with pytest.raises(TypeError, match="Pid or a registered name"):
        beamish.send_after(42, "x", 1)
