"""spawn in both shapes, spawn_link / spawn_monitor / spawn_opt, the process limit, misuse."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import (
    Actor,
    Down,
    Exit,
    InvalidTargetError,
    NameTakenError,
    NotInProcessError,
    Pid,
    SystemLimitError,
    receive,
    send,
    spawn,
)


class Echo(Actor):
    def handle(self, message):
        send(message[0], ("echo", message[1]))


async def test_spawn_async_function_runs_with_args_and_ends_normal():
    me = beamish.self()

    async def body(a, b):
        send(me, ("sum", a + b, beamish.self()))

    pid = spawn(body, 1, 2)
    assert await receive(timeout=1) == ("sum", 3, pid)
    ref = beamish.monitor(pid)
    assert await receive(Down, timeout=1) in (Down(ref, pid, "normal"), Down(ref, pid, "noproc"))


async def test_spawn_plain_function_runs_inside_a_process():
    me = beamish.self()
    pid = spawn(lambda: send(me, ("inside", beamish.self())))
    assert await receive(timeout=1) == ("inside", pid)


async def test_spawn_actor_handles_messages_in_order():
    pid = spawn(Echo())
    me = beamish.self()
    for i in range(100):
        send(pid, (me, i))
    assert [await receive(timeout=1) for _ in range(100)] == [("echo", i) for i in range(100)]
    beamish.exit(pid, "kill")


async def test_spawn_actor_init_runs_inside_the_process_before_messages():
    me = beamish.self()

    class WithInit(Actor):
        def started(self):
            send(me, ("init", beamish.self()))

        def handle(self, message):
            send(me, ("got", message))

    pid = spawn(WithInit())
    send(pid, 1)
    assert await receive(timeout=1) == ("init", pid)
    assert await receive(timeout=1) == ("got", 1)
    beamish.exit(pid, "kill")


async def test_spawn_actor_async_handler_finishes_before_next_message():
    me = beamish.self()

    class Slow(Actor):
        async def handle(self, message):
            send(me, ("start", message))
            await asyncio.sleep(0.01)
            send(me, ("end", message))

    pid = spawn(Slow())
    send(pid, 1)
    send(pid, 2)
    got = [await receive(timeout=1) for _ in range(4)]
    assert got == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    beamish.exit(pid, "kill")


async def test_spawn_actor_self_is_its_pid_in_sync_and_async_handlers():
    me = beamish.self()

    class Who(Actor):
        def handle(self, message):
            send(me, ("sync", beamish.self() == self.pid))
            return self.later()

        async def later(self):
            await asyncio.sleep(0)
            send(me, ("async", beamish.self() == self.pid))

    pid = spawn(Who())
    send(pid, "x")
    assert await receive(timeout=1) == ("sync", True)
    assert await receive(timeout=1) == ("async", True)
    beamish.exit(pid, "kill")


async def test_spawn_link_links_caller_and_child():
    beamish.trap_exit(True)

    async def child():
        await receive()

    pid = beamish.spawn_link(child)
    assert beamish.process_info(pid).links == (beamish.self(),)
    beamish.exit(pid, "boom")
    assert await receive(Exit, timeout=1) == Exit(pid, "boom")


async def test_spawn_monitor_returns_pid_and_ref():
    pid, ref = beamish.spawn_monitor(lambda: None)
    assert isinstance(pid, Pid)
    assert await receive(Down, timeout=1) == Down(ref, pid, "normal")


async def test_spawn_opt_name_is_registered_before_the_process_runs():
    me = beamish.self()

    async def named():
        send(me, beamish.whereis("named") == beamish.self())
        await receive()

    pid = beamish.spawn_opt(named, name="named")
    assert await receive(timeout=1) is True
    assert beamish.whereis("named") == pid
    with pytest.raises(NameTakenError, match="already registered to"):
        beamish.spawn_opt(named, name="named")
    assert len(beamish.processes()) == 2  # the refused spawn left nothing behind
    beamish.exit(pid, "kill")


async def test_spawn_opt_trap_exit_is_set_before_first_line():
    me = beamish.self()

    async def trapper():
        send(me, beamish.process_info(beamish.self()).trap_exit)

    beamish.spawn_opt(trapper, trap_exit=True)
    assert await receive(timeout=1) is True


@pytest.mark.beamish(max_processes=3)
async def test_spawn_process_limit_fails_loudly():
    async def idle():
        await receive()

    pids = [spawn(idle), spawn(idle)]  # the test process is the third
    with pytest.raises(SystemLimitError, match="process limit of 3 is reached"):
        spawn(idle)
    for pid in pids:
        beamish.exit(pid, "kill")
    await beamish.sleep(0)
    spawn(idle)  # room again
    for pid in beamish.processes():
        if pid != beamish.self():
            beamish.exit(pid, "kill")


async def test_spawn_not_callable_is_an_error_that_teaches():
    with pytest.raises(InvalidTargetError, match=r"needs an async function.*got 5 \(int\)"):
        spawn(5)
    with pytest.raises(TypeError):  # InvalidTargetError is a TypeError
        spawn("not a function")


async def test_spawn_coroutine_object_is_refused_with_the_fix():
    async def body(x):
        return x

    with pytest.raises(InvalidTargetError, match=r"spawn\(fn, 1, 2\), not spawn\(fn\(1, 2\)\)"):
        spawn(body(1))


async def test_a_coroutine_given_for_a_pid_asks_whether_await_was_forgotten():
    async def start_worker():
        return spawn(Echo())

    for use in (
        beamish.link, beamish.unlink, beamish.monitor, beamish.is_alive, beamish.process_info,
        beamish.wait_exit, lambda pid: beamish.exit(pid, "kill"),
        lambda pid: beamish.send(pid, "hello"), lambda pid: beamish.register("w", pid),
    ):
        with pytest.raises(TypeError, match=r"start_worker\(\.\.\.\).*did you forget await\?"):
            use(start_worker())
    assert beamish.processes() == [beamish.self()]


async def test_spawn_actor_class_or_actor_with_args_is_refused():
    with pytest.raises(InvalidTargetError, match=r"spawn an instance of it: spawn\(Echo\(...\)\)"):
        spawn(Echo)
    with pytest.raises(InvalidTargetError, match="takes no arguments"):
        spawn(Echo(), 1)


async def test_spawn_same_actor_instance_twice_is_refused():
    actor = Echo()
    pid = spawn(actor)
    with pytest.raises(InvalidTargetError, match="already the body of process"):
        spawn(actor)
    beamish.exit(pid, "kill")


def test_process_calls_outside_a_process_raise_not_in_process():
    async def outside():
        async with beamish.Runtime():
            with pytest.raises(NotInProcessError, match="only be called inside a beamish process"):
                await receive(timeout=0)
            with pytest.raises(NotInProcessError):
                beamish.self()
            with pytest.raises(NotInProcessError, match="link"):
                beamish.link(beamish.spawn(lambda: None))

    asyncio.run(outside())


def test_spawn_without_runtime_raises_no_runtime():
    with pytest.raises(beamish.NoRuntimeError, match="no beamish runtime is running"):
        spawn(lambda: None)


async def test_receive_in_a_sync_actor_handler_is_refused():
    me = beamish.self()

    class Receiver(Actor):
        def handle(self, message):
            try:
                coro = receive(timeout=0)
                coro.send(None)
            except NotInProcessError as exc:
                send(me, str(exc))

    pid = spawn(Receiver())
    send(pid, "go")
    assert "an Actor gets its messages through handle()" in await receive(timeout=1)
    beamish.exit(pid, "kill")


async def test_receive_in_an_async_actor_handler_takes_selectively():
    me = beamish.self()

    class Asker(Actor):
        async def handle(self, message):
            match message:
                case ("ask", who):
                    send(who, ("question", beamish.self()))
                    answer = await receive(("answer", beamish.ANY), timeout=1)
                    send(me, ("got", answer))
                case other:
                    send(me, ("later", other))

    async def answerer():
        match await receive():
            case ("question", asker):
                send(asker, "unrelated")  # stays for handle(), after the answer
                send(asker, ("answer", 42))

    asker = spawn(Asker())
    send(asker, ("ask", spawn(answerer)))
    assert await receive(timeout=1) == ("got", ("answer", 42))
    assert await receive(timeout=1) == ("later", "unrelated")
    beamish.exit(asker, "kill")


async def test_actor_without_handle_crashes_naming_the_message(caplog):
    class Empty(Actor):
        pass

    pid, ref = beamish.spawn_monitor(Empty())
    send(pid, "hello")
    down = await receive(Down, timeout=1)
    assert isinstance(down.reason, beamish.Crash)
    assert "got the message 'hello' but defines no handle" in str(down.reason.exception)


async def test_actor_handler_returning_a_value_crashes_with_a_clear_error():
    class Returns(Actor):
        def handle(self, message):
            return 42

    pid, ref = beamish.spawn_monitor(Returns())
    send(pid, "x")
    down = await receive(Down, timeout=1)
    assert "returned 42" in str(down.reason.exception)
