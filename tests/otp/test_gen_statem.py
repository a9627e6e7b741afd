"""GenStateMachine: starting, naming, callback modes, calls and replies, stopping, sys.

Each test names the gen_statem behaviour it checks and cites where OTP states it: the
gen_statem reference manual (DOC, lib/stdlib/src/gen_statem.erl) or a case of
lib/stdlib/test/gen_statem_SUITE.erl (SUITE). Events and timeouts are in
test_gen_statem_events.py, the pure engine in test_gen_statem_transitions.py.
"""

from __future__ import annotations

import logging

import pytest

import beamish
from beamish import (
    ANY,
    CallError,
    Crash,
    Down,
    Exit,
    GenServer,
    GenStateMachine,
    Hibernate,
    Ignore,
    KeepState,
    KeepStateAndData,
    NextEvent,
    NextState,
    Postpone,
    Registry,
    ReplyAction,
    StartError,
    StartIgnored,
    Stop,
    StopAndReply,
    Supervisor,
    send,
)
from beamish.testing import assert_receive, refute_received, wait_until_idle


class PushButton(GenStateMachine, callback_mode="state_functions"):
    """The pushbutton of gen_statem's documentation, in callback mode state_functions."""

    def init(self, arg):
        match arg:
            case "ignore":
                return Ignore()
            case "stop":
                return Stop("stopped")
            case "error":
                return ("error", "refused")
            case "bad":
                return "badreturn"
            case "crash":
                raise ValueError("init crashed")
            case "sleep":
                return self._sleep()
        return NextState("off", 0)

    async def _sleep(self):
        await beamish.sleep(10)
        return NextState("off", 0)

    def off(self, event_type, content, data):
        match event_type, content:
            case ("call", from_), "push":
                return NextState("on", data + 1, [ReplyAction(from_, "on")])
        return self.common(event_type, content, data)

    def on(self, event_type, content, data):
        match event_type, content:
            case ("call", from_), "push":
                return NextState("off", data, [ReplyAction(from_, "off")])
        return self.common(event_type, content, data)

    def common(self, event_type, content, data):
        match event_type, content:
            case ("call", from_), "get_count":
                return KeepState(data, [ReplyAction(from_, data)])
            case ("call", from_), ("stop", reason):
                return StopAndReply(reason, [ReplyAction(from_, "stopped")])
            case ("call", from_), ("delayed", seconds):
                beamish.send_after(beamish.self(), ("answer", from_), seconds)
                return KeepStateAndData()
            case "info", ("answer", from_):
                GenStateMachine.reply(from_, "delayed")
                return KeepStateAndData()
            case ("call", _), "badreturn":
                return "badreturn"
            case ("call", _), "badaction":
                return KeepStateAndData(["badaction"])
            case ("call", _), "crash":
                raise RuntimeError("crashed in state " + self._state_name())
        return KeepState(data)

    def _state_name(self):
        return "off or on"


class PushButtonEvents(GenStateMachine):
    """The same machine in callback mode handle_event_function, with Elixir's tuples."""

    def init(self, arg):
        return ("ok", "off", 0)

    def handle_event(self, event_type, content, state, data):
        match event_type, content, state:
            case ("call", from_), "push", "off":
                return ("next_state", "on", data + 1, [("reply", from_, "on")])
            case ("call", from_), "push", "on":
                return ("next_state", "off", data, [("reply", from_, "off")])
            case ("call", from_), "get_count", _:
                return ("keep_state", data, [("reply", from_, data)])
        return "keep_state_and_data"


async def push_and_count(machine):
    """do_func_test of the SUITE: the pushbutton session of the documentation."""
    assert await GenStateMachine.call(machine, "get_count") == 0
    assert await GenStateMachine.call(machine, "push") == "on"
    assert await GenStateMachine.call(machine, "get_count") == 1
    assert await GenStateMachine.call(machine, "push") == "off"
    assert await GenStateMachine.call(machine, "get_count") == 1


# -- starting and naming ---------------------------------------------------------------------


@pytest.mark.parametrize("machine", [PushButton, PushButtonEvents])
async def test_the_pushbutton_of_the_documentation_in_both_callback_modes(machine):
    # DOC "Example": state_functions and handle_event_function give the same session
    pid = await machine.start_link()
    await push_and_count(pid)
    GenStateMachine.cast(pid, "ignored")
    send(pid, "ignored too")
    assert await GenStateMachine.call(pid, "get_count") == 1
    await GenStateMachine.stop(pid)
    with pytest.raises(CallError) as gone:
        await GenStateMachine.call(pid, "push")
    assert gone.value.why == "noproc"


async def test_start_link_links_and_start_does_not():
    # SUITE start1/start2/start6
    linked = await PushButton.start_link()
    unlinked = await PushButton.start()
    links = beamish.process_info(beamish.self()).links
    assert linked in links and unlinked not in links
    ref = beamish.monitor(unlinked)
    assert await GenStateMachine.call(unlinked, ("stop", "shutdown")) == "stopped"
    assert await assert_receive(Down) == Down(ref, unlinked, "shutdown")


async def test_a_registered_name_and_already_started():
    # SUITE start8/start9: {error, {already_started, Pid}}; calls by name
    pid = await PushButton.start(name="my_stm")
    with pytest.raises(StartError) as taken:
        await PushButton.start_link(name="my_stm")
    assert taken.value.reason == ("already_started", pid)
    await push_and_count("my_stm")
    assert GenStateMachine.whereis("my_stm") == pid
    await GenStateMachine.stop("my_stm")
    assert GenStateMachine.whereis("my_stm") is None


async def test_a_via_name_and_already_started():
    # SUITE start12: {via, Module, Name}
    await Registry.start_link(keys="unique", name="statems")
    name = Registry.via("statems", "my_stm")
    pid = await PushButton.start_link(name=name)
    with pytest.raises(StartError) as taken:
        await PushButton.start(name=name)
    assert taken.value.reason == ("already_started", pid)
    await push_and_count(name)
    GenStateMachine.cast(name, "ignored")
    await GenStateMachine.stop(name)
    with pytest.raises(CallError) as gone:
        await GenStateMachine.stop(name)
    assert gone.value.why == "noproc"


async def test_init_results_that_start_nothing():
    # SUITE start4 (ignore), start5 ({error, stopped}); DOC init_result(): {error, Reason}
    # since OTP 26, a quiet failure; no name is left behind (DOC start_link/4 warning)
    beamish.trap_exit(True)
    with pytest.raises(StartIgnored):
        await PushButton.start_link("ignore", name="statem")
    with pytest.raises(StartError) as stopped:
        await PushButton.start_link("stop", name="statem")
    assert stopped.value.reason == "stopped"
    with pytest.raises(StartError) as refused:
        await PushButton.start_link("error", name="statem")
    assert refused.value.reason == "refused"
    assert GenStateMachine.whereis("statem") is None
    await refute_received()  # the caller gets an error, not an exit signal


async def test_init_error_tuple_is_quiet_and_init_stop_is_not(caplog):
    # DOC init_result(): {error, Reason} gives "no crash report"; the process exits normal
    down = []
    for arg in ("error", "crash"):
        with pytest.raises(StartError):
            await PushButton.start(arg)
        down.append("failed in init" in caplog.text)
    assert down == [False, True]
    assert "init crashed" in caplog.text


async def test_init_that_crashes_or_returns_a_bad_value_is_a_start_error(caplog):
    # DOC start_link/4: {error, Reason} if init failed; gen_statem's {bad_return_from_init, R}
    with pytest.raises(StartError) as crashed:
        await PushButton.start("crash")
    assert isinstance(crashed.value.reason, Crash)
    with pytest.raises(StartError) as bad:
        await PushButton.start("bad")
    assert bad.value.reason == ("bad_return_from_init", "badreturn")
    assert "NextState(state, data[, actions])" in str(bad.value)
    assert "('ok', state, data[, actions])" in caplog.text


async def test_init_that_takes_too_long_is_killed(virtual_clock):
    # SUITE start3: {error, timeout}
    starting = beamish.spawn_monitor(_start_sleeper, beamish.self())
    await virtual_clock.advance(5)
    assert (await assert_receive(("start", ANY)))[1] == "timeout"
    assert (await assert_receive(Down)).pid == starting[0]


async def _start_sleeper(parent):
    try:
        await PushButton.start("sleep", timeout=5)
    except StartError as failed:
        send(parent, ("start", failed.reason))


async def test_init_actions_run_on_entering_the_first_state():
    # DOC init_result(): "The Actions are executed when entering the first state just as for
    # a state callback, except that the action postpone is forced to false"
    me = beamish.self()

    class Starter(GenStateMachine):
        def init(self, arg):
            return NextState("first", 0, [NextEvent("internal", "go"), Postpone()])

        def handle_event(self, event_type, content, state, data):
            send(me, (event_type, content, state))
            return KeepStateAndData()

    pid = await Starter.start()
    assert await assert_receive() == ("internal", "go", "first")
    await refute_received()
    await GenStateMachine.stop(pid)


async def test_a_callback_mode_is_checked_when_the_class_is_defined():
    # DOC callback_mode_result(): callback_mode() | [callback_mode() | state_enter()]
    with pytest.raises(TypeError, match="invalid callback_mode 'state_function'"):

        class Typo(GenStateMachine, callback_mode="state_function"):
            pass

    with pytest.raises(TypeError, match="'state_functions', optionally with 'state_enter'"):

        class Two(GenStateMachine, callback_mode=["state_functions", "handle_event_function"]):
            pass

    class Enter(
        GenStateMachine, callback_mode=["state_enter", "state_functions"], restart="temporary"
    ):
        pass

    assert Enter.child_spec(None).restart == "temporary"


async def test_state_functions_mode_needs_a_method_per_state(caplog):
    # DOC 'StateName'/3: the state is the name of the callback; a missing one crashes
    class Missing(GenStateMachine, callback_mode="state_functions"):
        def init(self, arg):
            return NextState(arg, None)

        def here(self, event_type, content, data):
            return NextState("nowhere", data)

    beamish.trap_exit(True)
    pid = await Missing.start_link("here")
    GenStateMachine.cast(pid, "go")  # to "nowhere"
    GenStateMachine.cast(pid, "and then?")  # nothing handles state "nowhere"
    exited = await assert_receive(Exit)
    assert isinstance(exited.reason, Crash)
    assert "defines no method nowhere(self, event_type, content, data)" in str(
        exited.reason.exception
    )
    reserved = await Missing.start_link("terminate")  # DOC: "the state name terminate" ...
    GenStateMachine.cast(reserved, "go")
    exited = await assert_receive(Exit)
    assert "it names a GenStateMachine attribute" in str(exited.reason.exception)


async def test_missing_handle_event_logs_messages_and_crashes_on_other_events(caplog):
    # as GenServer's defaults (OTP-SEMANTICS item 44): an unexpected message is logged, cut
    # short, and the machine carries on; any other event it cannot handle crashes it
    class Bare(GenStateMachine):
        def init(self, arg):
            return NextState("idle", None)

    beamish.trap_exit(True)
    pid = await Bare.start_link()
    send(pid, ("hello", "x" * 10_000))
    assert await GenStateMachine.get_state(pid) == ("idle", None)
    assert "received an unexpected message in state 'idle'" in caplog.text
    assert "x" * 1000 not in caplog.text
    GenStateMachine.cast(pid, "job")
    exited = await assert_receive(Exit)
    assert "got the event ('cast', 'job') in state 'idle' but defines no handle_event" in str(
        exited.reason.exception
    )


# -- calls, casts and replies ----------------------------------------------------------------


async def test_event_types_of_calls_casts_and_messages():
    # DOC external_event_type(): {call, From}, cast, info
    me = beamish.self()

    class Echo(GenStateMachine):
        def init(self, arg):
            return NextState("s", None)

        def handle_event(self, event_type, content, state, data):
            match event_type:
                case ("call", from_):
                    return KeepStateAndData([ReplyAction(from_, ("call", content))])
            send(me, (event_type, content))
            return KeepStateAndData()

    pid = await Echo.start()
    assert await GenStateMachine.call(pid, "c") == ("call", "c")
    GenStateMachine.cast(pid, "k")
    send(pid, "i")
    assert await assert_receive() == ("cast", "k")
    assert await assert_receive() == ("info", "i")
    # gen_server's call and cast reach a gen_statem too (both send '$gen_call'/'$gen_cast')
    assert await GenServer.call(pid, "from a GenServer client") == (
        "call",
        "from a GenServer client",
    )
    GenServer.cast(pid, "k2")
    assert await assert_receive() == ("cast", "k2")
    await GenStateMachine.stop(pid)


async def test_a_reply_can_be_sent_from_a_later_state():
    # DOC "Reply to a call": "A reply can be sent from any state callback, not just the one
    # that got the request event"
    class Later(GenStateMachine, callback_mode="state_functions"):
        def init(self, arg):
            return NextState("waiting", None)

        def waiting(self, event_type, content, data):
            match event_type, content:
                case ("call", from_), "ask":
                    return NextState("answering", from_)

        def answering(self, event_type, content, from_):
            match event_type, content:
                case "cast", answer:
                    return NextState("waiting", None, [("reply", from_, answer)])

    pid = await Later.start()

    async def asker(me):
        send(me, ("answer", await GenStateMachine.call(pid, "ask")))

    beamish.spawn(asker, beamish.self())
    await wait_until_idle()
    GenStateMachine.cast(pid, 42)
    assert await assert_receive() == ("answer", 42)
    await GenStateMachine.stop(pid)


async def test_a_call_timeout_keeps_the_machine_and_drops_the_late_reply():
    # SUITE abnormal1: {timeout, _} and the late reply never reaches the caller (EEP 53)
    pid = await PushButton.start(name="abnormal1")
    assert await GenStateMachine.call("abnormal1", ("delayed", 0.001), 5) == "delayed"
    with pytest.raises(CallError) as late:
        await GenStateMachine.call("abnormal1", ("delayed", 0.2), 0.01)
    assert late.value.why == "timeout"
    assert late.value.call == ("GenStateMachine.call", "abnormal1", ("delayed", 0.2), 0.01)
    # a later answer: by the time it comes, the machine has answered the abandoned call
    assert await GenStateMachine.call(pid, ("delayed", 0.25)) == "delayed"
    await refute_received()
    assert await GenStateMachine.call(pid, "get_count") == 0
    await GenStateMachine.stop(pid)


async def test_calls_to_nobody_to_oneself_and_with_a_bad_timeout():
    # DOC call/3: fails with {Reason, {gen_statem, call, ...}}; a call to oneself
    with pytest.raises(CallError) as nobody:
        await GenStateMachine.call("nobody", "push")
    assert nobody.value.why == "noproc"

    class Selfish(GenStateMachine):
        def init(self, arg):
            return NextState("s", None)

        async def handle_event(self, event_type, content, state, data):
            match event_type, content:
                case ("call", from_), "call yourself":
                    try:
                        await GenStateMachine.call(beamish.self(), "hello")
                    except CallError as failed:
                        return KeepStateAndData([ReplyAction(from_, failed.why)])

    pid = await Selfish.start()
    assert await GenStateMachine.call(pid, "call yourself") == "calling_self"
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        GenStateMachine.call(pid, "x", timeout=-1)
    await GenStateMachine.stop(pid)


# -- stopping --------------------------------------------------------------------------------


async def test_stop_with_reasons_by_pid_and_by_name():
    # SUITE stop1 (normal, then noproc), stop2 (other reason), stop3 (invalid timeout), stop4
    pid = await PushButton.start()
    await GenStateMachine.stop(pid)
    assert not beamish.is_alive(pid)
    with pytest.raises(CallError) as again:
        await GenStateMachine.stop(pid)
    assert again.value.why == "noproc"
    other = await PushButton.start()
    await GenStateMachine.stop(other, "other_reason")
    assert not beamish.is_alive(other)
    alive = await PushButton.start(name="to_stop")
    with pytest.raises(ValueError):
        await GenStateMachine.stop(alive, "other_reason", "invalid_timeout")
    assert beamish.is_alive(alive)
    await GenStateMachine.stop("to_stop")
    assert not beamish.is_alive(alive)


async def test_stop_and_reply_sends_the_replies_then_exits():
    # SUITE stop_and_reply / shutdown: the replies, then {'EXIT', Pid, Reason}; a shutdown
    # reason is not logged as a crash
    beamish.trap_exit(True)
    pid = await PushButton.start_link()
    assert await GenStateMachine.call(pid, ("stop", ("shutdown", "reason"))) == "stopped"
    assert await assert_receive(Exit) == Exit(pid, ("shutdown", "reason"))
    with pytest.raises(CallError) as gone:
        await GenStateMachine.call(pid, "hej")
    assert gone.value.why == "noproc"


async def test_a_bad_return_crashes_the_machine_and_the_report_lists_the_returns(caplog):
    # SUITE abnormal2: {bad_return_from_state_function, badreturn}, the caller exits with it
    beamish.trap_exit(True)
    pid = await PushButton.start_link()
    with pytest.raises(CallError) as failed:
        await GenStateMachine.call(pid, "badreturn")
    assert failed.value.why == ("bad_return_from_state_function", "badreturn")
    assert await assert_receive(Exit) == Exit(pid, failed.value.why)
    assert "PushButton" in caplog.text and "terminating" in caplog.text
    assert "it must return one of: NextState(state, data[, actions])" in caplog.text


async def test_a_bad_action_crashes_the_machine():
    # SUITE abnormal3: {bad_action_from_state_function, badaction}
    beamish.trap_exit(True)
    pid = await PushButton.start_link()
    with pytest.raises(CallError) as failed:
        await GenStateMachine.call(pid, "badaction")
    assert failed.value.why == ("bad_action_from_state_function", "badaction")
    assert await assert_receive(Exit) == Exit(pid, failed.value.why)


async def test_a_crash_is_reported_once_with_the_event_the_state_and_the_data(caplog):
    # DOC terminate/3: terminate runs on a callback failure; an error report is logged,
    # as a GenServer's (reason, last message, state, traceback)
    me = beamish.self()

    class Reporting(PushButton):
        def terminate(self, reason, state, data):
            send(me, ("terminate", reason, state, data))

    beamish.trap_exit(True)
    pid = await Reporting.start_link()
    assert await GenStateMachine.call(pid, "push") == "on"
    with pytest.raises(CallError):
        await GenStateMachine.call(pid, "crash")
    (_, reason, state, data) = await assert_receive(("terminate", ANY, ANY, ANY))
    assert isinstance(reason, Crash) and (state, data) == ("on", 1)
    records = [r for r in caplog.records if r.name == "beamish.gen_statem"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR
    text = records[0].getMessage()
    for part in (
        "Reporting",
        "terminating",
        "** reason: Crash(RuntimeError(",
        "** last event: (('call', ReplyTo(",
        "'crash')",
        "** state: 'on'",
        "** data: 1",
    ):
        assert part in text
    assert "crashed in state off or on" in caplog.text  # the traceback


async def test_a_crash_in_terminate_becomes_the_exit_reason():
    # SUITE terminate_crash_format: the exit reason is terminate's failure
    class BadTerminate(PushButton):
        def terminate(self, reason, state, data):
            raise RuntimeError("crash in terminate")

    beamish.trap_exit(True)
    pid = await BadTerminate.start_link()
    with pytest.raises(CallError) as failed:
        await GenStateMachine.stop(pid)
    assert str(failed.value.why.exception) == "crash in terminate"
    assert (await assert_receive(Exit)).reason == failed.value.why


async def test_terminate_runs_on_a_parent_exit_only_when_trapping():
    # DOC terminate/3: called on an 'EXIT' from the parent if the gen_statem traps exits;
    # "If the gen_statem process is not set up to trap exit signals ... not called"
    me = beamish.self()

    class Child(GenStateMachine):
        def init(self, trap):
            beamish.trap_exit(trap)
            return NextState("s", trap)

        def terminate(self, reason, state, data):
            send(me, ("terminated", reason, data))

    async def parent(trap):
        pid = await Child.start_link(trap)
        send(me, ("child", pid))
        await beamish.receive()

    for trap in (True, False):
        parent_pid = beamish.spawn(parent, trap)
        (_, child) = await assert_receive(("child", ANY))
        ref = beamish.monitor(child)
        beamish.exit(parent_pid, "shutdown")
        assert (await assert_receive(Down)) == Down(ref, child, "shutdown")
        if trap:
            assert await assert_receive(("terminated", ANY, ANY)) == (
                "terminated",
                "shutdown",
                True,
            )
    await refute_received()


async def test_a_suspended_machine_still_terminates_when_its_parent_exits():
    # sys.erl suspend_loop: a suspended process takes system messages and the parent's
    # {'EXIT', Parent, Reason}, which runs system_terminate (terminate, then exit)
    me = beamish.self()

    class Child(GenStateMachine):
        def init(self, arg):
            beamish.trap_exit(True)
            return NextState("s", None)

        def terminate(self, reason, state, data):
            send(me, ("terminated", reason))

    async def parent():
        send(me, ("child", await Child.start_link()))
        await beamish.receive()

    parent_pid = beamish.spawn(parent)
    (_, child) = await assert_receive(("child", ANY))
    await GenStateMachine.suspend(child)
    ref = beamish.monitor(child)
    beamish.exit(parent_pid, "shutdown")
    assert await assert_receive(("terminated", ANY)) == ("terminated", "shutdown")
    assert await assert_receive(Down) == Down(ref, child, "shutdown")


# -- sys -------------------------------------------------------------------------------------


async def test_get_state_and_replace_state():
    # SUITE get_state / replace_state: {State, Data}; a failing fun changes nothing; works
    # while suspended
    pid = await PushButton.start()
    assert await GenStateMachine.get_state(pid) == ("off", 0)
    assert await GenStateMachine.replace_state(pid, lambda sd: ("on", "replaced")) == (
        "on",
        "replaced",
    )
    assert await GenStateMachine.get_state(pid) == ("on", "replaced")
    with pytest.raises(ZeroDivisionError):
        await GenStateMachine.replace_state(pid, lambda sd: 1 / 0)
    with pytest.raises(TypeError, match="must return \\(state, data\\)"):
        await GenStateMachine.replace_state(pid, lambda sd: "just a state")
    await GenStateMachine.suspend(pid)
    assert await GenStateMachine.get_state(pid) == ("on", "replaced")  # while suspended
    await GenStateMachine.replace_state(pid, lambda sd: ("off", 5))
    await GenStateMachine.resume(pid)
    assert await GenStateMachine.call(pid, "get_count") == 5
    assert await GenServer.get_state(pid) == ("off", 5)  # sys works on any behaviour
    await GenStateMachine.stop(pid)


async def test_a_suspended_machine_handles_what_arrived_once_resumed_in_order():
    # SUITE sys1: a call to a suspended machine waits until resume
    me = beamish.self()
    pid = await PushButton.start(name="sys1")
    await GenStateMachine.suspend(pid)

    async def caller(request):
        send(me, (request, await GenStateMachine.call(pid, request)))

    beamish.spawn(caller, "push")
    await wait_until_idle()
    beamish.spawn(caller, "get_count")
    await wait_until_idle()
    await refute_received()
    status = await GenStateMachine.get_status("sys1")
    assert (status["status"], status["message_queue_len"], status["name"]) == (
        "suspended",
        2,
        "sys1",
    )
    await GenStateMachine.resume(pid)
    assert await assert_receive() == ("push", "on")
    assert await assert_receive() == ("get_count", 1)
    await GenStateMachine.stop(pid)


async def test_code_change_renames_the_state_and_rereads_the_callback_mode():
    # SUITE code_change: sys:change_code of a suspended machine; DOC state_enter(): a state
    # transformed by code_change is a rename, not a state change
    class Upgraded(PushButton):
        def code_change(self, old_vsn, state, data, extra):
            if extra == "fail":
                raise RuntimeError("cannot upgrade")
            return state, (old_vsn, data, extra)

    pid = await Upgraded.start()
    with pytest.raises(RuntimeError, match="suspended"):
        await GenStateMachine.change_code(pid, "old_vsn", "extra")
    await GenStateMachine.suspend(pid)
    with pytest.raises(RuntimeError, match="cannot upgrade"):
        await GenStateMachine.change_code(pid, "old_vsn", "fail")
    assert await GenStateMachine.get_state(pid) == ("off", 0)
    await GenStateMachine.change_code(pid, "old_vsn", "extra")
    await GenStateMachine.resume(pid)
    assert await GenStateMachine.get_state(pid) == ("off", ("old_vsn", 0, "extra"))
    await GenStateMachine.stop(pid)


async def test_trace_logs_each_event_in_its_state(caplog):
    # DOC "System messages and the sys module": replies sent through actions are logged
    caplog.set_level(logging.DEBUG, logger="beamish.gen_statem")
    pid = await PushButton.start()
    await GenStateMachine.trace(pid)
    assert await GenStateMachine.call(pid, "push") == "on"
    assert "in state 'off' got (('call', ReplyTo(" in caplog.text
    assert "replied 'on'" in caplog.text
    await GenStateMachine.stop(pid)


# -- the rest --------------------------------------------------------------------------------


async def test_hibernate_is_accepted_and_changes_nothing():
    # SUITE hibernate: the machine keeps answering; beamish has nothing to hibernate
    class Sleepy(PushButton):
        def on(self, event_type, content, data):
            result = super().on(event_type, content, data)
            return NextState(result.state, result.data, [*result.actions, Hibernate()])

    pid = await Sleepy.start()
    assert await GenStateMachine.call(pid, "push") == "on"
    assert await GenStateMachine.call(pid, "push") == "off"
    assert await GenStateMachine.call(pid, "get_count") == 1
    await GenStateMachine.stop(pid)


async def test_a_supervisor_starts_and_restarts_a_machine():
    # DOC: "It also fits into an OTP supervision tree"
    class Supervised(PushButton, restart="transient"):
        pass

    assert Supervised.child_spec(None).restart == "transient"
    sup = await Supervisor.start_link([(Supervised, None)], strategy="one_for_one")
    [child] = await Supervisor.which_children(sup)
    assert await GenStateMachine.call(child.pid, "push") == "on"
    with pytest.raises(CallError):
        await GenStateMachine.call(child.pid, "crash")
    await wait_until_idle()
    [again] = await Supervisor.which_children(sup)
    assert again.pid != child.pid
    assert await GenStateMachine.call(again.pid, "get_count") == 0


async def test_async_callbacks():
    # beamish's own: any callback may be async def, as a GenServer's
    me = beamish.self()

    class Slow(GenStateMachine, callback_mode=("state_functions", "state_enter")):
        async def init(self, arg):
            await beamish.sleep(0)
            return NextState("a", 0)

        async def a(self, event_type, content, data):
            await beamish.sleep(0)
            match event_type, content:
                case "enter", _:
                    return KeepState(data + 1)
                case ("call", from_), "count":
                    return KeepStateAndData([ReplyAction(from_, data)])
                case "cast", "fail":
                    raise ValueError("async failure")

        async def terminate(self, reason, state, data):
            await beamish.sleep(0)
            send(me, ("terminated", type(reason).__name__))

    beamish.trap_exit(True)
    pid = await Slow.start_link()
    assert await GenStateMachine.call(pid, "count") == 1
    GenStateMachine.cast(pid, "fail")
    assert await assert_receive(("terminated", ANY)) == ("terminated", "Crash")
    assert isinstance((await assert_receive(Exit)).reason, Crash)


async def test_a_machine_that_postpones_forever_is_stopped_at_its_limit(caplog):
    # beamish's own bound (docs/design.md, "Differences from OTP and Phoenix")
    class Hoarder(GenStateMachine):
        max_queued_events = 5

        def init(self, arg):
            return NextState("closed", None)

        def handle_event(self, event_type, content, state, data):
            return KeepStateAndData([Postpone()])

    beamish.trap_exit(True)
    pid = await Hoarder.start_link()
    for n in range(6):
        GenStateMachine.cast(pid, n)
    assert await assert_receive(Exit) == Exit(pid, ("event_queue_limit", 5))
    assert "max_queued_events" in caplog.text


async def test_a_long_run_of_inserted_events_lets_other_processes_run():
    # beamish's own: a machine does not hold the loop for its whole queue of inserted events
    # (on the BEAM the scheduler would preempt it); its mailbox still waits, in order
    progress = [0]  # shared on purpose: the probe reads how far the machine got
    seen = []

    class Counter(GenStateMachine):
        def init(self, arg):
            return NextState("s", 0)

        def handle_event(self, event_type, content, state, n):
            match event_type, content:
                case "cast", "go":
                    return KeepState(n, [NextEvent("internal", i) for i in range(2500)])
                case "internal", _:
                    progress[0] = n + 1
                    return KeepState(n + 1)
                case "cast", "after":
                    send(me, ("after", n))
            return KeepStateAndData()

    class Probe(beamish.Actor):
        def handle(self, message):
            seen.append(progress[0])

    me = beamish.self()
    pid = await Counter.start()
    probe = beamish.spawn(Probe())
    GenStateMachine.cast(pid, "go")
    GenStateMachine.cast(pid, "after")
    send(probe, "ran")
    assert await assert_receive(("after", ANY), timeout=10) == ("after", 2500)
    assert len(seen) == 1 and 0 < seen[0] < 2500
    await GenStateMachine.stop(pid)
    beamish.exit(probe, "kill")
