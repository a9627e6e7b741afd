"""Entry points and the runtime's life: run, Runtime in a running loop, as_process, stop."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

import beamish
from beamish import Exit, ProcessExit, Runtime, receive, send, spawn
from beamish.testing import wait_until_idle


def test_run_returns_what_main_returns_and_uses_uvloop():
    async def main(x):
        loop = asyncio.get_running_loop()
        return x * 2, type(loop).__module__

    value, loop_module = beamish.run(main, 21)
    assert value == 42 and loop_module.startswith("uvloop")


def test_run_raises_the_exception_that_escaped_main():
    async def main():
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        beamish.run(main)


def test_run_raises_process_exit_for_an_abnormal_exit_reason():
    async def main():
        raise ProcessExit("custom")

    with pytest.raises(ProcessExit) as info:
        beamish.run(main)
    assert info.value.reason == "custom"


def test_run_shuts_down_processes_main_left_behind():
    seen = []

    async def lingering():
        beamish.trap_exit(True)
        msg = await receive()
        seen.append(msg.reason)

    async def main():
        spawn(lingering)
        await wait_until_idle()  # it traps exits

    t = time.monotonic()
    beamish.run(main)
    assert time.monotonic() - t < 2
    assert seen == ["shutdown"]


def test_runtime_inside_a_running_loop():
    async def outer():
        async with Runtime() as rt:
            async def main():
                return beamish.self()

            pid = await rt.run(main)
            assert isinstance(pid, beamish.Pid)
            async with rt.as_process() as me:
                assert beamish.self() == me
                send(me, "hi")
                assert await receive(timeout=1) == "hi"
            assert not beamish.is_alive(me)
            return rt.statistics().spawned

    assert asyncio.run(outer()) == 2


def test_as_process_turns_an_exception_into_a_crash_and_reraises():
    async def outer():
        async with Runtime() as rt:
            watcher_log = []

            async def watcher(target):
                beamish.monitor(target)
                watcher_log.append(await receive())

            with pytest.raises(ValueError):
                async with rt.as_process() as me:
                    rt.spawn(watcher, (me,))
                    await wait_until_idle()  # the watcher monitors the block
                    raise ValueError("in block")
            await wait_until_idle(rt)
            assert isinstance(watcher_log[0].reason, beamish.Crash)

    asyncio.run(outer())


def test_as_process_killed_inside_the_block_raises_process_exit():
    async def outer():
        async with Runtime() as rt:
            with pytest.raises(ProcessExit) as info:
                async with rt.as_process() as me:
                    rt.spawn(lambda: beamish.exit(me, "kill"))
                    await asyncio.sleep(1)
            assert info.value.reason == "killed"
            task = asyncio.current_task()
            assert task.cancelling() == 0  # the kill's cancellation was absorbed

    asyncio.run(outer())


def test_as_process_as_a_plain_with_block_does_the_same():
    """Entering and leaving await nothing, so ``with`` works as ``async with`` does (the web
    endpoint's request processes use it)."""
    async def outer():
        async with Runtime() as rt:
            with rt.as_process() as me:
                assert beamish.self() == me
                send(me, "hi")
                assert await receive(timeout=1) == "hi"
            assert not beamish.is_alive(me)
            with pytest.raises(ValueError), rt.as_process() as crashing:
                raise ValueError("in block")
            assert not beamish.is_alive(crashing)
            with pytest.raises(ProcessExit) as info, rt.as_process() as killed:
                rt.spawn(lambda: beamish.exit(killed, "kill"))
                await asyncio.sleep(1)
            assert info.value.reason == "killed"
            assert asyncio.current_task().cancelling() == 0
            return rt.statistics().crashed

    assert asyncio.run(outer()) == 1


def test_stop_gives_trapping_processes_their_exit_and_is_bounded():
    log = []

    async def outer():
        rt = Runtime(shutdown_timeout=0.3)
        await rt.start()

        async def polite():
            beamish.trap_exit(True)
            match await receive():
                case Exit(_, "shutdown"):
                    log.append("polite cleaned up")

        async def stubborn():
            beamish.trap_exit(True)
            while True:
                await receive()
                log.append("stubborn ignored it")

        rt.spawn(polite)
        rt.spawn(stubborn)
        await wait_until_idle(rt)  # both trap exits
        t = time.monotonic()
        await rt.stop()
        elapsed = time.monotonic() - t
        assert rt.processes() == []
        return elapsed

    elapsed = asyncio.run(outer())
    assert 0.25 <= elapsed < 2
    assert log == ["polite cleaned up", "stubborn ignored it"]


def test_stop_goes_top_down_through_parents():
    order = []

    async def child():
        beamish.trap_exit(True)
        await receive()
        order.append("child")

    async def parent():
        beamish.trap_exit(True)
        kid = beamish.spawn_link(child)
        match await receive():
            case Exit(_, "shutdown"):
                order.append("parent got shutdown")
                beamish.exit(kid, "shutdown")
                await receive(Exit)
                order.append("parent")

    async def outer():
        async with Runtime() as rt:
            rt.spawn(parent)
            await wait_until_idle(rt)  # the parent has started its child

    asyncio.run(outer())
    assert order == ["parent got shutdown", "child", "parent"]


def test_two_runtimes_live_side_by_side():
    async def outer():
        async with Runtime() as a, Runtime() as b:
            pa = a.spawn(lambda: None)
            pb = b.spawn(lambda: None)
            assert pa.id == pb.id and pa != pb
            assert a.processes() != b.processes() or a.processes() == []
            return a.node_id is not b.node_id

    assert asyncio.run(outer())


def test_runtime_restores_gc_thresholds_and_refuses_restart():
    before = gc.get_threshold()

    async def outer():
        rt = Runtime()
        await rt.start()
        assert gc.get_threshold() == (50_000, 10, 10)
        await rt.stop()
        with pytest.raises(RuntimeError, match="a runtime starts once"):
            await rt.start()
        with pytest.raises(RuntimeError, match="the runtime is stopped"):
            rt.spawn(lambda: None)

    asyncio.run(outer())
    assert gc.get_threshold() == before


def test_runtime_validates_options():
    with pytest.raises(ValueError, match="max_processes must be a positive int"):
        Runtime(max_processes=0)
    with pytest.raises(ValueError, match="long_schedule"):
        Runtime(long_schedule=-1)


async def test_a_process_killed_while_offloaded_work_runs_leaves_the_work_to_finish():
    release, finished = threading.Event(), threading.Event()

    def slow():
        release.wait(5)
        finished.set()

    async def offloader():
        await beamish.offload(slow)

    pid, ref = beamish.spawn_monitor(offloader)
    await wait_until_idle()  # it waits for the work
    beamish.exit(pid, "kill")
    assert (await receive(beamish.Down, timeout=1)).reason == "killed"
    release.set()
    assert await beamish.offload(finished.wait, 5)  # the work went on to its end
