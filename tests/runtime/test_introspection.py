"""process_info, processes, statistics, and the kernel's telemetry events."""

from __future__ import annotations

import pytest

import beamish
from beamish import Actor, Down, receive, send, spawn, telemetry
from beamish.testing import capture_events, wait_until_idle


class Quiet(Actor):
    def handle(self, message):
        pass


async def waiting_body():
    await receive("never")


async def test_process_info_of_an_actor():
    pid = beamish.spawn_opt(Quiet(), name="quiet")
    send(pid, 1)
    send(pid, 2)
    info = beamish.process_info(pid)
    assert info.status == "runnable" and info.message_queue_len == 2
    await beamish.sleep(0)
    info = beamish.process_info(pid)
    assert info.pid == pid and info.name == "quiet" and info.kind == "actor"
    assert info.status == "waiting" and info.message_queue_len == 0
    assert info.messages_handled == 2
    assert "Quiet" in info.initial_call and "Quiet.handle" in info.current_function
    assert info.parent == beamish.self()
    assert 100 < info.memory < 5000
    beamish.exit(pid, "kill")


async def test_process_info_of_a_task_shaped_process():
    pid = spawn(waiting_body)
    send(pid, "not matched")
    await wait_until_idle()  # it looked at the message and waits again
    info = beamish.process_info(pid)
    assert info.kind == "task" and info.status == "waiting"
    assert info.message_queue_len == 1
    assert "receive" in info.current_function
    assert "waiting_body" in info.initial_call
    me = beamish.process_info(beamish.self())
    assert me.status == "running"
    beamish.exit(pid, "kill")


async def test_process_info_of_a_dead_process_is_none():
    pid, ref = beamish.spawn_monitor(lambda: None)
    await receive(Down, timeout=1)
    assert beamish.process_info(pid) is None


async def test_processes_and_statistics():
    before = beamish.statistics()
    pids = [spawn(waiting_body) for _ in range(3)]
    assert set(pids) <= set(beamish.processes())
    stats = beamish.statistics()
    assert stats.process_count == before.process_count + 3
    assert stats.spawned == before.spawned + 3
    assert stats.process_limit == 1_048_576 and stats.node == "nonode@nohost"
    for pid in pids:
        beamish.exit(pid, "kill")
    assert beamish.statistics().exited == before.exited + 3


async def echo_body():
    while True:
        reply_to, message = await receive()
        send(reply_to, message)


async def test_statistics_count_each_wakeup_the_runtime_causes():
    def wakeups():
        return beamish.statistics().wakeups

    start = wakeups()
    pid = spawn(echo_body)
    assert wakeups() == start + 1  # a task due to start
    await wait_until_idle()
    start = wakeups()
    send(pid, (beamish.self(), "a"))
    send(pid, (beamish.self(), "b"))
    assert wakeups() == start + 1  # woken once: the second message waits for it, running
    assert await receive(timeout=1) == "a" and await receive(timeout=1) == "b"
    await wait_until_idle()
    start = wakeups()
    actor = spawn(Quiet())
    send(actor, "queued")  # an actor is queued on the run queue, no task woken
    assert wakeups() == start
    beamish.exit(pid, "kill")
    assert wakeups() == start + 1  # its task runs once more, to unwind
    beamish.exit(actor, "kill")


async def test_telemetry_sees_spawn_exit_and_crash():
    async def boom():
        raise ValueError("x")

    with capture_events(("beamish", "process", "spawn"), ("beamish", "process", "exit"),
                        ("beamish", "process", "crash")) as seen:
        pid, ref = beamish.spawn_monitor(boom)
        await receive(Down, timeout=1)
    mine = [(e.event[-1], e.metadata.get("reason")) for e in seen if e.metadata["pid"] == pid]
    assert mine[0] == ("spawn", None)
    assert [kind for kind, _ in mine[1:]] == ["crash", "exit"]
    assert all(isinstance(reason, beamish.Crash) for _, reason in mine[1:])


async def test_a_telemetry_handler_that_raises_is_detached(caplog):
    calls = []

    def bad(event, measurements, metadata, config):
        calls.append(metadata["pid"])
        raise RuntimeError("bad hook")

    telemetry.attach("tests.bad", ("beamish", "process", "spawn"), bad)
    spawn(lambda: None)
    spawn(lambda: None)
    assert len(calls) == 1
    assert "telemetry handler 'tests.bad' failed on event beamish.process.spawn" in caplog.text
    assert "has been detached" in caplog.text
    assert telemetry.list_handlers(("beamish", "process")) == []


async def test_telemetry_refuses_bad_names_and_duplicate_ids():
    with pytest.raises(TypeError, match="tuple of non-empty strings"):
        telemetry.attach("tests.x", "beamish.process.spawn", print)
    telemetry.attach("tests.x", ("app", "thing"), print)
    with pytest.raises(telemetry.HandlerExists, match=r"already attached as 'tests\.x'"):
        telemetry.attach("tests.x", ("app", "other"), print)
    assert telemetry.detach("tests.x") and not telemetry.detach("tests.x")


async def test_pid_and_ref_look_like_the_beam():
    pid = beamish.self()
    assert repr(pid) == f"<0.{pid.id}.0>"
    assert hash(pid) == hash(pid) and pid == pid
    assert pid.node == "nonode@nohost"
    ref = beamish.make_ref()
    assert repr(ref).startswith("#Ref<0.")
    assert ref != beamish.make_ref()
    other = spawn(waiting_body)
    assert pid < other
    beamish.exit(other, "kill")


async def test_process_info_shows_a_woken_task_as_runnable_until_it_runs():
    pid = spawn(waiting_body)
    await wait_until_idle()
    assert beamish.process_info(pid).status == "waiting"
    send(pid, "never")  # matches: its receive is now due to return
    assert beamish.process_info(pid).status == "runnable"
    await wait_until_idle()
    assert beamish.process_info(pid) is None  # it ran and ended
