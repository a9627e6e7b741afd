"""as_process's record made and ended in C (``_speedups.Host``), and a plain ``with`` block
run as a process in C (``Runtime.process_block()``, ``_speedups.Block``), the common path of
every HTTP request: the same record, the same end and the same semantics as ``AsProcess``,
the reference, and every other case left to the Python helpers (``make test`` runs this file
again under ``BEAMISH_PURE_PYTHON``, where ``process_block()`` is an ``AsProcess``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

import beamish
from beamish import ProcessExit, SystemLimitError, receive, telemetry
from beamish._runtime import runtime as runtime_module
from beamish._runtime.context import current_process, current_runtime
from beamish._runtime.pid import Pid
from beamish._runtime.process import Process
from beamish._runtime.runtime import Runtime
from beamish.testing import wait_until_idle

C_BUILT = runtime_module._c_host is not None

# Each block test runs over both ways in: the Python class and the C block where built
Block = Callable[[Runtime], AbstractContextManager[Pid]]
BLOCKS: dict[str, Block] = {
    "as_process": lambda runtime: runtime.as_process(),
    "process_block": lambda runtime: runtime.process_block(),
}
blocks = pytest.mark.parametrize("block", list(BLOCKS.values()), ids=list(BLOCKS))


@pytest.mark.skipif(bool(os.environ.get("BEAMISH_PURE_PYTHON")),
                    reason="BEAMISH_PURE_PYTHON selects the Python methods")
async def test_the_c_path_is_configured_where_built():
    assert C_BUILT
    runtime = current_runtime()
    assert type(runtime._host) is runtime_module._c_host
    assert type(runtime.process_block()).__name__ == "Block"


@pytest.mark.skipif(not C_BUILT, reason="the C path is not built or is disabled")
async def test_the_c_record_is_the_python_record():
    runtime = current_runtime()
    task = asyncio.current_task()
    parent = runtime._procs[beamish.self().id]
    made = runtime._host.make(parent, task)
    reference = runtime._new_process(None, None, parent, False, None, False)
    reference.task = task
    try:
        for slot in Process.__slots__:
            if slot == "pid":
                continue
            assert getattr(made, slot) == getattr(reference, slot), slot
        assert made.pid._proc is made and made.pid.id == reference.pid.id - 1
        assert made.pid.node_id is reference.pid.node_id and made.parent == beamish.self()
        assert made.pid in beamish.processes() and beamish.is_alive(made.pid)
    finally:
        assert runtime._host.end(made) is True
        runtime._exit_process(reference, "normal", from_inside=True)
    assert not beamish.is_alive(made.pid) and made.pid not in beamish.processes()
    assert made.exit_reason == reference.exit_reason == "normal"
    for slot in ("mailbox", "actor", "context", "task"):
        assert getattr(made, slot) is None and getattr(reference, slot) is None
    assert runtime._host.end(made) is False  # ended already: nothing done twice


@pytest.mark.skipif(not C_BUILT, reason="the C path is not built or is disabled")
async def test_the_host_refuses_what_is_not_a_process_and_closes_with_its_runtime():
    runtime = current_runtime()
    with pytest.raises(TypeError, match="parent is a Process or None"):
        runtime._host.make("not a process", asyncio.current_task())
    assert runtime._host.end("not a process") is False
    async with Runtime() as other:
        host = other._host
        assert host.open is True
    assert host.open is False and host.make(None, asyncio.current_task()) is None


@blocks
async def test_a_block_counts_and_lists_its_process(block: Block):
    runtime = current_runtime()
    before = runtime.statistics()
    with block(runtime) as pid:
        assert pid in beamish.processes() and beamish.self() == pid
        assert pid.node == beamish.self().node
    after = runtime.statistics()
    assert (after.spawned - before.spawned, after.exited - before.exited) == (1, 1)
    assert not beamish.is_alive(pid)


@blocks
async def test_a_monitor_on_a_hosted_process_gets_its_normal_down(block: Block):
    runtime = current_runtime()
    me = beamish.self()
    downs: list[object] = []

    async def watcher(target):
        beamish.monitor(target)
        beamish.send(me, "watching")
        downs.append(await receive())

    with block(runtime) as pid:
        runtime.spawn(watcher, (pid,))
        await asyncio.sleep(0)
        await wait_until_idle()
    await wait_until_idle()
    assert len(downs) == 1 and downs[0].reason == "normal" and downs[0].pid == pid


@blocks
async def test_a_link_from_a_hosted_process_is_told_of_its_end(block: Block):
    runtime = current_runtime()
    trapped: list[object] = []

    async def linked():
        beamish.trap_exit(True)
        trapped.append(await receive())

    with block(runtime) as pid:
        other = beamish.spawn_link(linked)
        await wait_until_idle()
    await wait_until_idle()
    assert trapped and trapped[0].pid == pid and trapped[0].reason == "normal"
    beamish.exit(other, "kill")


@blocks
async def test_a_named_or_trapping_block_and_an_exit_hook_take_the_python_path(block: Block):
    runtime = current_runtime()
    with runtime.as_process(name="hosted_named") as named:
        assert beamish.whereis("hosted_named") == named
    assert beamish.whereis("hosted_named") is None
    with runtime.as_process(trap_exit=True) as trapping:
        assert runtime._procs[trapping.id].trap_exit is True
    ends: list[object] = []
    telemetry.attach("tests.hosted.exit", ("beamish", "process", "exit"),
                     lambda event, measurements, metadata, config: ends.append(metadata["pid"]))
    try:
        with block(runtime) as hooked:
            pass
    finally:
        telemetry.detach("tests.hosted.exit")
    assert hooked in ends


@blocks
async def test_the_process_limit_is_kept_and_says_so(block: Block):
    runtime = current_runtime()
    limit = runtime.max_processes
    runtime.max_processes = len(beamish.processes())
    try:
        with pytest.raises(SystemLimitError, match="process limit"), block(runtime):
            pass
        before = len(beamish.processes())
        assert runtime.spawned == runtime.statistics().spawned
    finally:
        runtime.max_processes = limit
    with block(runtime) as pid:  # the limit raised again: a block is made
        assert len(beamish.processes()) == before + 1 and beamish.is_alive(pid)
    with pytest.raises(ValueError, match="positive int"):
        runtime.max_processes = 0


@blocks
async def test_a_hosted_process_killed_inside_still_raises_process_exit(block: Block):
    runtime = current_runtime()
    with pytest.raises(ProcessExit) as info, block(runtime) as pid:
        runtime.spawn(lambda: beamish.exit(pid, "kill"))
        await asyncio.sleep(1)
    assert info.value.reason == "killed"


@blocks
async def test_inside_a_block_self_is_its_pid_and_the_outer_process_comes_back(block: Block):
    runtime = current_runtime()
    outer = beamish.self()
    with block(runtime) as pid:
        assert beamish.self() == pid != outer
        assert runtime._process_of_task(asyncio.current_task()).pid == pid  # the watchdog's view
        assert runtime._procs[pid.id].parent == outer
        beamish.send(pid, "to myself")
        assert await receive(timeout=1) == "to myself"
        with block(runtime) as inner:  # a block in a block
            assert beamish.self() == inner and runtime._procs[inner.id].parent == pid
        assert beamish.self() == pid
        assert runtime._process_of_task(asyncio.current_task()).pid == pid
    assert beamish.self() == outer and not beamish.is_alive(pid) and not beamish.is_alive(inner)
    assert runtime._process_of_task(asyncio.current_task()).pid == outer


@blocks
async def test_a_crash_in_a_block_goes_on_and_is_counted(block: Block):
    runtime = current_runtime()
    crashes: list[Any] = []
    telemetry.attach("tests.hosted.crash", ("beamish", "process", "crash"),
                     lambda event, measurements, metadata, config: crashes.append(metadata))
    before = runtime.statistics().crashed
    try:
        with pytest.raises(KeyError, match="lost"), block(runtime) as pid:
            raise KeyError("lost")
    finally:
        telemetry.detach("tests.hosted.crash")
    assert runtime.statistics().crashed == before + 1
    assert [c["pid"] for c in crashes] == [pid] and not beamish.is_alive(pid)
    assert beamish.self() != pid


@blocks
async def test_a_block_that_exits_itself_normal_or_not(block: Block):
    runtime = current_runtime()
    with block(runtime) as pid:
        raise ProcessExit("normal")  # swallowed: a normal end
    assert not beamish.is_alive(pid)
    with pytest.raises(ProcessExit) as info, block(runtime) as pid:
        raise ProcessExit("shutdown")
    assert info.value.reason == "shutdown" and not beamish.is_alive(pid)
    went_on = False
    with block(runtime) as pid:
        beamish.exit(pid, "normal")  # to oneself, "normal" ends the caller (as exit/2)
        went_on = True
    assert not went_on and not beamish.is_alive(pid)
    assert runtime._procs.get(pid.id) is None


@blocks
async def test_the_spawn_hook_hears_of_a_block(block: Block):
    runtime = current_runtime()
    spawned: list[Pid] = []
    telemetry.attach("tests.hosted.spawn", ("beamish", "process", "spawn"),
                     lambda event, measurements, metadata, config: spawned.append(
                         metadata["pid"]))
    try:
        with block(runtime) as pid:
            assert spawned == [pid]
    finally:
        telemetry.detach("tests.hosted.spawn")


@blocks
async def test_a_block_outside_a_task_or_entered_twice_says_so(block: Block):
    runtime = current_runtime()
    entered = block(runtime)
    with entered as pid:
        if type(entered).__name__ == "Block":  # the Python class is not guarded against it
            with pytest.raises(RuntimeError, match="entered once"):
                entered.__enter__()
    assert not beamish.is_alive(pid)
    outside: list[BaseException] = []

    def from_a_callback() -> None:
        try:
            block(runtime).__enter__()
        except RuntimeError as exc:
            outside.append(exc)

    asyncio.get_running_loop().call_soon(from_a_callback)
    await asyncio.sleep(0.01)
    assert len(outside) == 1 and "inside an asyncio task" in str(outside[0])
    assert current_process() is not None and beamish.self() != pid


async def test_a_stopped_runtime_makes_no_block_and_says_why():
    other = Runtime()
    await other.start()
    await other.stop()
    for make in BLOCKS.values():
        with pytest.raises(RuntimeError, match="runtime is stopped"), make(other):
            pass
