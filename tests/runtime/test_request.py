"""request/reply: the call primitive, with no late replies."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import Actor, CallError, ReplyTo, Request, receive, reply, request, spawn
from beamish.testing import wait_until_idle


class Adder(Actor):
    def handle(self, message):
        match message:
            case Request(reply_to, ("add", a, b)):
                reply(reply_to, a + b)
            case Request(reply_to, "crash"):
                raise RuntimeError("adder crashed")
            case Request(_, "ignore"):
                pass


async def test_request_to_an_actor():
    pid = spawn(Adder())
    assert await request(pid, ("add", 2, 3)) == 5
    beamish.exit(pid, "kill")


async def test_request_to_a_receive_loop_by_name():
    async def server():
        while True:
            match await receive():
                case Request(reply_to, "ping"):
                    reply(reply_to, "pong")

    pid = beamish.spawn_opt(server, name="server")
    assert await request("server", "ping") == "pong"
    beamish.exit(pid, "kill")


async def test_request_deferred_reply_from_another_process():
    class Deferring(Actor):
        def handle(self, message):
            match message:
                case Request(reply_to, "later"):
                    spawn(self.answer, reply_to)

        @staticmethod
        async def answer(reply_to: ReplyTo):
            await beamish.sleep(0.01)  # the subject: the reply comes later, from elsewhere
            reply(reply_to, "deferred")

    pid = spawn(Deferring())
    assert await request(pid, "later") == "deferred"
    beamish.exit(pid, "kill")


async def test_request_timeout_counts_from_the_call_on_both_arming_paths():
    """An actor target's timeout is armed at the end of the tick that runs it; a receive
    loop's by a callback of its own. Either way it counts from the call: a tick that ran
    long does not make the call wait longer."""
    import time

    class Hog(Actor):
        def handle(self, message):
            time.sleep(0.15)  # holds the tick that also runs the target

    class Silent(Actor):
        def handle(self, message):
            pass

    async def silent_loop():
        while True:
            await receive()

    for target, hogging in ((spawn(Silent()), True), (spawn(silent_loop), False)):
        hog = spawn(Hog())
        if hogging:
            beamish.send(hog, "go")  # queued ahead of the target, in the same tick
        started = time.monotonic()
        with pytest.raises(CallError) as info:
            await request(target, "anything", timeout=0.2)
        waited = time.monotonic() - started
        assert info.value.why == "timeout"
        assert 0.19 <= waited < 0.3, waited  # not 0.15 + 0.2 (a timer may fire a hair early)
        beamish.exit(target, "kill")
        beamish.exit(hog, "kill")


async def test_request_timeout_keeps_server_and_drops_late_reply():
    held: list[ReplyTo] = []

    class Holder(Actor):
        def handle(self, message):
            match message:
                case Request(reply_to, "hold"):
                    held.append(reply_to)
                case Request(reply_to, "ping"):
                    reply(reply_to, "pong")

    pid = spawn(Holder())
    with pytest.raises(CallError) as info:
        await request(pid, "hold", timeout=0.02)
    assert info.value.why == "timeout"
    assert info.value.reason == ("timeout", ("request", pid, "hold", 0.02))
    assert held[0].active is False
    reply(held[0], "too late")  # dropped
    assert await request(pid, "ping") == "pong"
    await wait_until_idle()
    assert await receive(timeout=0, default=None) is None  # nothing landed in the mailbox
    beamish.exit(pid, "kill")


async def test_request_to_dead_pid_or_unknown_name_is_noproc():
    pid, _ = beamish.spawn_monitor(lambda: None)
    await receive(beamish.Down, timeout=1)
    for dest in (pid, "nobody"):
        with pytest.raises(CallError) as info:
            await request(dest, "x")
        assert info.value.why == "noproc"


async def test_request_to_self_is_calling_self():
    with pytest.raises(CallError) as info:
        await request(beamish.self(), "x")
    assert info.value.why == "calling_self"


async def test_request_fails_with_the_reason_of_a_server_that_dies():
    pid = spawn(Adder())
    with pytest.raises(CallError) as info:
        await request(pid, "crash")
    assert isinstance(info.value.why, beamish.Crash)
    assert str(info.value.why.exception) == "adder crashed"

    pid = spawn(Adder())

    async def killer():
        await wait_until_idle()  # the server has taken the request, the caller waits
        beamish.exit(pid, "stop it")

    spawn(killer)
    with pytest.raises(CallError) as info:
        await request(pid, "ignore")
    assert info.value.why == "stop it"


async def test_request_from_an_actor_async_handler():
    adder = spawn(Adder())
    me = beamish.self()

    class Asker(Actor):
        async def handle(self, message):
            beamish.send(me, ("sum", await request(adder, ("add", 1, message))))

    asker = spawn(Asker())
    beamish.send(asker, 41)
    assert await receive(timeout=1) == ("sum", 42)
    beamish.exit(adder, "kill")
    beamish.exit(asker, "kill")


def test_request_from_outside_any_process():
    async def outer():
        async with beamish.Runtime() as rt:
            pid = rt.spawn(Adder())
            return await request(pid, ("add", 20, 22))

    assert asyncio.run(outer()) == 42


async def test_request_cleans_up_its_watch_on_the_server():
    pid = spawn(Adder())
    for i in range(100):
        await request(pid, ("add", i, i))
    assert beamish.process_info(pid).monitored_by == ()
    beamish.exit(pid, "kill")


# -- a call to an idle actor runs its handler at once (Scheduler.run_now) ---------------------


class Answering(Actor):
    """Answers ("who",) with its own pid, ("boom",) by crashing, ("later", s) from a task."""

    def handle(self, message):
        match message:
            case Request(reply_to, ("who",)):
                reply(reply_to, beamish.self())
            case Request(_, ("boom",)):
                raise ValueError("boom in the handler")
            case Request(reply_to, ("later", seconds)):
                return self._later(reply_to, seconds)

    async def _later(self, reply_to, seconds):
        await asyncio.sleep(seconds)
        reply(reply_to, ("later", beamish.self()))


async def test_a_call_to_an_idle_actor_is_answered_without_a_turn_of_the_loop():
    server = spawn(Answering())
    await wait_until_idle()
    turned = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    assert await request(server, ("who",)) == server  # self() in the handler: the server
    assert turned == []  # answered within this turn
    for _ in range(400):  # ... but a caller cannot keep the loop: every `reductions` calls
        await request(server, ("who",))  # one goes through the run queue
    assert turned == [True]
    assert beamish.process_info(server).message_queue_len == 0
    beamish.exit(server, "kill")


async def test_a_crash_in_an_inline_handler_ends_the_server_not_the_caller():
    server = spawn(Answering())
    await wait_until_idle()
    with pytest.raises(CallError) as failed:
        await request(server, ("boom",))
    assert "boom in the handler" in repr(failed.value.why)
    assert not beamish.is_alive(server)
    assert beamish.is_alive(beamish.self())


async def test_an_async_handler_started_inline_answers_later_and_the_actor_waits_for_it():
    server = spawn(Answering())
    await wait_until_idle()
    assert await request(server, ("later", 0.01)) == ("later", server)
    busy = asyncio.ensure_future(request(server, ("later", 0.05)))
    await asyncio.sleep(0)
    assert await request(server, ("who",)) == server  # queued behind the busy handler
    assert busy.done() and busy.result() == ("later", server)
    beamish.exit(server, "kill")
