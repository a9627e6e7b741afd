"""GenServer, by the reference behaviours (OTP-SEMANTICS section 5; item numbers in names)."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

import beamish
from beamish import (
    CallError,
    Continue,
    Crash,
    Down,
    Exit,
    GenServer,
    Ignore,
    InvalidNameError,
    NoReply,
    Ok,
    ProcessExit,
    Reply,
    StartError,
    StartIgnored,
    Stop,
    Supervisor,
    receive,
    send,
)
from beamish.testing import capture_events, wait_until_idle
from tests.conditions import eventually


class Stack(GenServer):
    def init(self, items):
        return Ok(list(items))

    def handle_call(self, request, from_, state):
        match request:
            case "pop":
                return Reply(state[0], state[1:])
            case ("slow", seconds):
                beamish.send_after(beamish.self(), ("answer", from_), seconds)
                return NoReply(state)
            case "stop_me":
                return Stop("normal", state, reply="bye")
            case "crash":
                raise RuntimeError("crashed in call")
            case "bad":
                return "badreturn"
            case ("call_self",):
                return self._call_self(state)
            case "state":
                return Reply(state, state)

    async def _call_self(self, state):
        try:
            await GenServer.call(self.pid, "state")
        except CallError as failure:
            return Reply(failure.why, state)

    def handle_cast(self, request, state):
        match request:
            case ("push", item):
                return NoReply([item, *state])

    def handle_info(self, message, state):
        match message:
            case ("answer", from_):
                GenServer.reply(from_, "late answer")
                return NoReply(state)
        return super().handle_info(message, state)


async def test_start_link_links_and_start_does_not_23():
    linked = await Stack.start_link([1])
    unlinked = await Stack.start([2])
    links = beamish.process_info(beamish.self()).links
    assert linked in links and unlinked not in links
    await GenServer.stop(unlinked)


async def test_call_cast_and_reply():
    pid = await Stack.start_link(["a"])
    GenServer.cast(pid, ("push", "b"))
    assert await GenServer.call(pid, "pop") == "b"
    assert await GenServer.call(pid, "pop") == "a"


async def test_elixir_style_tuples_are_accepted():
    class Tuples(GenServer):
        def init(self, arg):
            return ("ok", arg)

        def handle_call(self, request, from_, state):
            return ("reply", state, state + 1)

        def handle_cast(self, request, state):
            return ("noreply", state * 10)

    pid = await Tuples.start_link(1)
    assert await GenServer.call(pid, "x") == 1
    GenServer.cast(pid, "x")
    assert await GenServer.call(pid, "x") == 20


async def test_cast_is_fire_and_forget_even_to_nothing_25():
    dead = await Stack.start([])
    await GenServer.stop(dead)
    assert GenServer.cast("nobody", "x") is None
    assert GenServer.cast(dead, "x") is None


async def test_call_timeout_keeps_server_and_drops_late_reply_26():
    pid = await Stack.start_link([1])
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, ("slow", 0.05), 0.01)
    assert info.value.why == "timeout"
    assert info.value.reason == ("timeout", ("GenServer.call", pid, ("slow", 0.05), 0.01))
    assert "no reply within 0.01s" in str(info.value)
    assert await GenServer.call(pid, "pop") == 1  # still serving
    await eventually(lambda: beamish.statistics().timers == 0, what="the slow answer's timer")
    await wait_until_idle()  # the late reply has been produced
    assert await receive(timeout=0, default=None) is None


async def test_call_to_itself_fails_with_calling_self_28():
    pid = await Stack.start_link([])
    assert await GenServer.call(pid, ("call_self",)) == "calling_self"


async def test_call_to_a_dead_or_unknown_server_is_noproc():
    with pytest.raises(CallError) as info:
        await GenServer.call("nobody", "hi")
    assert info.value.why == "noproc"
    assert info.value.reason == ("noproc", ("GenServer.call", "nobody", "hi", 5.0))


async def test_server_crash_during_call_29(caplog):
    beamish.trap_exit(True)
    pid = await Stack.start_link([])
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, "crash")
    assert isinstance(info.value.why, Crash)
    assert str(info.value.why.exception) == "crashed in call"
    exit_msg = await receive(Exit, timeout=1)
    assert exit_msg.pid == pid and isinstance(exit_msg.reason, Crash)
    assert "Stack" in caplog.text and "crashed in call" in caplog.text
    assert "last message" in caplog.text


async def test_bad_return_value_stops_the_server_after_terminate_29():
    terminated = []

    class Bad(Stack):
        def terminate(self, reason, state):
            terminated.append(reason)

    beamish.trap_exit(True)
    pid = await Bad.start_link([])
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, "bad")
    assert info.value.why == ("bad_return_value", "badreturn")
    assert terminated == [("bad_return_value", "badreturn")]
    assert not beamish.is_alive(pid)


async def test_a_bad_return_value_names_the_callback_and_what_it_may_return_29(caplog):
    """The exit reason stays OTP's ("bad_return_value", value); the caller's error and the
    crash report also say which callback returned it, and list what that callback may
    return."""

    class Counter(GenServer):
        def init(self, arg):
            return Ok(0) if arg == "ok" else arg

        def handle_call(self, request, from_, state):
            return state  # forgot Reply(state, state)

        def handle_cast(self, request, state):
            return state + 1  # forgot NoReply(...)

    beamish.trap_exit(True)
    pid = await Counter.start_link("ok")
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, "get")
    assert info.value.why == ("bad_return_value", 0)
    match info.value.why:
        case ("bad_return_value", 0):
            pass
        case _:
            pytest.fail("the reason no longer matches as OTP's tuple")
    text = str(info.value)
    assert "exited with reason ('bad_return_value', 0)" in text
    assert "Counter.handle_call returned 0" in text
    assert "Reply(value, state[, after])" in text and "NoReply(state[, after])" in text
    assert "Counter.handle_call returned 0" in caplog.text
    assert "Stop(reason, state[, reply=value])" in caplog.text
    assert await receive(Exit, timeout=1) == Exit(pid, ("bad_return_value", 0))

    caplog.clear()
    pid = await Counter.start_link("ok")
    GenServer.cast(pid, "increment")
    assert await receive(Exit, timeout=1) == Exit(pid, ("bad_return_value", 1))
    assert "Counter.handle_cast returned 1" in caplog.text
    assert "NoReply(state[, after])" in caplog.text and "Reply(value" not in caplog.text

    with pytest.raises(StartError) as failed:
        await Counter.start_link("bare")
    assert failed.value.reason == ("bad_return_value", "bare")
    assert "Counter.init returned 'bare'" in str(failed.value)
    assert "Ok(state[, after])" in str(failed.value)


async def test_server_killed_while_a_call_waits_29():
    pid = await Stack.start([])

    async def killer():
        await wait_until_idle()  # the call waits
        beamish.exit(pid, "killed by test")

    beamish.spawn(killer)
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, ("slow", 10))
    assert info.value.why == "killed by test"


async def test_stop_from_handle_call_replies_31():
    beamish.trap_exit(True)
    pid = await Stack.start_link([])
    assert await GenServer.call(pid, "stop_me") == "bye"
    assert await receive(Exit, timeout=1) == Exit(pid, "normal")


async def test_stop_with_a_reply_runs_terminate_before_replying_31():
    """OTP's gen_server runs terminate, then replies: the caller never sees the reply of a
    stopping server before its terminate is done, even an async one; and the reply goes
    out even when terminate fails (OTP replies in an ``after``)."""
    log = []

    class Closes(GenServer):
        def init(self, arg):
            return Ok(arg)

        def handle_call(self, request, from_, state):
            return ("stop", "normal", "bye", state)  # the tuple form of Stop(..., reply=)

        async def terminate(self, reason, state):
            await beamish.sleep(0.01)  # e.g. flushing a file
            log.append(("terminated", state))
            if state == "fails":
                raise RuntimeError("terminate failed")

    assert await GenServer.call(await Closes.start("closes"), "stop") == "bye"
    assert log == [("terminated", "closes")]
    assert await GenServer.call(await Closes.start("fails"), "stop") == "bye"
    assert log[-1] == ("terminated", "fails")


async def test_stop_with_shutdown_reason_is_not_logged_31(caplog):
    class Quitter(GenServer):
        def init(self, arg):
            return Ok(arg)

        def handle_call(self, request, from_, state):
            return Stop(("shutdown", "stop_reason"), state)

    beamish.trap_exit(True)
    pid = await Quitter.start_link(None)
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, "go")
    assert info.value.why == ("shutdown", "stop_reason")
    assert await receive(Exit, timeout=1) == Exit(pid, ("shutdown", "stop_reason"))
    assert "terminating" not in caplog.text


async def test_deferred_reply_from_another_process_32():
    class Deferring(GenServer):
        def init(self, arg):
            return Ok(0)

        def handle_call(self, request, from_, state):
            match request:
                case "later":
                    beamish.spawn(self.answer_later, from_)
                    return NoReply(state + 1)
                case "count":
                    return Reply(state, state)

        @staticmethod
        async def answer_later(from_):
            await beamish.sleep(0.02)  # the subject: the reply comes later, from elsewhere
            assert GenServer.reply(from_, "deferred") is None

    pid = await Deferring.start_link(None)
    caller = asyncio.ensure_future(GenServer.call(pid, "later"))
    await wait_until_idle()  # the server took "later" and handed it on
    assert await GenServer.call(pid, "count") == 1  # serving others meanwhile
    assert await caller == "deferred"


async def test_timeout_zero_does_not_preempt_a_queued_message_34():
    log = []

    class Waits(GenServer):
        def init(self, arg):
            send(beamish.self(), "queued")
            return Ok(None, 0)

        def handle_info(self, message, state):
            log.append(message)
            return NoReply(state)

    pid = await Waits.start_link(None)
    await wait_until_idle()  # a timeout of 0, had it been set, is due and fires too
    assert log == ["queued"]
    await GenServer.stop(pid)


async def test_idle_timeout_delivers_timeout_when_nothing_arrives(virtual_clock):
    log = []

    class Idle(GenServer):
        def init(self, arg):
            return Ok(0, 0.02)

        def handle_info(self, message, state):
            log.append(message)
            return NoReply(state)

    pid = await Idle.start_link(None)
    await virtual_clock.advance(0.01)
    assert log == []
    await virtual_clock.advance(0.01)
    assert log == ["timeout"]
    await GenServer.stop(pid)


async def test_handle_continue_runs_before_queued_messages_35():
    me = beamish.self()

    class Continues(GenServer):
        def init(self, arg):
            send(beamish.self(), "after_continue")
            return Ok(arg, Continue("msg"))

        def handle_continue(self, term, state):
            send(me, ("continue", term))
            if term == "first":
                return NoReply(state, Continue("msg"))
            return NoReply(state)

        def handle_info(self, message, state):
            send(me, message)
            return NoReply(state)

        def handle_call(self, request, from_, state):
            return Reply("ok", state, Continue(request))

    pid = await Continues.start_link(None)
    assert await receive(timeout=1) == ("continue", "msg")
    assert await receive(timeout=1) == "after_continue"
    assert await GenServer.call(pid, "first") == "ok"
    assert await receive(timeout=1) == ("continue", "first")
    assert await receive(timeout=1) == ("continue", "msg")


async def test_handle_continue_stop_ends_the_server_35():
    class StopsInContinue(GenServer):
        def init(self, arg):
            return Ok(arg, ("continue", "stop"))

        def handle_continue(self, term, state):
            return Stop("normal", state)

    beamish.trap_exit(True)
    pid = await StopsInContinue.start_link(None)
    assert await receive(Exit, timeout=1) == Exit(pid, "normal")


async def test_failed_init_leaves_no_registered_name_37():
    class Refuses(GenServer):
        def init(self, arg):
            return Ignore() if arg == "ignore" else Stop("stopped")

    for _ in range(3):
        with pytest.raises(StartIgnored):
            await Refuses.start_link("ignore", name="svc")
        assert beamish.whereis("svc") is None
        with pytest.raises(StartError) as info:
            await Refuses.start_link("stop", name="svc")
        assert info.value.reason == "stopped"
        assert beamish.whereis("svc") is None
    assert beamish.is_alive(beamish.self())  # the linked failure did not kill the caller


async def test_init_returning_an_error_fails_the_start_quietly_37(caplog):
    """OTP 26's gen_server: init returning {:error, reason} makes start_link return
    {:error, reason}; the server exits normal, with no crash report and no name left."""
    class Declines(GenServer):
        def init(self, arg):
            return ("error", ("bad_config", arg))

    beamish.trap_exit(True)
    with (capture_events(("beamish", "process", "exit")) as exited,
          pytest.raises(StartError) as info):
        await Declines.start_link("x", name="svc")
    exits = [e.metadata["reason"] for e in exited]
    assert info.value.reason == ("bad_config", "x")
    assert not isinstance(info.value, StartIgnored)
    assert exits == ["normal"]
    assert beamish.whereis("svc") is None
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert beamish.statistics().crashed == 0


async def test_init_crash_is_a_start_error_with_the_crash(caplog):
    class Explodes(GenServer):
        def init(self, arg):
            raise ValueError("bad config")

    with pytest.raises(StartError) as info:
        await Explodes.start_link(None)
    assert isinstance(info.value.reason, Crash)
    assert "bad config" in caplog.text


async def test_init_timeout_kills_the_server():
    class SlowInit(GenServer):
        async def init(self, arg):
            await beamish.sleep(10)
            return Ok(arg)

    with pytest.raises(StartError) as info:
        await SlowInit.start_link(None, timeout=0.02)
    assert info.value.reason == "timeout"
    await wait_until_idle()
    assert len(beamish.processes()) == 1


async def test_duplicate_name_on_start_38():
    pid = await Stack.start_link([], name="svc")
    with pytest.raises(StartError) as info:
        await Stack.start_link([], name="svc")
    assert info.value.reason == ("already_started", pid)
    assert await GenServer.call("svc", "state") == []


async def test_terminate_on_parent_exit_when_trapping_40a():
    me = beamish.self()

    class Traps(GenServer):
        def init(self, arg):
            beamish.trap_exit(True)
            return Ok(arg)

        def terminate(self, reason, state):
            send(me, ("terminated", reason))

    async def parent():
        await Traps.start_link(None)
        send(me, "started")
        await receive()

    parent_pid = beamish.spawn(parent)
    await receive("started", timeout=1)
    beamish.exit(parent_pid, "shutdown")
    assert await receive(timeout=1) == ("terminated", "shutdown")


async def test_terminate_on_parent_normal_exit_when_trapping_40a():
    me = beamish.self()

    class Traps(GenServer):
        def init(self, arg):
            beamish.trap_exit(True)
            return Ok(arg)

        def terminate(self, reason, state):
            send(me, ("terminated", reason))

    async def parent():
        await Traps.start_link(None)

    beamish.spawn(parent)
    assert await receive(timeout=1) == ("terminated", "normal")


async def test_no_terminate_when_not_trapping_40b():
    me = beamish.self()

    class NoTrap(GenServer):
        def init(self, arg):
            return Ok(arg)

        def terminate(self, reason, state):
            send(me, "terminate ran")

    async def parent():
        pid = await NoTrap.start_link(None)
        send(me, ("server", pid))
        await receive()

    parent_pid = beamish.spawn(parent)
    (_, server) = await receive(timeout=1)
    ref = beamish.monitor(server)
    beamish.exit(parent_pid, "shutdown")
    assert await receive(Down, timeout=1) == Down(ref, server, "shutdown")
    assert await receive("terminate ran", timeout=0.05, default=None) is None


async def test_exit_from_another_linked_process_goes_to_handle_info_40c():
    me = beamish.self()

    class Watcher(GenServer):
        def init(self, arg):
            beamish.trap_exit(True)
            beamish.link(arg)
            return Ok(arg)

        def handle_info(self, message, state):
            send(me, message)
            return NoReply(state)

    other = beamish.spawn(receive)
    pid = await Watcher.start_link(other)
    beamish.exit(other, "bye")
    assert await receive(timeout=1) == Exit(other, "bye")
    assert beamish.is_alive(pid)


async def test_terminate_runs_after_earlier_messages_and_kill_skips_it_41():
    me = beamish.self()

    class Counts(GenServer):
        def init(self, arg):
            beamish.trap_exit(True)
            return Ok([])

        def handle_cast(self, request, state):
            return NoReply([*state, request])

        def terminate(self, reason, state):
            send(me, ("terminate", reason, state))

    async def parent():
        pid = await Counts.start_link(None)
        send(me, pid)
        await receive()

    parent_pid = beamish.spawn(parent)
    pid = await receive(timeout=1)
    await GenServer.suspend(pid)
    for i in range(3):
        GenServer.cast(pid, i)
    beamish.exit(parent_pid, "shutdown")
    await GenServer.resume(pid)
    assert await receive(timeout=1) == ("terminate", "shutdown", [0, 1, 2])

    killed = await Counts.start(None)
    beamish.exit(killed, "kill")
    assert await receive(timeout=0.05, default=None) is None


async def test_stop_43():
    terminated = []

    class Stoppable(Stack):
        def terminate(self, reason, state):
            terminated.append(reason)

    pid = await Stoppable.start([], name="stoppable")
    assert await GenServer.stop(pid) is None
    assert not beamish.is_alive(pid) and terminated == ["normal"]
    with pytest.raises(CallError) as info:
        await GenServer.stop(pid)
    assert info.value.reason == ("noproc", ("GenServer.stop", pid, "normal", None))
    with pytest.raises(CallError):
        await GenServer.stop(None)
    other = await Stoppable.start([], name="other")
    await GenServer.stop("other", "other_reason")
    assert terminated[-1] == "other_reason" and not beamish.is_alive(other)
    live = await Stoppable.start([])
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        await GenServer.stop(live, "normal", "invalid")
    assert beamish.is_alive(live)
    await GenServer.stop(live)


async def test_stop_from_inside_is_calling_self_43():
    class StopsItself(GenServer):
        def init(self, arg):
            return Ok(arg)

        async def handle_call(self, request, from_, state):
            try:
                await GenServer.stop(self.pid)
            except CallError as failure:
                return Reply(failure.why, state)

    pid = await StopsItself.start_link(None)
    assert await GenServer.call(pid, "go") == "calling_self"


async def test_missing_callbacks_44(caplog):
    class Bare(GenServer):
        def init(self, arg):
            return Ok(arg)

    beamish.trap_exit(True)
    pid = await Bare.start_link(None)
    send(pid, "plain message")
    await wait_until_idle()
    assert beamish.is_alive(pid)
    assert "unexpected message" in caplog.text and "plain message" in caplog.text
    with pytest.raises(CallError) as info:
        await GenServer.call(pid, "hello")
    assert "defines no handle_call" in str(info.value.why.exception)
    casted = await Bare.start_link(None)
    GenServer.cast(casted, "hi")
    msg = await receive(lambda m: type(m) is Exit and m.pid == casted, timeout=1)
    assert "defines no handle_cast" in str(msg.reason.exception)


async def test_code_change_46():
    class Versioned(GenServer):
        def init(self, arg):
            return Ok({"v": 1})

        def code_change(self, old_vsn, state, extra):
            if extra == "raise":
                raise RuntimeError("cannot migrate")
            return {**state, "v": 2, "from": old_vsn}

        def handle_call(self, request, from_, state):
            return Reply(state, state)

    pid = await Versioned.start_link(None)
    with pytest.raises(RuntimeError, match="suspended"):
        await GenServer.change_code(pid, "1.0", None)
    await GenServer.suspend(pid)
    await GenServer.change_code(pid, "1.0", None)
    with pytest.raises(RuntimeError, match="cannot migrate"):
        await GenServer.change_code(pid, "1.0", "raise")
    await GenServer.resume(pid)
    assert await GenServer.call(pid, "get") == {"v": 2, "from": "1.0"}


async def test_system_functions_get_and_replace_state_and_status():
    pid = await Stack.start_link([1], name="stack")
    assert await GenServer.get_state(pid) == [1]
    assert await GenServer.replace_state(pid, lambda s: [*s, 2]) == [1, 2]
    status = await GenServer.get_status("stack")
    assert status["name"] == "stack" and status["state"] == [1, 2]
    assert status["status"] == "running" and status["parent"] == beamish.self()


async def test_suspended_server_defers_messages_in_order():
    pid = await Stack.start_link([])
    await GenServer.suspend(pid)
    for i in range(3):
        GenServer.cast(pid, ("push", i))
    assert (await GenServer.get_status(pid))["status"] == "suspended"
    assert await GenServer.get_state(pid) == []  # system requests still served
    await GenServer.resume(pid)
    assert await GenServer.call(pid, "state") == [2, 1, 0]


async def test_whereis_and_child_spec_47():
    pid = await Stack.start_link([], name="whereis_server")
    assert GenServer.whereis("whereis_server") == pid
    assert GenServer.whereis(pid) == pid
    assert GenServer.whereis("whereis_bad_server") is None
    spec = Stack.child_spec([1])
    assert spec.id is Stack and spec.restart == "permanent" and spec.shutdown == 5.0
    assert spec.start == (Stack.start_link, ([1],))

    class Custom(GenServer, restart="transient", shutdown=10, id="custom"):
        pass

    custom = Custom.child_spec(None)
    assert (custom.id, custom.restart, custom.shutdown) == ("custom", "transient", 10)
    with pytest.raises(TypeError, match="unknown child spec key"):

        class Wrong(GenServer, restrat="temporary"):
            pass


async def test_a_server_used_without_await_asks_whether_await_was_forgotten():
    """start_link is a coroutine: used as a pid it used to fail with "invalid server name
    <coroutine object ...>"; every API that takes a server says what went wrong."""

    async def pending_sup():
        return await Supervisor.start_link([], strategy="one_for_one")

    attempts = [
        lambda server: GenServer.call(server, "pop"),
        lambda server: GenServer.cast(server, "pop"),
        lambda server: GenServer.stop(server),
        lambda server: GenServer.get_state(server),
        lambda server: Supervisor.which_children(server),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match="did you forget await") as info:
            await _maybe_await(attempt(Stack.start_link([])))
        assert "Stack.start_link" in str(info.value)
    with pytest.raises(InvalidNameError, match=r"pending_sup\(\.\.\.\).*did you forget await"):
        await Supervisor.count_children(pending_sup())
    assert beamish.processes() == [beamish.self()]  # nothing was started


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value


async def test_name_option_validation_22():
    for bad in [("via", object(), "x"), ("nope", 1), 42]:
        with pytest.raises(InvalidNameError, match="Accepted names"):
            await Stack.start_link([], name=bad)
    with pytest.raises(InvalidNameError, match="need this node to be in a cluster"):
        await Stack.start_link([], name=("global", "x"))
    pid = await Stack.start_link([], name=None)
    assert beamish.process_info(pid).name is None


async def test_async_callbacks():
    class AsyncServer(GenServer):
        async def init(self, arg):
            await beamish.sleep(0.001)
            return Ok(arg)

        async def handle_call(self, request, from_, state):
            await beamish.sleep(0.001)
            return Reply(state + request, state + request)

        async def handle_cast(self, request, state):
            await beamish.sleep(0.001)
            return NoReply(state * request)

    pid = await AsyncServer.start_link(1)
    assert await GenServer.call(pid, 1) == 2
    GenServer.cast(pid, 10)
    assert await GenServer.call(pid, 0) == 20


async def test_a_call_failure_uncaught_ends_the_caller_with_the_reason():
    beamish.trap_exit(True)

    async def caller():
        await GenServer.call("nobody", "x", 1)

    pid = beamish.spawn_link(caller)
    assert await receive(Exit, timeout=1) == Exit(
        pid, ("noproc", ("GenServer.call", "nobody", "x", 1))
    )


async def test_trace_logs_messages(caplog):
    caplog.set_level(logging.DEBUG, logger="beamish.gen_server")
    pid = await Stack.start_link([1])
    await GenServer.trace(pid)
    await GenServer.call(pid, "state")
    assert "got call 'state'" in caplog.text


async def test_genserver_with_constructor_arguments_is_refused_with_advice():
    class NeedsArgs(GenServer):
        def __init__(self, x):
            super().__init__()

    with pytest.raises(TypeError, match="receives its argument in init"):
        await NeedsArgs.start_link(None)


async def test_process_exit_raised_in_a_callback_stops_the_server_with_its_reason():
    class Exits(GenServer):
        def init(self, arg):
            return Ok(arg)

        def handle_cast(self, request, state):
            raise ProcessExit(("custom", request))

    server = await Exits.start(None)
    beamish.monitor(server)
    GenServer.cast(server, 1)
    assert (await receive(Down, timeout=1)).reason == ("custom", 1)


async def test_get_state_of_a_state_that_cannot_be_sent_fails_the_caller_not_the_server():
    import threading

    class Locked(GenServer):
        def init(self, arg):
            return Ok({"lock": threading.Lock()})

    pid = await Locked.start()
    with pytest.raises(beamish.MessageCopyError, match="cannot send"):
        await GenServer.get_state(pid)
    assert beamish.is_alive(pid)  # a debugging request never takes the server down
    await GenServer.stop(pid)


class _InitForever(GenServer):
    async def init(self, arg):
        beamish.send(arg, ("initing", beamish.self()))
        await asyncio.Event().wait()  # never answers


async def test_a_server_killed_in_init_fails_its_start_link_at_once_not_at_the_timeout():
    """proc_lib's start: the starter learns of the death (here an exit signal, kill) as the
    start's error, at once."""
    beamish.trap_exit(True)
    me = beamish.self()
    loop = asyncio.get_running_loop()
    began = loop.time()
    starting = asyncio.ensure_future(_InitForever.start_link(me, timeout=30))
    _, pid = await receive(lambda m: type(m) is tuple and m[0] == "initing", timeout=1)
    beamish.exit(pid, "kill")
    with pytest.raises(StartError) as failed:
        await starting
    assert failed.value.reason == "killed"
    assert loop.time() - began < 5
    assert await receive(Exit, timeout=1) == Exit(pid, "killed")  # the link's, as in OTP
