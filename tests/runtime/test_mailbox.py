"""One delivery routine (``_runtime/mailbox.py``) and its C twin (the C send) leave every kind
of receiver in the same state: same mailbox, same flags, the same wake-up."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish._runtime import api
from beamish._runtime.isolation import isolate
from beamish._runtime.mailbox import deliver

c_send = api._fast_send()
pytestmark = pytest.mark.skipif(c_send is None, reason="the C send is not built or disabled")


class Holder(beamish.Actor):
    """An actor that takes what it is sent and keeps it."""

    def __init__(self):
        self.seen = []

    def handle(self, message):
        self.seen.append(message)


class Waiter(beamish.Actor):
    """An actor whose async handler waits in receive(): busy, with a waiter."""

    async def handle(self, message):
        await beamish.receive(lambda m: m == "release")


async def waiting_task():
    await beamish.receive(lambda m: m == "release")


async def sleeping_task():
    await asyncio.sleep(3600)


def state(pid):
    proc = pid._proc
    runq = proc.runtime.scheduler.runq
    return (
        list(proc.mailbox or ()), proc.scheduled, proc.busy, proc.waiter is None,
        sum(1 for p in runq if p is proc),
    )


async def two(kind):
    """Two receivers of ``kind``, each in the same state, ready for one message."""
    pids = []
    for _ in range(2):
        if kind == "idle actor":
            pid = beamish.spawn(Holder())
            beamish.send(pid, "first")
        elif kind == "busy actor":
            pid = beamish.spawn(Waiter())
            beamish.send(pid, "go")
        elif kind == "waiting task":
            pid = beamish.spawn(waiting_task)
        else:
            pid = beamish.spawn(sleeping_task)
        pids.append(pid)
    for _ in range(5):
        await asyncio.sleep(0)  # each has settled: handled, or waiting
    return pids


@pytest.mark.parametrize("kind", ["idle actor", "busy actor", "waiting task", "sleeping task"])
async def test_the_c_send_and_deliver_agree(kind):
    a, b = await two(kind)
    assert state(a) == state(b)
    message = ("hello", 1)
    c_send(a, message)
    deliver(b._proc, isolate(message))
    assert state(a) == state(b)
    # a second message, to a receiver that is now queued or woken
    c_send(a, "again")
    deliver(b._proc, "again")
    assert state(a) == state(b)
    for pid in (a, b):
        beamish.exit(pid, "kill")


async def test_a_scheduled_actor_is_queued_once():
    a, b = await two("idle actor")
    for _ in range(3):
        c_send(a, "x")
        deliver(b._proc, "x")
    assert state(a) == state(b)
    assert state(a)[4] == 1  # in the run queue once, however many messages
    for pid in (a, b):
        beamish.exit(pid, "kill")
