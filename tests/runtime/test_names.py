"""Registered names."""

from __future__ import annotations

import pytest

import beamish
from beamish import (
    Down,
    InvalidNameError,
    NameTakenError,
    NoProcessError,
    NotRegisteredError,
    receive,
    send,
    spawn,
)


async def idle():
    await receive()


async def test_register_whereis_and_send_by_name():  # OTP-SEMANTICS 19
    pid = spawn(idle)
    beamish.register("svc", pid)
    assert beamish.whereis("svc") == pid
    assert beamish.whereis("unknown") is None
    assert "svc" in beamish.registered()
    send("svc", "ping")
    assert beamish.process_info(pid).message_queue_len == 1
    assert beamish.process_info(pid).name == "svc"
    beamish.exit(pid, "kill")


async def test_names_are_freed_on_exit_and_cannot_be_double_booked():  # OTP-SEMANTICS 20
    p = spawn(idle)
    beamish.register("svc", p)
    other = spawn(idle)
    with pytest.raises(NameTakenError, match=f"already registered to {p!r}") as info:
        beamish.register("svc", other)
    assert info.value.holder == p
    with pytest.raises(NameTakenError, match="already registered as 'svc'"):
        beamish.register("second", p)
    ref = beamish.monitor(p)
    beamish.exit(p, "kill")
    await receive(Down, timeout=1)
    assert beamish.whereis("svc") is None
    beamish.register("svc", other)
    assert beamish.whereis("svc") == other
    beamish.exit(other, "kill")
    del ref


async def test_name_is_released_before_down_messages_go_out():
    me = beamish.self()

    async def watcher(target):
        beamish.monitor(target)
        send(me, "watching")
        await receive(Down)
        # the name is already free when the Down arrives: re-register at once
        send(me, ("free", beamish.whereis("svc")))

    holder = beamish.spawn_opt(idle, name="svc")
    spawn(watcher, holder)
    assert await receive("watching", timeout=1) == "watching"
    beamish.exit(holder, "kill")
    assert await receive(timeout=1) == ("free", None)


async def test_name_is_released_before_exit_signals_go_out():
    beamish.trap_exit(True)
    holder = beamish.spawn_opt(idle, name="svc", link=True)
    beamish.exit(holder, "boom")
    await receive(beamish.Exit, timeout=1)
    beamish.register("svc")  # free already
    assert beamish.whereis("svc") == beamish.self()


async def test_register_wrong_type_or_empty_name_is_an_error_that_teaches():
    with pytest.raises(InvalidNameError, match=r"must be a str, got 42 \(int\)"):
        beamish.register(42)
    with pytest.raises(TypeError):
        beamish.register(("via", "x"))
    with pytest.raises(InvalidNameError, match="empty"):
        beamish.register("")


async def test_register_dead_pid_is_an_error():
    pid, _ = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    with pytest.raises(NoProcessError, match="not alive"):
        beamish.register("late", pid)


async def test_unregister():
    beamish.register("me")
    beamish.unregister("me")
    assert beamish.whereis("me") is None
    beamish.register("me-again")  # a process can take a new name after unregistering
    with pytest.raises(NotRegisteredError, match="cannot unregister 'nobody'"):
        beamish.unregister("nobody")
