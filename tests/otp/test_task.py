"""Task, by the reference behaviours (OTP-SEMANTICS section 8; item numbers in names).

Elixir's ``throw`` has no Python counterpart, so the "throw" cases of item 92 are covered by
the exception and exit cases. Timings keep the reference's relations at a larger scale.
"""

from __future__ import annotations

import inspect
import itertools
import os

import pytest

import beamish
from beamish import (
    CallError,
    Crash,
    Down,
    Exit,
    GenServer,
    NotInProcessError,
    NotOwnerError,
    Ok,
    ProcessExit,
    Reply,
    Supervisor,
    Task,
    receive,
    send,
)
from beamish.testing import wait_until_idle


async def wait_for_go():
    await receive("go")
    return "done"


async def crash(*_):
    raise ValueError("task failed")


async def exit_with(reason):
    raise ProcessExit(reason)


async def mailbox():
    """Everything left in the caller's mailbox (taking it)."""
    left = []
    while (message := await receive(timeout=0, default=None)) is not None:
        left.append(message)
    return left


def links():
    return list(beamish.process_info(beamish.self()).links)


# -- async / await ------------------------------------------------------------------------------


async def test_task_async_and_await_a_value():
    task = Task.async_(lambda x: x * 2, 21)
    assert (task.owner, task.pid in links()) == (beamish.self(), True)
    assert await Task.await_(task) == 42
    assert await Task.async_(wait_for_go_soon) == "done"  # a Task is awaitable
    assert await mailbox() == []


async def wait_for_go_soon():
    await beamish.sleep(0.001)
    return "done"


async def test_task_await_timeout_drops_the_late_reply_91():
    task = Task.async_(wait_for_go)
    with pytest.raises(CallError) as info:
        await Task.await_(task, 0)
    assert info.value.reason == ("timeout", ("Task.await", task, 0))
    exited = beamish.wait_exit(task.pid)
    send(task.pid, "go")
    assert await exited == "normal"  # the task did finish, and tried to reply
    await wait_until_idle()
    assert await mailbox() == []  # neither (ref, "done") nor a Down for task.ref

    done = Task.async_(lambda: 1)
    assert await done == 1
    with pytest.raises(CallError) as info:  # awaited again: waits out its timeout
        await Task.await_(done, 0.01)
    assert info.value.why == "timeout"


async def test_task_failures_propagate_92():
    # (a) the caller does not trap exits: it dies with the task's reason, through the link
    async def owner(fn):
        await Task.await_(Task.async_(fn))

    for fn, expected in ((crash, ValueError), (lambda: exit_with("unknown"), "unknown")):
        pid, ref = beamish.spawn_monitor(owner, fn)
        down = await receive(Down, timeout=1)
        assert (down.ref, down.pid) == (ref, pid)
        if expected is ValueError:
            assert isinstance(down.reason, Crash)
            assert isinstance(down.reason.exception, ValueError)
        else:
            assert down.reason == expected

    # (b) the caller traps exits: await raises with the reason in OTP's shape
    beamish.trap_exit(True)
    task = Task.async_(crash)
    with pytest.raises(CallError) as info:
        await Task.await_(task)
    why, call = info.value.reason
    assert isinstance(why, Crash) and str(why.exception) == "task failed"
    assert call == ("Task.await", task, 5.0)

    task = Task.async_(exit_with, "unknown")
    with pytest.raises(CallError) as info:
        await task
    assert info.value.reason == ("unknown", ("Task.await", task, 5.0))


async def test_task_only_the_owner_may_query_it_94():
    me = beamish.self()

    async def other_owner():
        send(me, Task.async_(wait_for_go))
        await receive("stop")

    other = beamish.spawn_link(other_owner)
    task = await receive(Task, timeout=1)
    checks = [
        lambda: Task.await_(task, 0),
        lambda: Task.await_many([task], 0),
        lambda: Task.yield_(task, 0),
        lambda: Task.yield_many([task], 0),
        lambda: Task.shutdown(task),
    ]
    for check in checks:
        with pytest.raises(NotOwnerError) as info:
            await check()
        assert repr(other) in str(info.value) and repr(me) in str(info.value)
        assert "must be queried from its owner" in str(info.value)
    with pytest.raises(NotOwnerError):
        Task.ignore(task)
    send(task.pid, "go")
    send(other, "stop")


def test_task_outside_a_process_raises_a_teaching_error():
    with pytest.raises(NotInProcessError) as info:
        Task.async_(lambda: 1)
    assert "Task.async_() must be called inside a beamish process" in str(info.value)
    assert "beamish.run(main)" in str(info.value)


async def test_task_async_refuses_what_cannot_run():
    with pytest.raises(TypeError, match="coroutine object"):
        Task.async_(wait_for_go())
    with pytest.raises(TypeError, match="not callable"):
        Task.async_(42)


async def test_task_await_in_a_gen_server_async_handler():
    class Doubler(GenServer):
        def init(self, arg):
            return Ok(0)

        async def handle_call(self, request, from_, state):
            task = Task.async_(lambda: request * 2)
            return Reply(await task, state)

    server = await Doubler.start_link()
    assert await GenServer.call(server, 21) == 42
    await GenServer.stop(server)


# -- yield ------------------------------------------------------------------------------------


async def test_task_yield_95():
    task = Task.async_(wait_for_go)
    assert await Task.yield_(task, 0.01) is None  # nothing yet; still monitored
    send(task.pid, "go")
    assert await Task.yield_(task, 1) == ("ok", "done")

    task = Task.async_(exit_with, "normal")
    assert await Task.yield_(task) == ("exit", "normal")

    beamish.trap_exit(True)
    task = Task.async_(crash)
    result = await Task.yield_(task)
    assert result[0] == "exit" and isinstance(result[1], Crash)

    task = Task.async_(lambda: "value")
    await beamish.wait_exit(task.pid)  # the reply and the Down are both queued
    assert await Task.yield_(task, 0) == ("ok", "value")
    assert await receive(Down, timeout=0, default=None) is None  # the Down was flushed
    assert all(type(m) is Exit for m in await mailbox())


async def test_task_yield_many_97():
    t1 = Task.async_(lambda: "r1")
    t2 = Task.async_(wait_for_go)
    t3 = Task.async_(exit_with, "normal")
    await beamish.wait_exit(t1.pid)
    await beamish.wait_exit(t3.pid)
    assert await Task.yield_many([t1, t2, t3], 0) == [
        (t1, ("ok", "r1")), (t2, None), (t3, ("exit", "normal")),
    ]

    # a limit returns as soon as that many answered; on_timeout does not apply
    t4 = Task.async_(lambda: "r4")
    results = await Task.yield_many([t2, t4], None, limit=1, on_timeout="kill_task")
    assert results == [(t2, None), (t4, ("ok", "r4"))]
    assert beamish.is_alive(t2.pid)
    # a limit above the number of tasks returns once all have answered
    t5 = Task.async_(lambda: "r5")
    send(t2.pid, "go")
    assert await Task.yield_many([t2, t5], None, limit=10) == [
        (t2, ("ok", "done")), (t5, ("ok", "r5")),
    ]

    # kill_task kills the tasks that did not answer in time
    t6 = Task.async_(wait_for_go)
    assert await Task.yield_many([t6], 0.01, on_timeout="kill_task") == [(t6, None)]
    assert not beamish.is_alive(t6.pid)

    # ignore leaves them running, unwatched: a later yield sees nothing, even once done
    t7 = Task.async_(wait_for_go)
    assert await Task.yield_many([t7], 0.01, on_timeout="ignore") == [(t7, None)]
    assert beamish.is_alive(t7.pid) and t7.pid not in links()
    exited = beamish.wait_exit(t7.pid)
    send(t7.pid, "go")
    await exited
    assert await Task.yield_(t7, 0) is None
    assert await mailbox() == []

    with pytest.raises(ValueError, match="on_timeout must be one of"):
        await Task.yield_many([], on_timeout="exit")


async def test_task_await_many_keeps_input_order_and_fails_fast():
    async def after(seconds, value):
        await beamish.sleep(seconds)
        return value

    tasks = [Task.async_(after, 0.03, "slow"), Task.async_(after, 0.0, "fast")]
    assert await Task.await_many(tasks) == ["slow", "fast"]

    pending = Task.async_(wait_for_go)
    with pytest.raises(CallError) as info:
        await Task.await_many([pending, Task.async_(lambda: 1)], 0.01)
    assert info.value.why == "timeout"
    assert info.value.call[0] == "Task.await_many"
    exited = beamish.wait_exit(pending.pid)
    send(pending.pid, "go")
    await exited
    assert await mailbox() == []  # the pending task's late reply was dropped


# -- shutdown and ignore ----------------------------------------------------------------------


async def test_task_shutdown_98():
    beamish.trap_exit(True)  # so the tasks' own exits below do not end the test

    task = Task.async_(wait_for_go)
    assert await Task.shutdown(task) is None
    assert not beamish.is_alive(task.pid)
    assert await mailbox() == []  # unlinked first: no Exit(task, "shutdown") either

    task = Task.async_(lambda: "reply")
    await beamish.wait_exit(task.pid)
    assert await Task.shutdown(task) == ("ok", "reply")  # the reply wins over the Down
    for reason in ("abnormal", "normal"):
        task = Task.async_(exit_with, reason)
        await beamish.wait_exit(task.pid)
        assert await Task.shutdown(task) == ("exit", reason)
    task = Task.async_(exit_with, "shutdown")
    await beamish.wait_exit(task.pid)
    assert await Task.shutdown(task) is None
    task = Task.async_(wait_for_go)
    beamish.exit(task.pid, "kill")
    assert await Task.shutdown(task) == ("exit", "killed")

    async def stubborn():
        beamish.trap_exit(True)
        await receive("never")

    task = Task.async_(stubborn)
    assert await Task.shutdown(task, "brutal_kill") is None
    assert [m for m in await mailbox() if type(m) is not Exit] == []
    with pytest.raises(ValueError, match="brutal_kill"):
        await Task.shutdown(Task.async_(lambda: 1), "soon")


async def test_task_shutdown_that_has_to_kill_returns_exit_killed_98():
    """Elixir's "returns exit on killing task after shutdown timeout": a task that outlives
    its shutdown time is killed, and shutdown says so; brutal_kill asked for the kill, so
    it says nothing (nil)."""
    me = beamish.self()

    async def stubborn():
        beamish.trap_exit(True)
        send(me, "trapping")
        await receive("never")

    task = Task.async_(stubborn)
    await receive("trapping", timeout=1)
    assert await Task.shutdown(task, 0.01) == ("exit", "killed")
    assert not beamish.is_alive(task.pid)
    task = Task.async_(stubborn)
    await receive("trapping", timeout=1)
    assert await Task.shutdown(task, "brutal_kill") is None
    assert await mailbox() == []


@pytest.mark.parametrize(("died_with", "outcome"), [
    ("abnormal", ("exit", "abnormal")), ("normal", ("exit", "normal")),
    ("shutdown", ("exit", "shutdown")), ("kill", None),
])
async def test_task_brutal_shutdown_of_a_task_that_had_died_98(died_with, outcome):
    """Elixir's "shutdown/2 with :brutal_kill" cases: only the kill it would have caused
    itself is left unsaid."""
    beamish.trap_exit(True)
    if died_with == "kill":
        task = Task.async_(wait_for_go)
        exited = beamish.wait_exit(task.pid)
        beamish.exit(task.pid, "kill")
    else:
        task = Task.async_(exit_with, died_with)
        exited = beamish.wait_exit(task.pid)
    await exited
    assert await Task.shutdown(task, "brutal_kill") == outcome
    await mailbox()


async def test_task_shutdown_of_a_completed_task_returns_its_result_98():
    """Elixir's "ignores if task PID is nil": a task with no process is not shut down,
    its result is looked up, as ignore does."""
    for mode in (5.0, "brutal_kill"):
        assert await Task.shutdown(Task.completed("known"), mode) == ("ok", "known")


async def test_task_shutdown_of_a_consumed_task_100():
    for mode in (5.0, "brutal_kill"):
        task = Task.async_(lambda: 1)
        assert await task == 1
        assert await Task.shutdown(task, mode) == ("exit", "noproc")


async def test_task_ignore_101():
    task = Task.async_(lambda: "value")
    await beamish.wait_exit(task.pid)
    assert Task.ignore(task) == ("ok", "value")

    beamish.trap_exit(True)
    task = Task.async_(exit_with, "boom")
    await beamish.wait_exit(task.pid)
    assert Task.ignore(task) == ("exit", "boom")
    beamish.trap_exit(False)
    await mailbox()

    task = Task.async_(wait_for_go)
    assert Task.ignore(task) is None
    assert beamish.is_alive(task.pid) and task.pid not in links()
    exited = beamish.wait_exit(task.pid)
    send(task.pid, "go")
    await exited
    with pytest.raises(CallError) as info:
        await Task.await_(task, 0)
    assert info.value.why == "timeout"
    assert await mailbox() == []

    assert Task.ignore(Task.completed("known")) == ("ok", "known")
    assert await Task.completed("cached") == "cached"


# -- start, start_link, child_spec --------------------------------------------------------------


async def test_task_start_and_start_link_103():
    me = beamish.self()
    pid = await Task.start(send, me, "from start")
    linked = await Task.start_link(send, me, "from start_link")
    assert await receive("from start", timeout=1) == "from start"
    assert await receive("from start_link", timeout=1) == "from start_link"
    await beamish.wait_exit(pid)
    await beamish.wait_exit(linked)
    assert await mailbox() == []  # no reply is ever sent

    spec = Task.child_spec((send, me, "supervised"))
    assert (spec.id, spec.restart, spec.start) == (
        Task, "temporary", (Task.start_link, (send, me, "supervised"))
    )
    sup = await Supervisor.start_link([(Task, (send, me, "supervised"))])
    assert await receive("supervised", timeout=1) == "supervised"
    await Supervisor.stop(sup)


async def test_task_start_link_links_only_start_link():
    pid = await Task.start(wait_for_go)
    linked = await Task.start_link(wait_for_go)
    assert pid not in links() and linked in links()
    send(pid, "go")
    send(linked, "go")


# -- async_stream -------------------------------------------------------------------------------


async def sleep_then_return(n):
    await beamish.sleep(n * 0.005)
    return n


@pytest.mark.parametrize("max_concurrency", [2, 4, 8])
async def test_task_async_stream_keeps_input_order_104(max_concurrency):
    stream = Task.async_stream(range(4, 0, -1), sleep_then_return, max_concurrency=max_concurrency)
    assert [item async for item in stream] == [("ok", 4), ("ok", 3), ("ok", 2), ("ok", 1)]
    stream = Task.async_stream(range(1, 5), sleep_then_return, max_concurrency=max_concurrency)
    assert [item async for item in stream] == [("ok", 1), ("ok", 2), ("ok", 3), ("ok", 4)]
    assert await mailbox() == []
    assert beamish.processes() == [beamish.self()]  # no task, no coordinator left


async def test_task_async_stream_unordered_gives_results_as_they_finish():
    stream = Task.async_stream([8, 1], sleep_then_return, ordered=False)
    assert [item async for item in stream] == [("ok", 1), ("ok", 8)]


async def test_task_async_stream_concurrency_bound_and_defaults_106():
    running = [0, 0]  # now, most at once (shared: a closure is passed by reference)

    async def work(n):
        running[0] += 1
        running[1] = max(running[1], running[0])
        await beamish.sleep(0.002)
        running[0] -= 1
        return n

    results = [item async for item in Task.async_stream(range(20), work, max_concurrency=3)]
    assert results == [("ok", n) for n in range(20)]
    assert running[1] == 3

    defaults = inspect.signature(Task.async_stream).parameters
    assert defaults["max_concurrency"].default == (os.cpu_count() or 1)
    assert defaults["timeout"].default == 5.0
    assert defaults["on_timeout"].default == "exit" and defaults["ordered"].default is True


async def test_task_async_stream_timeout_exits_by_default_107():
    async def never(_):
        await receive("never")

    with pytest.raises(CallError) as info:
        async for _ in Task.async_stream([1], never, timeout=0.01):
            pass
    assert info.value.reason == ("timeout", ("Task.async_stream", 0.01))
    assert await mailbox() == []
    assert beamish.processes() == [beamish.self()]


async def test_task_async_stream_zip_input_on_exit_109():
    stream = Task.async_stream(
        [1, 100], sleep_then_return, timeout=0.05, on_timeout="kill_task",
        zip_input_on_exit=True,
    )
    assert [item async for item in stream] == [("ok", 1), ("exit", (100, "timeout"))]

    beamish.trap_exit(True)
    stream = Task.async_stream(range(1, 3), exit_with, zip_input_on_exit=True)
    assert [item async for item in stream] == [("exit", (1, 1)), ("exit", (2, 2))]


async def test_task_async_stream_failures_with_a_trapping_caller_110():
    beamish.trap_exit(True)
    stream = Task.async_stream(range(1, 5), exit_with)
    assert [item async for item in stream] == [
        ("exit", 1), ("exit", 2), ("exit", 3), ("exit", 4),
    ]
    assert await mailbox() == []  # no Exit messages either


async def test_task_async_stream_failure_ends_a_caller_that_does_not_trap():
    async def consumer():
        async for _ in Task.async_stream([1, 2], crash):
            pass

    pid, ref = beamish.spawn_monitor(consumer)
    down = await receive(Down, timeout=1)
    assert isinstance(down.reason, Crash) and str(down.reason.exception) == "task failed"
    await wait_until_idle()
    assert beamish.processes() == [beamish.self()]


async def test_task_async_stream_is_lazy_and_composable_112():
    pulled = []
    cleaned = []

    def endless():
        try:
            for n in itertools.count():
                pulled.append(n)
                yield n
        finally:
            cleaned.append("inner")

    async def outer(stream):
        try:
            async with stream:
                async for item in stream:
                    yield item
        finally:
            cleaned.append("outer")

    taken = []
    async for item in outer(Task.async_stream(endless(), sleep_then_return, max_concurrency=2)):
        taken.append(item)
        if len(taken) == 4:
            break
    assert taken == [("ok", 0), ("ok", 1), ("ok", 2), ("ok", 3)]
    assert len(pulled) <= 4 + 2  # only as much input as the concurrency allowed
    await wait_until_idle()  # the dropped generator is closed by the loop, then the stream
    assert cleaned == ["inner", "outer"]
    assert beamish.processes() == [beamish.self()]

    # built in one process, consumed in another
    me = beamish.self()
    stream = Task.async_stream(range(3), sleep_then_return)

    async def consumer():
        send(me, [item async for item in stream])

    beamish.spawn(consumer)
    assert await receive(list, timeout=1) == [("ok", 0), ("ok", 1), ("ok", 2)]

    # two streams over one input run independently (Python's iterators are single-pass,
    # so "zipping a stream with itself" becomes zipping two streams)
    data = [1, 2, 3]
    first = Task.async_stream(data, sleep_then_return)
    second = Task.async_stream(data, sleep_then_return)
    pairs = [(await anext(first), await anext(second)) for _ in data]
    assert all(a == b for a, b in pairs)
    await first.aclose()
    await second.aclose()


async def test_task_async_stream_close_kills_the_running_tasks():
    started = {}

    async def first_one_quick(n):
        started[n] = beamish.self()
        if n:
            await receive("never")
        await wait_until_idle()  # done once the first three have started
        return n

    stream = Task.async_stream(range(10), first_one_quick, max_concurrency=3)
    assert await anext(stream) == ("ok", 0)
    await wait_until_idle()
    assert sorted(started) == [0, 1, 2]  # input is pulled only as tasks finish
    exited = [beamish.wait_exit(started[n]) for n in (1, 2)]
    await stream.aclose()
    assert [await e for e in exited] == ["killed", "killed"]
    assert await anext(stream, "closed") == "closed"


async def test_task_async_stream_dropped_half_way_stops_its_tasks():
    async def slow(n):
        if n:
            await receive("never")
        return n

    async for item in Task.async_stream(range(5), slow, max_concurrency=2):
        assert item == ("ok", 0)
        break
    await wait_until_idle()  # the stream was garbage collected: its coordinator stopped
    assert beamish.processes() == [beamish.self()]
    assert await mailbox() == []


async def test_task_async_stream_validates_options_when_built_113():
    with pytest.raises(ValueError, match="max_concurrency must be an int greater than zero"):
        Task.async_stream([1], abs, max_concurrency=0)
    with pytest.raises(ValueError, match="on_timeout must be either 'exit' or 'kill_task'"):
        Task.async_stream([1], abs, on_timeout="unknown")
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        Task.async_stream([1], abs, timeout="unknown")
    with pytest.raises(TypeError, match="iterable"):
        Task.async_stream(42, abs)


async def test_task_async_stream_takes_an_async_iterable():
    async def numbers():
        for n in (3, 1, 2):
            yield n

    stream = Task.async_stream(numbers(), sleep_then_return)
    assert [item async for item in stream] == [("ok", 3), ("ok", 1), ("ok", 2)]
