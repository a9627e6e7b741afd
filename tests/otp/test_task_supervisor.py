"""Task.Supervisor, by the reference behaviours (OTP-SEMANTICS section 9; item numbers in names)."""

from __future__ import annotations

import pytest

import beamish
from beamish import (
    CallError,
    Crash,
    Down,
    Exit,
    GenServer,
    NoReply,
    Ok,
    ProcessExit,
    Reply,
    Supervisor,
    SupervisorError,
    Task,
    receive,
    send,
)
from beamish._otp.task.supervisor import TaskSupervisor
from beamish.testing import wait_until_idle


async def wait_for_go(*_):
    await receive("go")
    return "done"


async def crash(*_):
    raise ValueError("task failed")


async def exit_with(reason):
    raise ProcessExit(reason)


async def sleep_then_return(n):
    await beamish.sleep(n * 0.005)
    return n


async def mailbox():
    left = []
    while (message := await receive(timeout=0, default=None)) is not None:
        left.append(message)
    return left


def links():
    return list(beamish.process_info(beamish.self()).links)


async def test_task_supervisor_is_task_dot_supervisor():
    assert Task.Supervisor is TaskSupervisor


async def test_task_supervisor_async_115():
    sup = await Task.Supervisor.start_link()
    task = await Task.Supervisor.async_(sup, wait_for_go)
    assert await Task.Supervisor.children(sup) == [task.pid]
    assert task.pid in links()  # linked to the caller (and to the supervisor)
    assert task.pid in beamish.process_info(beamish.self()).monitors
    send(task.pid, "go")
    assert await Task.await_(task) == "done"

    # failures propagate as for Task.async_ (item 92)
    async def owner():
        await Task.Supervisor.async_(sup, crash)
        await receive("never")

    pid, ref = beamish.spawn_monitor(owner)
    down = await receive(Down, timeout=1)
    assert isinstance(down.reason, Crash) and str(down.reason.exception) == "task failed"
    beamish.trap_exit(True)
    task = await Task.Supervisor.async_(sup, exit_with, "unknown")
    with pytest.raises(CallError) as info:
        await task
    assert info.value.reason == ("unknown", ("Task.await", task, 5.0))
    await GenServer.stop(sup)


async def test_task_supervisor_async_nolink_116():
    sup = await Task.Supervisor.start_link()
    task = await Task.Supervisor.async_nolink(sup, lambda: 42)
    assert task.pid not in links()
    assert await receive((task.ref, 42), timeout=1) == (task.ref, 42)
    assert await receive(Down, timeout=1) == Down(task.ref, task.pid, "normal")

    task = await Task.Supervisor.async_nolink(sup, crash)
    result = await Task.yield_(task, 1)  # the crash does not touch the caller
    assert result[0] == "exit" and isinstance(result[1], Crash)
    task = await Task.Supervisor.async_nolink(sup, exit_with, "boom")
    with pytest.raises(CallError) as info:
        await task
    assert info.value.why == "boom"
    assert await mailbox() == []
    await GenServer.stop(sup)


async def test_task_supervisor_async_nolink_results_reach_handle_info():
    class Fetcher(GenServer):
        def init(self, sup):
            return Ok({"sup": sup, "seen": []})

        async def handle_call(self, request, from_, state):
            match request:
                case ("fetch", value):
                    await Task.Supervisor.async_nolink(state["sup"], lambda: value)
                    return Reply("started", state)
                case "seen":
                    return Reply(state["seen"], state)

        def handle_info(self, message, state):
            match message:
                case (beamish.Ref(), result):
                    state["seen"].append(("result", result))
                case Down(_, _, reason):
                    state["seen"].append(("down", reason))
            return NoReply(state)

    sup = await Task.Supervisor.start_link()
    server = await Fetcher.start_link(sup)
    assert await GenServer.call(server, ("fetch", "page")) == "started"
    await wait_until_idle()
    assert await GenServer.call(server, "seen") == [("result", "page"), ("down", "normal")]
    await GenServer.stop(server)
    await GenServer.stop(sup)


async def test_task_supervisor_max_children_118():
    sup = await Task.Supervisor.start_link(max_children=1)
    running = await Task.Supervisor.async_(sup, wait_for_go)
    for start in (Task.Supervisor.async_, Task.Supervisor.async_nolink):
        with pytest.raises(SupervisorError) as info:
            await start(sup, wait_for_go)
        assert info.value.reason == "max_children"
        assert "reached the maximum number of tasks" in str(info.value)

    stream = Task.Supervisor.async_stream(sup, range(3), wait_for_go, max_concurrency=2)
    with pytest.raises(SupervisorError) as info:
        async for _ in stream:
            pass
    assert "reached the maximum number of tasks" in str(info.value)
    assert "max_concurrency" in str(info.value)
    assert set(links()) == {sup, running.pid}  # nothing else is left linked
    assert await mailbox() == []
    send(running.pid, "go")
    assert await running == "done"
    await GenServer.stop(sup)


async def test_task_supervisor_per_task_shutdown_119():
    beamish.trap_exit(True)
    sup = await Task.Supervisor.start_link()
    linked = await Task.Supervisor.async_(sup, wait_for_go, shutdown="brutal_kill")
    unlinked = await Task.Supervisor.async_nolink(sup, wait_for_go, shutdown="brutal_kill")
    child = await Task.Supervisor.start_child(sup, wait_for_go, shutdown="brutal_kill")
    gentle = await Task.Supervisor.async_nolink(sup, wait_for_go)  # default: 5 s
    child_ref = beamish.monitor(child)
    stopped = beamish.wait_exit(sup)
    beamish.exit(sup, "shutdown")
    assert await stopped == "shutdown"
    downs = {d.ref: d.reason for d in [await receive(Down, timeout=1) for _ in range(4)]}
    assert downs[linked.ref] == downs[unlinked.ref] == downs[child_ref] == "killed"
    assert downs[gentle.ref] == "shutdown"


async def test_task_supervisor_await_timeout_drops_late_replies_121():
    sup = await Task.Supervisor.start_link()
    task = await Task.Supervisor.async_(sup, wait_for_go)
    with pytest.raises(CallError) as info:
        await Task.await_(task, 0)
    assert info.value.reason == ("timeout", ("Task.await", task, 0))
    exited = beamish.wait_exit(task.pid)
    send(task.pid, "go")
    assert await exited == "normal"
    await wait_until_idle()
    assert await mailbox() == []
    await GenServer.stop(sup)


async def test_task_supervisor_async_stream_122():
    sup = await Task.Supervisor.start_link()
    stream = Task.Supervisor.async_stream(sup, range(1, 5), sleep_then_return)
    assert [item async for item in stream] == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]

    async def zero_or_forever(n):
        if n is None:
            await receive("never")
        return n

    async with Task.Supervisor.async_stream(sup, [0, None, None], zero_or_forever) as stream:
        assert await anext(stream) == ("ok", 0)
    assert links() == [sup]  # the early stop left only the supervisor linked
    assert await mailbox() == []
    await wait_until_idle()
    assert await Task.Supervisor.children(sup) == []

    stream = Task.Supervisor.async_stream_nolink(sup, range(1, 5), exit_with)  # not trapping
    assert [item async for item in stream] == [
        ("exit", 1), ("exit", 2), ("exit", 3), ("exit", 4),
    ]
    with pytest.raises(ValueError, match="shutdown must be"):
        Task.Supervisor.async_stream(sup, [1], abs, shutdown=-1)
    await GenServer.stop(sup)


async def test_task_supervisor_start_child_children_and_terminate_child():
    me = beamish.self()
    sup = await Task.Supervisor.start_link(name="tasks")
    pid = await Task.Supervisor.start_child("tasks", wait_for_go)
    assert pid not in links()
    assert await Task.Supervisor.children("tasks") == [pid]
    await Task.Supervisor.terminate_child("tasks", pid)
    assert not beamish.is_alive(pid)
    with pytest.raises(SupervisorError) as info:
        await Task.Supervisor.terminate_child("tasks", pid)
    assert info.value.reason == "not_found"

    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ProcessExit("try again")
        send(me, "finished")

    await Task.Supervisor.start_child("tasks", flaky, restart="transient")
    assert await receive("finished", timeout=1) == "finished"
    assert len(attempts) == 3
    with pytest.raises(ValueError, match="restart must be one of"):
        await Task.Supervisor.start_child("tasks", flaky, restart="sometimes")
    await GenServer.stop(sup)


async def test_task_supervisor_in_a_supervision_tree():
    spec = Task.Supervisor.child_spec({"name": "jobs", "max_children": 2})
    assert (spec.id, spec.type) == ("jobs", "supervisor")
    with pytest.raises(TypeError, match="unknown option"):
        Task.Supervisor.child_spec({"nmae": "jobs"})
    root = await Supervisor.start_link([(Task.Supervisor, {"name": "jobs"})])
    task = await Task.Supervisor.async_("jobs", lambda: "ran")
    assert await task == "ran"
    await Supervisor.stop(root)
    assert [m for m in await mailbox() if type(m) is not Exit] == []
