"""Monitors: one Down per monitor, noproc, demonitor with flush, monitoring names."""

from __future__ import annotations

import pytest

import beamish
from beamish import Down, receive, send, spawn
from beamish.testing import wait_until_idle


async def idle():
    await receive()


async def test_monitor_delivers_exactly_one_down_with_the_reason():  # OTP-SEMANTICS 16
    pid = spawn(idle)
    ref = beamish.monitor(pid)
    beamish.exit(pid, "oops")
    assert await receive(timeout=1) == Down(ref, pid, "oops")
    assert await receive(timeout=0.05, default=None) is None


async def test_monitor_is_one_way_whatever_the_reason():
    pid = spawn(idle)
    beamish.monitor(pid)
    beamish.exit(pid, "kill")
    await receive(Down, timeout=1)
    assert beamish.is_alive(beamish.self())


async def test_two_monitors_give_two_downs_with_distinct_refs():
    pid = spawn(idle)
    r1, r2 = beamish.monitor(pid), beamish.monitor(pid)
    assert r1 != r2
    beamish.exit(pid, "bye")
    downs = {await receive(timeout=1), await receive(timeout=1)}
    assert downs == {Down(r1, pid, "bye"), Down(r2, pid, "bye")}


async def test_monitor_dead_pid_gives_immediate_noproc():  # OTP-SEMANTICS 17
    pid, _ = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    ref = beamish.monitor(pid)
    assert await receive(timeout=0) == Down(ref, pid, "noproc")


async def test_monitor_by_name():
    pid = beamish.spawn_opt(idle, name="svc")
    ref = beamish.monitor("svc")
    beamish.exit(pid, "gone")
    assert await receive(timeout=1) == Down(ref, pid, "gone")
    ref2 = beamish.monitor("svc")
    assert await receive(timeout=0) == Down(ref2, "svc", "noproc")


async def test_demonitor_stops_the_down():
    pid = spawn(idle)
    ref = beamish.monitor(pid)
    assert beamish.demonitor(ref) is True
    assert beamish.demonitor(ref) is False
    beamish.exit(pid, "kill")
    assert await receive(timeout=0.05, default=None) is None


async def test_demonitor_flush_removes_a_pending_down():
    pid = spawn(idle)
    ref = beamish.monitor(pid)
    send(beamish.self(), "keep me")
    beamish.exit(pid, "kill")
    await beamish.sleep(0)
    assert beamish.process_info(beamish.self()).message_queue_len == 2
    assert beamish.demonitor(ref, flush=True) is False
    assert await receive(timeout=0) == "keep me"
    assert await receive(timeout=0, default=None) is None


async def test_demonitor_flush_keeps_downs_of_other_monitors():
    a, b = spawn(idle), spawn(idle)
    ra, rb = beamish.monitor(a), beamish.monitor(b)
    beamish.exit(a, "kill")
    beamish.exit(b, "kill")
    beamish.demonitor(ra, flush=True)
    assert await receive(timeout=1) == Down(rb, b, "killed")


async def test_monitors_of_a_dead_watcher_are_removed_from_the_target():
    target = spawn(idle)

    async def watcher():
        beamish.monitor(target)

    pid, ref = beamish.spawn_monitor(watcher)
    await receive(Down, timeout=1)
    assert beamish.process_info(target).monitored_by == ()
    beamish.exit(target, "kill")


async def test_monitor_wrong_type_is_an_error():
    with pytest.raises(TypeError, match="monitor\\(\\) takes a Pid or a registered name"):
        beamish.monitor(42)
    with pytest.raises(TypeError, match="demonitor\\(\\) takes the Ref"):
        beamish.demonitor("ref")


async def test_process_info_lists_monitors_both_ways():
    pid = spawn(idle)
    beamish.monitor(pid)
    assert beamish.process_info(beamish.self()).monitors == (pid,)
    assert beamish.process_info(pid).monitored_by == (beamish.self(),)
    beamish.exit(pid, "kill")
    await receive(Down, timeout=1)


async def test_wait_exit_returns_the_reason():
    pid = spawn(idle)
    spawn(lambda: beamish.exit(pid, "bye"))
    assert await beamish.wait_exit(pid, timeout=1) == "bye"
    assert await beamish.wait_exit(pid) == "noproc"


async def test_wait_exit_times_out_and_leaves_no_watch():
    pid = spawn(idle)
    with pytest.raises(TimeoutError, match="still alive"):
        await beamish.wait_exit(pid, timeout=0.01)
    assert beamish.process_info(pid).monitored_by == ()
    beamish.exit(pid, "kill")


async def test_wait_exit_works_in_an_actor_async_handler():
    me = beamish.self()
    target = spawn(idle)

    class Waiter(beamish.Actor):
        async def handle(self, message):
            send(me, ("reason", await beamish.wait_exit(message)))

    waiter = spawn(Waiter())
    send(waiter, target)
    await wait_until_idle()  # the waiter watches the target
    beamish.exit(target, "done")
    assert await receive(timeout=1) == ("reason", "done")
    beamish.exit(waiter, "kill")


async def test_exit_reasons_are_isolated():
    reason = ["mutable"]

    async def leaves():
        raise beamish.ProcessExit(reason)

    pid, ref = beamish.spawn_monitor(leaves)
    down = await receive(Down, timeout=1)
    reason.append("changed")
    assert down.reason == ["mutable"]


async def test_demonitor_flush_inside_an_actor_handler_keeps_later_messages():
    """The flush edits the mailbox the scheduler is draining, in place."""
    me = beamish.self()

    class Flusher(beamish.Actor):
        def handle(self, message):
            match message:
                case ("watch", target):
                    self.ref = beamish.monitor(target)
                case "flush":
                    beamish.demonitor(self.ref, flush=True)
                case other:
                    send(me, ("got", other))

    target = spawn(idle)
    flusher = spawn(Flusher())
    send(flusher, ("watch", target))
    await wait_until_idle()  # the flusher monitors the target
    # queued in one go: "flush" runs while the Down and "after" wait behind it
    send(flusher, "flush")
    beamish.exit(target, "kill")
    send(flusher, "after")
    assert await receive(timeout=1) == ("got", "after")
    assert await receive(timeout=0.05, default=None) is None  # the Down was flushed
    beamish.exit(flusher, "kill")


async def test_on_exit_calls_back_once_with_the_reason_and_can_be_cancelled():
    seen = []
    pid = spawn(idle)
    beamish.on_exit(pid, seen.append)
    cancel = beamish.on_exit(pid, lambda reason: seen.append(("cancelled?", reason)))
    cancel()
    beamish.exit(pid, "gone")
    assert seen == ["gone"]
    beamish.on_exit(pid, seen.append)  # already dead: at once
    assert seen == ["gone", "noproc"]
    with pytest.raises(TypeError, match="needs a callable"):
        beamish.on_exit(beamish.self(), 42)


async def test_actor_exited_hook_runs_on_every_exit_even_a_kill():
    released = []

    class Holder(beamish.Actor):
        def handle(self, message):
            pass

        def exited(self, reason):
            released.append(reason)

    for reason in ("kill", "shutdown"):
        pid = spawn(Holder())
        beamish.exit(pid, reason)
    assert released == ["killed", "shutdown"]
