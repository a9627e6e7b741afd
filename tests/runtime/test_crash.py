"""Crash isolation: a process that raises disturbs no other, and is logged once."""

from __future__ import annotations

import logging

import beamish
from beamish import Actor, Crash, Down, receive, send, spawn


class Counter(Actor):
    def __init__(self):
        self.n = 0

    def handle(self, message):
        match message:
            case "inc":
                self.n += 1
            case ("get", who):
                send(who, self.n)


class Fragile(Actor):
    def handle(self, message):
        if message == "crash":
            raise RuntimeError("fragile broke")


async def test_a_crash_disturbs_no_other_process():
    counter = spawn(Counter())
    fragile, ref = beamish.spawn_monitor(Fragile())
    for _ in range(10):
        send(counter, "inc")
    send(fragile, "crash")
    for _ in range(10):
        send(counter, "inc")
    send(counter, ("get", beamish.self()))
    assert await receive(int, timeout=1) == 20
    down = await receive(Down, timeout=1)
    assert down.pid == fragile and isinstance(down.reason, Crash)
    assert beamish.is_alive(counter)
    beamish.exit(counter, "kill")


async def test_a_crash_is_logged_once_with_pid_name_exception_and_traceback(caplog):
    caplog.set_level(logging.ERROR, logger="beamish.process")

    async def worker():
        beamish.register("worker-1")
        raise KeyError("missing")

    pid, ref = beamish.spawn_monitor(worker)
    await receive(Down, timeout=1)
    records = [r for r in caplog.records if r.name == "beamish.process"]
    assert len(records) == 1
    record = records[0]
    text = record.getMessage()
    assert repr(pid) in text and "worker-1" in text and "KeyError" in text
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "in worker" in caplog.text  # the traceback


async def test_an_explicit_exit_reason_is_not_logged_as_a_crash(caplog):
    async def leaves():
        raise beamish.ProcessExit("my_reason")

    pid, ref = beamish.spawn_monitor(leaves)
    assert await receive(Down, timeout=1) == Down(ref, pid, "my_reason")
    assert not [r for r in caplog.records if r.name == "beamish.process"]


async def test_statistics_count_crashes():
    before = beamish.statistics().crashed
    pid, ref = beamish.spawn_monitor(Fragile())
    send(pid, "crash")
    await receive(Down, timeout=1)
    assert beamish.statistics().crashed == before + 1
