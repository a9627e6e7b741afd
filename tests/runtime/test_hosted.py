"""as_process's record made and ended in C (``_speedups.host``/``unhost``), the common path
of every HTTP request: the same record and the same end as the Python methods make, and
every other case left to them (``make test`` runs this file again under
``BEAMISH_PURE_PYTHON``, where the Python methods do it all)."""

from __future__ import annotations

import asyncio
import os

import pytest

import beamish
from beamish import ProcessExit, SystemLimitError, receive, telemetry
from beamish._runtime import runtime as runtime_module
from beamish._runtime.context import current_runtime
from beamish._runtime.process import Process
from beamish.testing import wait_until_idle

C_BUILT = runtime_module._c_host is not None


@pytest.mark.skipif(bool(os.environ.get("BEAMISH_PURE_PYTHON")),
                    reason="BEAMISH_PURE_PYTHON selects the Python methods")
def test_the_c_path_is_configured_where_built():
    assert C_BUILT


@pytest.mark.skipif(not C_BUILT, reason="the C path is not built or is disabled")
async def test_the_c_record_is_the_python_record():
    runtime = current_runtime()
    task = asyncio.current_task()
    parent = runtime._procs[beamish.self().id]
    made = runtime_module._c_host(runtime, parent, task)  # type: ignore[misc]
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
        assert runtime_module._c_unhost(runtime, made) is True  # type: ignore[misc]
        runtime._exit_process(reference, "normal", from_inside=True)
    assert not beamish.is_alive(made.pid) and made.pid not in beamish.processes()
    assert made.exit_reason == reference.exit_reason == "normal"
    for slot in ("mailbox", "actor", "context", "task"):
        assert getattr(made, slot) is None and getattr(reference, slot) is None


async def test_as_process_counts_and_lists_its_process():
    runtime = current_runtime()
    before = runtime.statistics()
    with runtime.as_process() as pid:
        assert pid in beamish.processes() and beamish.self() == pid
        assert pid.node == beamish.self().node
    after = runtime.statistics()
    assert (after.spawned - before.spawned, after.exited - before.exited) == (1, 1)
    assert not beamish.is_alive(pid)


async def test_a_monitor_on_a_hosted_process_gets_its_normal_down():
    runtime = current_runtime()
    me = beamish.self()
    downs: list[object] = []

    async def watcher(target):
        beamish.monitor(target)
        beamish.send(me, "watching")
        downs.append(await receive())

    with runtime.as_process() as pid:
        runtime.spawn(watcher, (pid,))
        await asyncio.sleep(0)
        await wait_until_idle()
    await wait_until_idle()
    assert len(downs) == 1 and downs[0].reason == "normal" and downs[0].pid == pid


async def test_a_link_from_a_hosted_process_is_told_of_its_end():
    runtime = current_runtime()
    trapped: list[object] = []

    async def linked():
        beamish.trap_exit(True)
        trapped.append(await receive())

    with runtime.as_process() as pid:
        other = beamish.spawn_link(linked)
        await wait_until_idle()
    await wait_until_idle()
    assert trapped and trapped[0].pid == pid and trapped[0].reason == "normal"
    beamish.exit(other, "kill")


async def test_a_named_or_trapping_block_and_an_exit_hook_take_the_python_path():
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
        with runtime.as_process() as hooked:
            pass
    finally:
        telemetry.detach("tests.hosted.exit")
    assert hooked in ends


async def test_the_process_limit_is_kept_and_says_so():
    runtime = current_runtime()
    limit = runtime.max_processes
    runtime.max_processes = len(beamish.processes())
    try:
        with pytest.raises(SystemLimitError, match="process limit"), runtime.as_process():
            pass
    finally:
        runtime.max_processes = limit


async def test_a_hosted_process_killed_inside_still_raises_process_exit():
    runtime = current_runtime()
    with pytest.raises(ProcessExit) as info, runtime.as_process() as pid:
        runtime.spawn(lambda: beamish.exit(pid, "kill"))
        await asyncio.sleep(1)
    assert info.value.reason == "killed"
