"""Fairness: reductions, the long-schedule watchdog, offload."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

import beamish
from beamish import Actor, LongSchedule, receive, send, spawn, telemetry
from beamish.testing import wait_until_idle


class Recorder(Actor):
    def __init__(self, log, tag):
        self.log = log
        self.tag = tag

    def handle(self, message):
        self.log.append(self.tag)


@pytest.mark.beamish(reductions=10)
async def test_a_busy_actor_yields_after_its_reductions():
    log: list[str] = []
    busy = spawn(Recorder(log, "busy"))
    other = spawn(Recorder(log, "other"))
    for _ in range(100):
        send(busy, "work")
    send(other, "work")
    await wait_until_idle()
    assert log.index("other") <= 10  # other ran after at most one slice of busy
    beamish.exit(busy, "kill")
    beamish.exit(other, "kill")


@pytest.mark.beamish(tick_budget=50)
async def test_the_scheduler_yields_the_loop_between_ticks():
    """Timers and tasks run while actors have thousands of messages queued."""
    log: list[str] = []
    busy = spawn(Recorder(log, "x"))
    for _ in range(20_000):
        send(busy, "work")
    me = beamish.self()
    beamish.send_after(me, "timer", 0)
    await receive("timer", timeout=5)
    assert len(log) < 20_000  # the timer fired before the backlog was done
    beamish.exit(busy, "kill")



def watch_long_schedules(reports):
    """Append each long schedule's report to ``reports``; returns the detach function."""
    handler_id = f"tests.long_schedules.{id(reports)}"
    telemetry.attach(handler_id, ("beamish", "runtime", "long_schedule"),
                     lambda event, measurements, metadata, config:
                     reports.append(metadata["report"]))
    return lambda: telemetry.detach(handler_id)

@pytest.mark.beamish(long_schedule=0.05)
async def test_the_watchdog_reports_a_step_that_held_the_loop(caplog):
    caplog.set_level(logging.WARNING, logger="beamish.watchdog")
    reports: list[LongSchedule] = []
    detach = watch_long_schedules(reports)

    class Hog(Actor):
        def handle(self, message):
            spin_for(0.3)

    hog = beamish.spawn_opt(Hog(), name="hog")
    send(hog, "go")
    deadline = time.monotonic() + 5
    while not reports and time.monotonic() < deadline:
        await beamish.sleep(0.05)
    detach()
    assert reports, "the watchdog reported nothing"
    report = reports[0]
    assert report.pid == hog and report.name == "hog"
    assert "spin_for" in report.function
    assert "in handle" in report.stack and "spin_for" in report.stack
    assert 0.15 <= report.duration <= 2.0
    assert "held the event loop" in caplog.text and "offload" in caplog.text
    assert beamish.statistics().long_schedules >= 1
    beamish.exit(hog, "kill")


@pytest.mark.beamish(long_schedule=0.05)
async def test_the_watchdog_names_a_task_shaped_process_too():
    reports: list[LongSchedule] = []
    watch_long_schedules(reports)

    async def hog():
        await receive()
        spin_for(0.3)

    pid = spawn(hog)
    send(pid, "go")
    deadline = time.monotonic() + 5
    while not reports and time.monotonic() < deadline:
        await beamish.sleep(0.05)
    assert reports and reports[0].pid == pid


@pytest.mark.beamish(long_schedule=0.05)
async def test_the_watchdog_names_a_process_that_borrows_its_task():
    """A request handler runs in the server's own task, made a process by as_process (the
    test body here is one too): the report names that process and the blocking function,
    not "code outside any process"."""
    reports: list[LongSchedule] = []
    runtime = beamish._runtime.context.current_runtime()
    detach = watch_long_schedules(reports)

    def slow_handler() -> None:
        spin_for(0.3)

    async def serve() -> beamish.Pid:
        async with runtime.as_process() as pid:  # what the web layer does per request
            slow_handler()
            return pid

    async def next_report() -> LongSchedule:
        deadline = time.monotonic() + 5
        while not reports and time.monotonic() < deadline:
            await beamish.sleep(0.05)
        assert reports, "the watchdog reported nothing"
        return reports.pop()

    slow_handler()
    report = await next_report()
    assert report.pid == beamish.self(), str(report)
    pid = await asyncio.get_running_loop().create_task(serve())
    report = await next_report()
    assert report.pid == pid, str(report)
    assert "slow_handler" in report.stack and "outside any process" not in str(report)

    async def killed_inside_then_slow() -> None:
        with pytest.raises(beamish.ProcessExit):
            async with runtime.as_process():
                beamish.exit(beamish.self(), "kill")
        slow_handler()  # the task is no process any more

    await asyncio.get_running_loop().create_task(killed_inside_then_slow())
    report = await next_report()
    assert report.pid is None and "outside any process" in str(report)
    detach()


def spin_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_offload_keeps_other_processes_running():
    ticked = threading.Event()

    async def ticker():
        for _ in range(5):
            await beamish.sleep(0.01)  # timers fire while the offloaded work blocks
        ticked.set()

    spawn(ticker)
    assert await beamish.offload(ticked.wait, 5)  # a blocking wait that only the ticker ends


async def test_offload_returns_the_result_and_raises_the_error():
    assert await beamish.offload(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await beamish.offload(lambda: 1 / 0)


async def test_a_cut_ends_the_tick_after_the_running_actor():
    """``Scheduler.cut``: set by work that needs the loop (a full frame for another node);
    the actors after it run on the next tick, once the loop has turned."""
    loop = asyncio.get_running_loop()
    scheduler = beamish._runtime.context.current_runtime().scheduler
    turned: list[str] = []
    seen: list[tuple[str, list[str]]] = []

    class Cutter(Actor):
        def __init__(self, tag, cut):
            self.tag, self.cut = tag, cut

        def handle(self, message):
            seen.append((self.tag, list(turned)))
            loop.call_soon(turned.append, self.tag)
            if self.cut:
                scheduler.cut = True

    a, b, c = spawn(Cutter("a", False)), spawn(Cutter("b", True)), spawn(Cutter("c", False))
    await wait_until_idle()
    for pid in (a, b, c):
        send(pid, "go")
    await wait_until_idle()
    assert seen == [("a", []), ("b", []), ("c", ["a", "b"])]  # a and b shared a tick
    assert scheduler.cut is False  # it lasts one tick
    for pid in (a, b, c):
        beamish.exit(pid, "kill")
