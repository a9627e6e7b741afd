"""Links and exit signals: the BEAM's truth table, item by item."""

from __future__ import annotations

import pytest

import beamish
from beamish import Crash, Down, Exit, ProcessExit, receive, send, spawn
from beamish.testing import wait_until_idle


async def idle():
    await receive()


async def linked_idle(to):
    beamish.link(to)
    await receive()


async def test_abnormal_exit_propagates_transitively():  # OTP-SEMANTICS 7
    a = spawn(idle)
    b = spawn(linked_idle, a)
    c = spawn(linked_idle, a)
    refs = {p: beamish.monitor(p) for p in (a, b, c)}
    await wait_until_idle()  # b and c have linked
    beamish.exit(b, "boom")
    downs = {(await receive(Down, timeout=1)).pid: None for _ in range(3)}
    assert set(downs) == {a, b, c}
    assert not any(beamish.is_alive(p) for p in (a, b, c))
    del refs


async def test_exit_reason_is_carried_along_the_chain():
    a = spawn(idle)
    b = spawn(linked_idle, a)
    await wait_until_idle()  # b has linked
    ref = beamish.monitor(a)
    beamish.exit(b, "boom")
    assert await receive(Down, timeout=1) == Down(ref, a, "boom")


async def test_normal_exit_does_not_propagate():  # OTP-SEMANTICS 8
    a = spawn(idle)

    async def finishes():
        beamish.link(a)

    pid, ref = beamish.spawn_monitor(finishes)
    await receive(Down, timeout=1)
    await wait_until_idle()  # the normal exit has reached a
    assert beamish.is_alive(a)
    beamish.exit(a, "kill")


async def test_trapping_process_gets_exit_normal_from_a_link():  # OTP-SEMANTICS 8
    beamish.trap_exit(True)
    pid = beamish.spawn_link(lambda: None)
    assert await receive(Exit, timeout=1) == Exit(pid, "normal")


async def test_exit_normal_to_non_trapping_target_is_ignored():  # OTP-SEMANTICS 10
    beamish.trap_exit(True)
    child = beamish.spawn_link(idle)
    beamish.exit(child, "normal")
    assert await receive(Exit, timeout=0.1, default=None) is None
    assert beamish.is_alive(child)
    beamish.exit(child, "abnormal")
    assert await receive(Exit, timeout=1) == Exit(child, "abnormal")


async def test_exit_self_normal_ends_the_caller():  # OTP-SEMANTICS 11
    beamish.trap_exit(True)

    async def quits():
        beamish.exit(beamish.self(), "normal")
        raise AssertionError("exit(self(), 'normal') must not return")

    child = beamish.spawn_link(quits)
    assert await receive(Exit, timeout=1) == Exit(child, "normal")


async def test_exit_self_normal_in_a_trapping_process_becomes_a_message():
    beamish.trap_exit(True)
    beamish.exit(beamish.self(), "normal")
    assert await receive(timeout=1) == Exit(beamish.self(), "normal")


async def test_shutdown_tuple_propagates_like_an_abnormal_reason():  # OTP-SEMANTICS 13
    a = spawn(idle)
    b = spawn(linked_idle, a)
    await wait_until_idle()  # b has linked
    ref = beamish.monitor(a)
    beamish.exit(b, ("shutdown", "bye"))
    assert await receive(Down, timeout=1) == Down(ref, a, ("shutdown", "bye"))


async def test_shutdown_exit_is_not_logged_as_a_crash(caplog):
    pid, ref = beamish.spawn_monitor(idle)
    beamish.exit(pid, ("shutdown", "bye"))
    await receive(Down, timeout=1)
    assert not [r for r in caplog.records if r.name == "beamish.process"]


async def test_link_is_idempotent_and_unlink_stops_propagation():  # OTP-SEMANTICS 14
    b = spawn(idle)
    beamish.link(b)
    beamish.link(b)
    beamish.link(beamish.self())
    assert beamish.process_info(beamish.self()).links == (b,)
    beamish.unlink(b)
    assert beamish.process_info(b).links == ()
    beamish.exit(b, "crash")
    await wait_until_idle()
    dead = spawn(lambda: None)
    await wait_until_idle()  # it ran and ended
    beamish.unlink(dead)  # never linked, and dead: a no-op
    beamish.unlink(spawn(lambda: None))


async def test_kill_cannot_be_trapped_and_the_target_dies_killed():
    me = beamish.self()

    async def trapper():
        beamish.trap_exit(True)
        send(me, "ready")
        await receive()

    pid, ref = beamish.spawn_monitor(trapper)
    assert await receive("ready", timeout=1) == "ready"
    beamish.exit(pid, "kill")
    assert await receive(Down, timeout=1) == Down(ref, pid, "killed")


async def test_killed_is_what_links_see_after_a_kill():
    beamish.trap_exit(True)
    pid = beamish.spawn_link(idle)
    beamish.exit(pid, "kill")
    assert await receive(Exit, timeout=1) == Exit(pid, "killed")


async def test_kill_over_a_link_can_be_trapped():
    beamish.trap_exit(True)

    async def dies_with_kill():
        raise ProcessExit("kill")

    pid = beamish.spawn_link(dies_with_kill)
    assert await receive(Exit, timeout=1) == Exit(pid, "kill")
    assert beamish.is_alive(beamish.self())


async def test_kill_over_a_link_kills_a_non_trapping_process_with_kill():
    a = spawn(idle)
    ref = beamish.monitor(a)

    async def dies_with_kill():
        beamish.link(a)
        raise ProcessExit("kill")

    spawn(dies_with_kill)
    assert await receive(Down, timeout=1) == Down(ref, a, "kill")


async def test_trapping_process_gets_exit_message_instead_of_dying():
    beamish.trap_exit(True)
    pid = beamish.spawn_link(idle)
    beamish.exit(pid, "boom")
    assert await receive(timeout=1) == Exit(pid, "boom")
    assert beamish.is_alive(beamish.self())


async def test_exit_signal_from_another_process_to_a_trapping_one_names_the_sender():
    beamish.trap_exit(True)
    me = beamish.self()

    async def signaller():
        beamish.exit(me, "go away")

    pid = spawn(signaller)
    assert await receive(timeout=1) == Exit(pid, "go away")


async def test_link_to_dead_pid_gives_noproc_to_a_trapping_caller():
    pid, _ = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    beamish.trap_exit(True)
    beamish.link(pid)
    assert await receive(timeout=1) == Exit(pid, "noproc")


async def test_link_to_dead_pid_kills_a_non_trapping_caller_with_noproc():
    beamish.trap_exit(True)
    dead, _ = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)

    async def linker():
        beamish.link(dead)
        raise AssertionError("link to a dead pid must end a non-trapping caller")

    pid = beamish.spawn_link(linker)
    assert await receive(Exit, timeout=1) == Exit(pid, "noproc")


async def test_crash_reason_carries_exception_and_traceback():
    beamish.trap_exit(True)

    def explode():
        raise ValueError("bad value")

    async def crasher():
        explode()

    pid = beamish.spawn_link(crasher)
    match await receive(Exit, timeout=1):
        case Exit(p, Crash(ValueError() as exc) as crash) if p == pid:
            assert str(exc) == "bad value"
            assert "in explode" in crash.traceback
            assert "ValueError: bad value" in crash.traceback
        case other:
            pytest.fail(f"unexpected {other!r}")


async def test_exit_to_dead_pid_is_a_no_op():
    pid, _ = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    beamish.exit(pid, "kill")


async def test_exit_requires_a_pid():
    with pytest.raises(TypeError, match="exit\\(\\) takes a Pid"):
        beamish.exit("name", "kill")


async def test_exit_signal_killing_the_caller_raises_process_exit_in_it():
    beamish.trap_exit(True)

    async def suicidal():
        other = spawn(idle)
        beamish.link(other)
        try:
            beamish.exit(other, "boom")  # kills other, whose link kills the caller
        except ProcessExit as stop:
            assert stop.reason == "boom"
            raise
        raise AssertionError("unreachable")

    pid = beamish.spawn_link(suicidal)
    assert await receive(Exit, timeout=1) == Exit(pid, "boom")


async def test_long_link_chain_falls_without_deep_recursion():
    first = spawn(idle)
    ref = beamish.monitor(first)
    prev = first
    chain = []
    for _ in range(20_000):
        prev = spawn(linked_idle, prev)
        chain.append(prev)
    await wait_until_idle()  # every link is made
    beamish.exit(chain[-1], "domino")
    assert await receive(Down, timeout=5) == Down(ref, first, "domino")
    assert not any(beamish.is_alive(p) for p in chain)


async def test_actor_killed_while_in_async_handler_stops_there():
    me = beamish.self()

    class Waits(beamish.Actor):
        async def handle(self, message):
            send(me, "started")
            await beamish.sleep(10)
            send(me, "never")

    pid, ref = beamish.spawn_monitor(Waits())
    send(pid, "go")
    assert await receive("started", timeout=1) == "started"
    beamish.exit(pid, "kill")
    assert await receive(Down, timeout=1) == Down(ref, pid, "killed")
    assert await receive("never", timeout=0.05, default=None) is None
