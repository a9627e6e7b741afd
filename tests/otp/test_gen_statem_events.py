"""GenStateMachine's events: state enter calls, postpone, inserted events, timeouts.

Each test names the gen_statem behaviour it checks and cites where OTP states it: the
gen_statem reference manual (DOC, lib/stdlib/src/gen_statem.erl) or a case of
lib/stdlib/test/gen_statem_SUITE.erl (SUITE), several of which are ported here with
``Scripted``, a machine whose states are given as a table of functions, as the SUITE's
``map_statem`` does.
"""

from __future__ import annotations

import pytest

import beamish
from beamish import (
    ANY,
    CallError,
    EventTimeout,
    Exit,
    GenericTimeout,
    GenStateMachine,
    KeepState,
    KeepStateAndData,
    NextEvent,
    NextState,
    Postpone,
    RepeatState,
    RepeatStateAndData,
    ReplyAction,
    StateTimeout,
    Stop,
    StopAndReply,
    send,
)
from beamish.testing import assert_receive, assert_received, refute_received


class Scripted(GenStateMachine):
    """A machine whose states are functions ``(event_type, content, data)`` in a table."""

    def init(self, table):
        self.table = table
        first = table["init"]()
        return first

    def handle_event(self, event_type, content, state, data):
        return self.table[state](event_type, content, data)


class ScriptedEnter(Scripted, callback_mode=("handle_event_function", "state_enter")):
    pass


async def call(stm, request):
    """A process body: call ``stm`` and end (normally, once answered)."""
    await GenStateMachine.call(stm, request)


async def flush():
    """Every message already in the test's mailbox, in order."""
    await beamish.testing.wait_until_idle()
    messages = []
    while (message := await beamish.receive(timeout=0, default=None)) is not None:
        messages.append(message)
    return messages


# -- state enter calls -----------------------------------------------------------------------


async def test_state_enter_calls_port_of_the_suite():
    # SUITE state_enter: enter calls at start and on each state change, repeat_state repeats
    # them (OldState is still the state left), zero timeouts set by enter calls
    me = beamish.self()

    def start(event_type, content, n):
        match event_type, content:
            case "enter", prev:
                send(me, (n, "enter", "start", prev))
                return KeepState(n + 1)
            case "internal", prev:
                send(me, (n, "internal", "start", prev))
                return KeepState(n + 1)
            case ("call", from_), "repeat":
                return RepeatState(n + 1, [ReplyAction(from_, (n, "repeat", "start"))])
            case ("call", from_), "echo":
                return NextState(
                    "wait", n + 1, [ReplyAction(from_, (n, "echo", "start")), EventTimeout(0, n)]
                )
            case ("call", from_), ("stop", reason):
                return StopAndReply(reason, [ReplyAction(from_, (n, "stop"))], n + 1)

    def wait(event_type, content, n):
        match event_type, content:
            case "enter", prev if n < 5:
                send(me, (n, ("enter", prev)))
                return RepeatState(n + 1, [EventTimeout(0, n), StateTimeout(0, n)])
            case "enter", prev:
                send(me, (n, "enter", "wait", prev))
                return KeepState(n + 1, [EventTimeout(0, n), StateTimeout(0, n)])
            case "timeout", m:
                send(me, (n, ("timeout", m)))
                return KeepState(n + 1)
            case "state_timeout", m:
                send(me, (n, ("state_timeout", m)))
                return KeepState(n + 1)
            case ("call", from_), "repeat":
                return RepeatStateAndData(
                    [ReplyAction(from_, (n, "repeat", "wait")), EventTimeout(0, n)]
                )
            case ("call", from_), "echo":
                return NextState(
                    "start",
                    n + 1,
                    [NextEvent("internal", "wait"), ReplyAction(from_, (n, "echo", "wait"))],
                )

    beamish.trap_exit(True)
    stm = await ScriptedEnter.start_link(
        {"init": lambda: NextState("start", 1), "start": start, "wait": wait}
    )
    assert await flush() == [(1, "enter", "start", "start")]
    assert await GenStateMachine.call(stm, "echo") == (2, "echo", "start")
    # the event timeout 0 of "echo" is overridden by the last enter call's: last one wins
    assert await flush() == [
        (3, ("enter", "start")),
        (4, ("enter", "start")),
        (5, "enter", "wait", "start"),
        (6, ("timeout", 5)),
        (7, ("state_timeout", 5)),
    ]
    assert (await GenStateMachine.get_state(stm)) == ("wait", 8)
    assert await GenStateMachine.call(stm, "repeat") == (8, "repeat", "wait")
    # the repeat_state's event timeout 0 is replaced by the enter call's (the last wins)
    assert await flush() == [
        (8, "enter", "wait", "wait"),
        (9, ("timeout", 8)),
        (10, ("state_timeout", 8)),
    ]
    assert await GenStateMachine.call(stm, "echo") == (11, "echo", "wait")
    assert await flush() == [(12, "enter", "start", "wait"), (13, "internal", "start", "wait")]
    assert await GenStateMachine.call(stm, "repeat") == (14, "repeat", "start")
    assert await flush() == [(15, "enter", "start", "start")]
    assert await GenStateMachine.call(stm, ("stop", "bye")) == (16, "stop")
    assert await flush() == [Exit(stm, "bye")]


async def test_no_state_enter_call_without_a_state_change():
    # DOC state_enter(): "at every state change, that is; NextState =/= CurrentState"
    me = beamish.self()

    class Enter(GenStateMachine, callback_mode=("state_functions", "state_enter")):
        def init(self, arg):
            return NextState("a", 0)

        def a(self, event_type, content, data):
            if event_type == "enter":
                send(me, ("enter a from", content))
                return KeepStateAndData()
            match content:
                case "same":
                    return NextState("a", data + 1)  # a transition, not a state change
                case "keep":
                    return KeepState(data + 1)
                case "go":
                    return NextState("b", data + 1)

        def b(self, event_type, content, data):
            if event_type == "enter":
                send(me, ("enter b from", content))
            return KeepStateAndData()

    stm = await Enter.start(None)
    assert await assert_receive() == ("enter a from", "a")  # at start: OldState =:= State
    for request in ("same", "keep"):
        GenStateMachine.cast(stm, request)
    await refute_received()
    GenStateMachine.cast(stm, "go")
    assert await assert_receive() == ("enter b from", "a")
    await GenStateMachine.stop(stm)


async def test_a_state_enter_call_may_not_change_the_state():
    # DOC handle_event/4: "Should you return {next_state, NextState, ...} with
    # NextState =/= State the gen_statem crashes"
    def a(event_type, content, data):
        if event_type == "enter":
            return NextState("elsewhere", data)
        return KeepStateAndData()

    beamish.trap_exit(True)
    stm = await ScriptedEnter.start_link({"init": lambda: NextState("a", 0), "a": a})
    exited = await assert_receive(Exit)
    assert exited.pid == stm
    assert exited.reason == (
        "bad_state_enter_return_from_state_function",
        NextState("elsewhere", 0),
    )


@pytest.mark.parametrize("action", [Postpone(), NextEvent("internal", 1), "postpone"])
async def test_a_state_enter_call_may_not_postpone_nor_insert_events(action):
    # DOC handle_event/4: postpone and next_event are not allowed from a state enter call
    def a(event_type, content, data):
        if event_type == "enter" and data:
            return KeepStateAndData([action])
        match content:
            case "again":
                return RepeatState(True)
        return KeepStateAndData()

    beamish.trap_exit(True)
    stm = await ScriptedEnter.start_link({"init": lambda: NextState("a", False), "a": a})
    GenStateMachine.cast(stm, "again")
    assert await assert_receive(Exit) == Exit(
        stm, ("bad_state_enter_action_from_state_function", action)
    )


# -- postpone and inserted events ------------------------------------------------------------


async def test_event_order_port_of_the_suite():
    # SUITE event_order: postponed casts are retried after the inserted events, in order; a
    # zero event timeout is cancelled by those events. (The SUITE sends its replies by
    # forging From; here the machine sends the test each tag.)
    me = beamish.self()

    def start(event_type, content, data):
        match event_type, content:
            case "cast", _:
                return KeepStateAndData([Postpone()])  # handled in "buffer"
            case ("call", from_), ("buffer", tags):
                return NextState(
                    "buffer",
                    None,
                    [
                        NextEvent("internal", tags[0]),
                        NextEvent("internal", tags[1]),
                        EventTimeout(0, tags[2]),  # must not fire: the queued events cancel it
                        ReplyAction(from_, "ok"),
                    ],
                )

    def buffer(event_type, content, data):
        match event_type, content:
            case (("internal" | "timeout" | "cast"), tag):
                send(me, tag)
                return KeepStateAndData()
            case ("call", from_), ("stop", reason):
                return NextState(
                    "stop",
                    None,
                    [ReplyAction(from_, "ok"), NextEvent("internal", ("stop", reason))],
                )

    def stop(event_type, content, data):
        return content  # ("stop", reason): Elixir's tuple

    beamish.trap_exit(True)
    stm = await Scripted.start_link(
        {"init": lambda: NextState("start", None), "start": start, "buffer": buffer, "stop": stop}
    )
    GenStateMachine.cast(stm, "tag1")
    GenStateMachine.cast(stm, "tag2")
    assert await GenStateMachine.call(stm, ("buffer", ["tag3", "tag4", "tag5"])) == "ok"
    assert await GenStateMachine.call(stm, ("stop", "reason")) == "ok"
    assert await flush() == ["tag3", "tag4", "tag1", "tag2", Exit(stm, "reason")]
    with pytest.raises(CallError) as gone:
        await GenStateMachine.call(stm, "hej")
    assert gone.value.why == "noproc"


async def test_postponed_events_wait_for_a_state_change_then_come_in_order():
    # DOC "Event postponing": "After a state change the queue restarts with the postponed
    # events"; a transition to the same state does not retry them
    me = beamish.self()

    def closed(event_type, content, data):
        match content:
            case "open":
                return NextState("open", data)
            case "noop":
                return NextState("closed", data)
            case _:
                return KeepStateAndData([Postpone()])

    def opened(event_type, content, data):
        send(me, ("handled", content))
        return KeepStateAndData()

    stm = await Scripted.start(
        {"init": lambda: NextState("closed", None), "closed": closed, "open": opened}
    )
    for item in (1, 2, "noop", 3):
        GenStateMachine.cast(stm, item)
    await refute_received()
    status = await GenStateMachine.get_status(stm)
    assert status["postponed"] == [("cast", 1), ("cast", 2), ("cast", 3)]
    GenStateMachine.cast(stm, "open")
    send(stm, "after")
    assert await flush() == [("handled", 1), ("handled", 2), ("handled", 3), ("handled", "after")]
    await GenStateMachine.stop(stm)


async def test_an_event_postponed_with_a_state_change_is_retried_in_the_new_state():
    # DOC transition_option() steps 3-4: the current event is postponed, then the state
    # change restarts the queue with the postponed events
    me = beamish.self()

    def first(event_type, content, data):
        return NextState("second", data, [Postpone()])

    def second(event_type, content, data):
        send(me, ("second got", event_type, content))
        return KeepStateAndData()

    stm = await Scripted.start(
        {"init": lambda: NextState("first", None), "first": first, "second": second}
    )
    send(stm, "hello")
    assert await assert_receive() == ("second got", "info", "hello")
    await GenStateMachine.stop(stm)


async def test_inserted_events_come_before_messages_already_in_the_mailbox():
    # SUITE state_timeout: "Verify that internal events goes before external"
    me = beamish.self()

    def a(event_type, content, data):
        match event_type, content:
            case "cast", "go":
                send(beamish.self(), "message to self")
                return KeepStateAndData([NextEvent("internal", 1), NextEvent("internal", 2)])
        send(me, (event_type, content))
        return KeepStateAndData()

    stm = await Scripted.start({"init": lambda: NextState("a", None), "a": a})
    GenStateMachine.cast(stm, "go")
    assert await flush() == [("internal", 1), ("internal", 2), ("info", "message to self")]
    await GenStateMachine.stop(stm)


async def test_every_event_type_can_be_inserted():
    # SUITE event_types: next_event with internal, state_timeout, timeout, info, cast,
    # {timeout, Name} and a call event
    def state(expected, then):
        def handle(event_type, content, data):
            assert (event_type, content) == expected
            return NextState(then, data)

        return handle

    def start2(event_type, content, data):
        return NextState(
            "state1",
            data,
            [
                NextEvent("internal", 1),
                NextEvent("state_timeout", 2),
                NextEvent("timeout", 3),
                NextEvent("info", 4),
                NextEvent("cast", 5),
                NextEvent(("timeout", 6), 6),
                NextEvent(event_type, content),
            ],
        )

    def state7(event_type, content, data):
        match event_type, content:
            case ("call", from_), "stop":
                return StopAndReply("shutdown", [ReplyAction(from_, "stopped")])

    beamish.trap_exit(True)
    stm = await Scripted.start_link(
        {
            "init": lambda: NextState("start1", None, [NextEvent("internal", 0)]),
            "start1": state(("internal", 0), "start2"),
            "start2": start2,
            "state1": state(("internal", 1), "state2"),
            "state2": state(("state_timeout", 2), "state3"),
            "state3": state(("timeout", 3), "state4"),
            "state4": state(("info", 4), "state5"),
            "state5": state(("cast", 5), "state6"),
            "state6": state((("timeout", 6), 6), "state7"),
            "state7": state7,
        }
    )
    assert await GenStateMachine.call(stm, "stop") == "stopped"
    assert await assert_receive(Exit) == Exit(stm, "shutdown")


# -- timeouts --------------------------------------------------------------------------------


async def test_an_event_timeout_fires_when_no_event_comes(virtual_clock):
    # DOC event_timeout(): a ('timeout', EventContent) event after Time with no event
    me = beamish.self()

    def idle(event_type, content, data):
        send(me, (event_type, content, beamish.monotonic()))
        return KeepStateAndData([EventTimeout(30, "idle")])

    stm = await Scripted.start(
        {"init": lambda: NextState("idle", None, [EventTimeout(30, "i")]), "idle": idle}
    )
    await virtual_clock.advance(29)
    await refute_received()
    await virtual_clock.advance(1)
    assert await assert_received() == ("timeout", "i", 30)
    send(stm, "poke")  # any event cancels it; the callback sets a new one
    assert await assert_receive() == ("info", "poke", 30)
    await virtual_clock.advance(20)
    send(stm, "poke")
    assert await assert_receive() == ("info", "poke", 50)
    await virtual_clock.advance(29)
    await refute_received()
    await virtual_clock.advance(1)
    assert await assert_received() == ("timeout", "idle", 80)
    await GenStateMachine.stop(stm)


async def test_any_event_cancels_the_event_timeout(virtual_clock):
    # DOC event_timeout(): "Any event that arrives cancels this time-out"
    me = beamish.self()

    def waiting(event_type, content, data):
        send(me, (event_type, content))
        return KeepStateAndData()  # sets no new timeout

    stm = await Scripted.start(
        {"init": lambda: NextState("w", None, [EventTimeout(5, "t")]), "w": waiting}
    )
    GenStateMachine.cast(stm, "hello")
    assert await assert_receive() == ("cast", "hello")
    await virtual_clock.advance(10)
    await refute_received()
    await GenStateMachine.stop(stm)


async def test_a_zero_timeout_comes_before_messages_not_yet_received():
    # DOC transition_option() note: "{timeout, 0} does not receive any external event",
    # unlike gen_server's timeout 0; time-out zero events come "before any external not yet
    # received event"
    me = beamish.self()

    def a(event_type, content, data):
        match event_type, content:
            case "cast", "go":
                send(beamish.self(), "already in the mailbox")
                return KeepStateAndData(
                    [EventTimeout(0, "zero"), GenericTimeout("g", 0, "zero too")]
                )
        send(me, (event_type, content))
        return KeepStateAndData()

    stm = await Scripted.start({"init": lambda: NextState("a", None), "a": a})
    GenStateMachine.cast(stm, "go")
    assert await flush() == [
        ("timeout", "zero"),
        (("timeout", "g"), "zero too"),
        ("info", "already in the mailbox"),
    ]
    await GenStateMachine.stop(stm)


async def test_state_timeouts_port_of_the_suite(virtual_clock):
    # SUITE state_timeout: a state change cancels timeouts; {state_timeout,0,_} comes after
    # next_event; timeout 0s are processed in order and an event timeout 0 is cancelled by a
    # pending state timeout 0; a state timeout set on a state change runs in the new state.
    # The SUITE's {state_timeout,0,6} while {state_timeout,0,5} is pending is a generic
    # timeout here: since OTP gave zero time-outs their own queue, setting a state timeout
    # again replaces the pending one (see test_gen_statem_transitions)
    me = beamish.self()

    def start(event_type, content, data):
        match event_type, content:
            case ("call", from_), ("go", time):
                send(beamish.self(), "message to self")
                return NextState(
                    "state1",
                    (time, from_),
                    [
                        EventTimeout(time, 1),
                        StateTimeout(time, 1),
                        NextEvent("internal", 1),
                    ],
                )

    def state1(event_type, content, data):
        match event_type, content:
            case "internal", 1:  # the state change cancels both timeouts 1
                return NextState(
                    "state2",
                    data,
                    [EventTimeout(0, 2), StateTimeout(0, 2), NextEvent("internal", 2)],
                )

    def state2(event_type, content, data):
        send(me, (event_type, content))
        match event_type, content, data:
            case "internal", 2, _:  # the event timeout 2 was cancelled by this event
                return KeepState(("ok", 2, data), [EventTimeout(0, 3)])
            case "state_timeout", 2, ("ok", 2, d):  # it cancels the event timeout 3
                return KeepState(("ok", 3, d), [EventTimeout(0, 4), StateTimeout(0, 5)])
            case "timeout", 4, ("ok", 3, d):
                return KeepState(("ok", 4, d), [GenericTimeout("last", 0, 6), EventTimeout(0, 7)])
            case "state_timeout", 5, ("ok", 4, d):  # it cancels the event timeout 7
                return KeepState(("ok", 5, d))
            case ("timeout", "last"), 6, ("ok", 5, (time, from_)):
                return NextState("state3", 6, [ReplyAction(from_, "ok"), StateTimeout(time, 8)])

    def state3(event_type, content, data):
        send(me, (event_type, content))
        match event_type, content, data:
            case "info", "message to self", 6:
                return KeepState(7)
            case ("call", from_), "check", 7:
                return KeepState(from_)
            case "state_timeout", 8, from_:
                return StopAndReply("normal", ReplyAction(from_, "ok"))

    beamish.trap_exit(True)
    stm = await Scripted.start_link(
        {
            "init": lambda: NextState("start", 0),
            "start": start,
            "state1": state1,
            "state2": state2,
            "state3": state3,
        }
    )
    assert await GenStateMachine.call(stm, ("go", 0.5)) == "ok"
    assert await flush() == [
        ("internal", 2),
        ("state_timeout", 2),
        ("timeout", 4),
        ("state_timeout", 5),
        (("timeout", "last"), 6),
        ("info", "message to self"),
    ]
    checked, ref = beamish.spawn_monitor(call, stm, "check")
    await virtual_clock.advance(0.4)
    await refute_received(("state_timeout", 8))
    await virtual_clock.advance(0.1)
    assert await assert_received(("state_timeout", 8))
    assert await assert_receive(Exit) == Exit(stm, "normal")
    assert (await assert_receive(beamish.Down)).ref == ref


async def test_a_state_timeout_survives_transitions_to_the_same_state(virtual_clock):
    # DOC state_timeout(): "If the state machine stays in that new state ... the timer will
    # run until it expires"
    me = beamish.self()

    def a(event_type, content, data):
        send(me, (event_type, content, beamish.monotonic()))
        return NextState("a", data)

    stm = await Scripted.start(
        {"init": lambda: NextState("a", None, [StateTimeout(10, "s")]), "a": a}
    )
    await virtual_clock.advance(5)
    GenStateMachine.cast(stm, "still here")
    assert await assert_receive() == ("cast", "still here", 5)
    await virtual_clock.advance(5)
    assert await assert_received() == ("state_timeout", "s", 10)
    await GenStateMachine.stop(stm)


async def test_a_state_change_cancels_the_state_timeout(virtual_clock):
    # DOC state_timeout(): "A state change cancels this timer, if it is running"
    me = beamish.self()

    def record(event_type, content, data):
        send(me, (event_type, content))
        return NextState("b", data)

    stm = await Scripted.start(
        {"init": lambda: NextState("a", None, [StateTimeout(5, "s")]), "a": record, "b": record}
    )
    GenStateMachine.cast(stm, "leave a")
    assert await assert_receive() == ("cast", "leave a")
    await virtual_clock.advance(10)
    await refute_received()
    await GenStateMachine.stop(stm)


async def test_timeout_cancel_and_update_port_of_the_suite(virtual_clock):
    # SUITE timeout_cancel_and_update: {state_timeout, cancel}; {{timeout,a}, update, a};
    # {state_timeout, update, b} once the timer has fired but before its event is handled
    # (the SUITE sleeps in the callback; here the machine is suspended meanwhile); the
    # status lists the running time-outs
    def start(event_type, content, data):
        match event_type, content:
            case ("call", from_), "test":
                send(beamish.self(), "message to self")
                return NextState("state1", from_, [StateTimeout(17, 1), NextEvent("internal", 1)])

    def state1(event_type, content, data):
        match event_type, content:
            case "internal", 1:
                return KeepStateAndData([StateTimeout("cancel"), GenericTimeout("a", 17, 1)])
            case "info", "message to self":
                return KeepStateAndData([GenericTimeout("a", "update", "a")])
            case ("timeout", "a"), "a":
                return NextState("state2", data, [StateTimeout(17, 2)])

    def state2(event_type, content, data):
        match event_type, content:
            case "cast", 2:
                return KeepStateAndData([StateTimeout("update", "b"), EventTimeout(17, 2)])
            case "state_timeout", "b":  # its event cancels the event timeout
                return NextState("state3", 3, [ReplyAction(data, "ok"), 17000])

    def state3(event_type, content, data):
        match event_type, content:
            case ("call", from_), "stop":
                return StopAndReply("normal", [ReplyAction(from_, "ok")])

    beamish.trap_exit(True)
    stm = await Scripted.start_link(
        {
            "init": lambda: NextState("start", 0),
            "start": start,
            "state1": state1,
            "state2": state2,
            "state3": state3,
        }
    )
    tester, ref = beamish.spawn_monitor(call, stm, "test")
    await virtual_clock.advance(17)  # the generic timeout a, content updated to "a"
    assert (await GenStateMachine.get_state(stm))[0] == "state2"
    await GenStateMachine.suspend(stm)
    GenStateMachine.cast(stm, 2)
    await virtual_clock.advance(17)  # the state timeout fires; its event waits behind the cast
    await GenStateMachine.resume(stm)
    assert (await assert_receive(beamish.Down)).ref == ref
    status = await GenStateMachine.get_status(stm)
    assert (status["state"], status["timeouts"]) == ("state3", [("timeout", 17000)])
    assert await GenStateMachine.call(stm, "stop") == "ok"
    assert await assert_receive(Exit) == Exit(stm, "normal")


async def test_generic_timers_port_of_the_suite(virtual_clock):
    # SUITE generic_timers: named time-outs run beside each other and a state timeout; one
    # set again restarts, infinity cancels it, {abs, true} is a deadline
    def start(event_type, content, data):
        return NextState(
            "state1",
            None,
            [
                GenericTimeout("a", 1.5, 1),
                StateTimeout(1.5, 1),
                GenericTimeout("b", 1.0, 1),
                NextEvent(event_type, content),
            ],
        )

    def state1(event_type, content, data):
        deadline = beamish.monotonic() + 0.5
        return NextState(
            "state2",
            None,
            [
                GenericTimeout("c", deadline, 2, absolute=True),
                (("timeout", "d"), 0, 2, [("abs", False)]),
                EventTimeout(0, 2),
                GenericTimeout("b", None, 2),
                GenericTimeout("a", 1.0, (event_type, content)),
            ],
        )

    def state2(event_type, content, data):
        assert (event_type, content) == (("timeout", "d"), 2)
        return NextState("state3", None)

    def state3(event_type, content, data):
        assert (event_type, content) == (("timeout", "c"), 2)
        return NextState("state4", None)

    def state4(event_type, content, data):
        match event_type, content:
            case ("timeout", "a"), (("call", from_), "stop"):
                return StopAndReply("shutdown", [ReplyAction(from_, "stopped")])

    beamish.trap_exit(True)
    stm = await Scripted.start_link(
        {
            "init": lambda: NextState("start", None),
            "start": start,
            "state1": state1,
            "state2": state2,
            "state3": state3,
            "state4": state4,
        }
    )
    caller, ref = beamish.spawn_monitor(call, stm, "stop")
    await virtual_clock.advance(0.5)
    assert (await GenStateMachine.get_state(stm))[0] == "state4"
    await virtual_clock.advance(0.5)
    assert await assert_received(Exit) == Exit(stm, "shutdown")
    assert (await assert_received(beamish.Down)).reason == "normal"


async def test_generic_timeouts_survive_state_changes_and_events(virtual_clock):
    # DOC generic_timeout(): only setting it again, infinity or cancel stop it
    me = beamish.self()

    def step(event_type, content, n):
        send(me, (event_type, content, beamish.monotonic()))
        return NextState(n + 1, n + 1)  # every event is a state change

    stm = await Scripted.start(
        {
            "init": lambda: NextState(
                0, 0, [GenericTimeout("ping", 3, "p"), GenericTimeout("pong", 5, "q")]
            ),
            0: step,
            1: step,
            2: step,
            3: step,
        }
    )
    await virtual_clock.advance(1)
    GenStateMachine.cast(stm, "x")
    assert await assert_receive() == ("cast", "x", 1)
    await virtual_clock.advance(4)
    assert await flush() == [(("timeout", "ping"), "p", 3), (("timeout", "pong"), "q", 5)]
    await GenStateMachine.stop(stm)


async def test_a_timeout_is_cancelled_after_it_fired_but_before_it_was_handled(virtual_clock):
    # A timer whose message is already in the mailbox when a transition cancels it must not
    # deliver its event (gen_statem marks such a timer "cancelled with pending message")
    me = beamish.self()

    def a(event_type, content, data):
        send(me, (event_type, content))
        match content:
            case "cancel":
                return KeepStateAndData([StateTimeout("cancel")])
        return KeepStateAndData()

    stm = await Scripted.start(
        {"init": lambda: NextState("a", None, [StateTimeout(1, "s")]), "a": a}
    )
    await GenStateMachine.suspend(stm)  # hold the timer's message behind a cast
    GenStateMachine.cast(stm, "cancel")
    await virtual_clock.advance(1)
    await GenStateMachine.resume(stm)
    assert await flush() == [("cast", "cancel")]
    assert (await GenStateMachine.get_status(stm))["timeouts"] == []
    await GenStateMachine.stop(stm)


async def test_updating_a_timeout_that_does_not_run_inserts_its_event():
    # DOC timeout_update_action(): "a time-out autostart with immediate expiry"
    me = beamish.self()

    def a(event_type, content, data):
        send(me, (event_type, content))
        if content == "go":
            return KeepStateAndData([GenericTimeout("misspelt", "update", "surprise")])
        return KeepStateAndData()

    stm = await Scripted.start({"init": lambda: NextState("a", None), "a": a})
    GenStateMachine.cast(stm, "go")
    assert await flush() == [("cast", "go"), (("timeout", "misspelt"), "surprise")]
    await GenStateMachine.stop(stm)


async def test_bad_timeout_actions_crash_the_machine():
    # SUITE abnormal4: {bad_action_from_state_function, {badtimeout, 4711, ouch}}
    def a(event_type, content, data):
        match event_type, content:
            case ("call", _), ("badtimeout", action):
                return KeepStateAndData([action])

    beamish.trap_exit(True)
    stm = await Scripted.start_link({"init": lambda: NextState("a", None), "a": a})
    bad = ("badtimeout", 4711, "ouch")
    with pytest.raises(CallError) as failed:
        await GenStateMachine.call(stm, ("badtimeout", bad))
    assert failed.value.why == ("bad_action_from_state_function", bad)
    assert await assert_receive(Exit) == Exit(stm, ("bad_action_from_state_function", bad))


async def test_a_state_callback_can_stop_with_new_data_for_terminate():
    # DOC state_callback_result(): {stop, Reason, NewData} calls terminate with NewData
    me = beamish.self()

    class Stopper(Scripted):
        def terminate(self, reason, state, data):
            send(me, ("terminate", reason, state, data))

    stm = await Stopper.start(
        {"init": lambda: NextState("a", 1), "a": lambda et, c, d: Stop("shutdown", d + 1)}
    )
    GenStateMachine.cast(stm, "stop")
    assert await assert_receive(("terminate", ANY, ANY, ANY)) == ("terminate", "shutdown", "a", 2)
