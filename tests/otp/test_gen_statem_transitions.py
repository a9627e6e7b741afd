"""The pure gen_statem engine, without a process: results, actions, transitions, timers.

Each test names the gen_statem behaviour it checks and cites where OTP states it: the
gen_statem reference manual (DOC, lib/stdlib/src/gen_statem.erl, "transition_option()" for
the order of a transition) or a case of lib/stdlib/test/gen_statem_SUITE.erl (SUITE).
"""

from __future__ import annotations

import asyncio

import pytest

from beamish import (
    EventTimeout,
    GenericTimeout,
    Hibernate,
    KeepState,
    KeepStateAndData,
    NextEvent,
    NextState,
    Postpone,
    RepeatState,
    RepeatStateAndData,
    Reply,
    ReplyAction,
    StateTimeout,
    Stop,
    StopAndReply,
)
from beamish._otp.gen_statem.results import (
    Go,
    Refused,
    action_list,
    action_of,
    decide,
    decide_init,
)
from beamish._otp.gen_statem.transitions import (
    NO_OPTIONS,
    CancelTimer,
    Machine,
    Options,
    StartTimer,
    Timer,
    collect,
    fire,
    next_event,
    transition,
)
from beamish._runtime.request import ReplyTo


def reply_to():
    """A ReplyTo for tests that only look at where a reply would go."""
    loop = asyncio.new_event_loop()
    try:
        return ReplyTo(None, loop.create_future())
    finally:
        loop.close()


FROM = reply_to()
OTHER = reply_to()

# -- results ---------------------------------------------------------------------------------


def test_results_in_both_shapes_mean_the_same():
    # DOC state_callback_result(): keep_state, keep_state_and_data, repeat_state, stop...
    same = [
        (("next_state", "b", 2), NextState("b", 2)),
        (("next_state", "b", 2, ["postpone"]), NextState("b", 2, ["postpone"])),
        (("keep_state", 2), KeepState(2)),
        ("keep_state_and_data", KeepStateAndData()),
        (("keep_state_and_data", ["postpone"]), KeepStateAndData(["postpone"])),
        (("repeat_state", 2), RepeatState(2)),
        ("repeat_state_and_data", RepeatStateAndData()),
    ]
    for tuple_form, record in same:
        assert decide(tuple_form, state="a", data=1, enter=False) == decide(
            record, state="a", data=1, enter=False
        )
    assert decide("stop", state="a", data=1, enter=False).reason == "normal"
    stop = decide(("stop", "bye", 3), state="a", data=1, enter=False)
    assert (stop.reason, stop.state) == ("bye", 3)
    assert decide(
        ("stop_and_reply", "bye", [("reply", FROM, 1)]), state="a", data=1, enter=False
    ) == StopAndReply("bye", [("reply", FROM, 1)])


def test_a_result_says_whether_a_state_enter_call_follows():
    # DOC state_enter(): at every state change; repeat_state repeats the enter call
    assert decide(NextState("b", 1), state="a", data=0, enter=False) == Go("b", 1, (), True)
    assert decide(NextState("a", 1), state="a", data=0, enter=False) == Go("a", 1, (), False)
    assert decide(KeepStateAndData(), state="a", data=0, enter=False) == Go("a", 0, (), False)
    assert decide(RepeatState(5), state="a", data=0, enter=False) == Go("a", 5, (), True)
    assert decide(RepeatStateAndData(), state="a", data=0, enter=False).enter


def test_states_compare_as_otp_exact_equality():
    # DOC state(): a state change is NextState =/= State; 1 and 1.0 are different terms
    assert decide(NextState(1.0, None), state=1, data=None, enter=False).enter
    assert not decide(NextState((1, "x"), None), state=(1, "x"), data=None, enter=False).enter


def test_a_state_enter_call_cannot_change_the_state():
    # DOC handle_event/4: "It is not allowed to change states from this call"
    with pytest.raises(Refused) as refused:
        decide(NextState("b", 1), state="a", data=0, enter=True)
    assert refused.value.reason[0] == "bad_state_enter_return_from_state_function"
    assert decide(NextState("a", 1), state="a", data=0, enter=True) == Go("a", 1, (), False)


def test_an_unknown_result_is_refused_listing_the_allowed_returns():
    # SUITE abnormal2: {bad_return_from_state_function, badreturn}
    with pytest.raises(Refused) as refused:
        decide("badreturn", state="a", data=0, enter=False)
    assert refused.value.reason == ("bad_return_from_state_function", "badreturn")
    message = str(refused.value)
    for form in (
        "NextState(state, data[, actions])",
        "KeepStateAndData",
        "StopAndReply",
        "('next_state', state, data[, actions])",
    ):
        assert form in message
    with pytest.raises(Refused, match="forget to return"):
        decide(None, state="a", data=0, enter=False)
    with pytest.raises(Refused, match="what a GenServer returns"):
        decide(Reply(1, 2), state="a", data=0, enter=False)
    with pytest.raises(Refused, match="StopAndReply"):
        decide(Stop("normal", 1, reply=2), state="a", data=0, enter=False)


def test_init_results():
    # DOC init_result(): {ok,State,Data[,Actions]}, ignore, {stop,R}, {error,R} (OTP 26)
    assert decide_init(("ok", "a", 1)) == NextState("a", 1)
    assert decide_init(("ok", "a", 1, ["x"])) == NextState("a", 1, ["x"])
    assert decide_init(NextState("a", 1)) == NextState("a", 1)
    assert type(decide_init("ignore")).__name__ == "Ignore"
    assert decide_init(("stop", "no")).reason == "no"
    assert decide_init(("error", "bad")) == ("error", "bad")
    with pytest.raises(Refused) as refused:
        decide_init(("ok", "a"))
    assert refused.value.reason == ("bad_return_from_init", ("ok", "a"))
    assert "('error', reason)" in str(refused.value)


# -- actions ---------------------------------------------------------------------------------


def test_actions_in_both_shapes_are_the_same_records():
    # DOC action(), enter_action(), timeout_action(), reply_action()
    same = [
        (("reply", FROM, 1), ReplyAction(FROM, 1)),
        ("postpone", Postpone()),
        (("postpone", False), Postpone(False)),
        ("hibernate", Hibernate()),
        (("next_event", "internal", 1), NextEvent("internal", 1)),
        (("timeout", 5, "t"), EventTimeout(5, "t")),
        (5, EventTimeout(5, 5)),  # DOC timeout_action(): Time is {timeout, Time, Time}
        (("timeout", "cancel"), EventTimeout("cancel")),
        (("state_timeout", 1.5, "s"), StateTimeout(1.5, "s")),
        (("state_timeout", "update", "u"), StateTimeout("update", "u")),
        ((("timeout", "a"), 2, "g"), GenericTimeout("a", 2, "g")),
        ((("timeout", "a"), "cancel"), GenericTimeout("a", "cancel")),
        (("state_timeout", 9, "s", ("abs", True)), StateTimeout(9, "s", absolute=True)),
        (("timeout", 9, "s", [("abs", False)]), EventTimeout(9, "s")),
    ]
    for tuple_form, record in same:
        assert action_of(tuple_form) == record, tuple_form
    for bad in [
        ("badtimeout", 4711, "ouch"),
        ("timeout", -1, "x"),
        ("timeout", "cancel", 1),
        ("state_timeout", 1, "x", ("abs", "yes")),
        ("postpone", 1),
        "nope",
        -3,
    ]:
        assert action_of(bad) is None, bad


def test_timeout_records_check_their_time():
    with pytest.raises(ValueError, match="seconds >= 0"):
        StateTimeout(-1)
    with pytest.raises(TypeError, match="seconds >= 0"):
        GenericTimeout("n", "soon")
    assert EventTimeout(-1, absolute=True).time == -1  # a deadline in the past is a time


def test_a_list_is_a_list_of_actions_and_a_tuple_is_one_action_when_it_reads_as_one():
    assert action_list(["postpone", ("reply", FROM, 1)]) == ["postpone", ("reply", FROM, 1)]
    assert action_list(("reply", FROM, 1)) == [("reply", FROM, 1)]
    assert action_list((Postpone(), ReplyAction(FROM, 1))) == [Postpone(), ReplyAction(FROM, 1)]
    assert action_list(("postpone", "hibernate")) == ["postpone", "hibernate"]
    assert action_list(Postpone()) == [Postpone()]
    assert action_list(()) == []


def test_collect_keeps_replies_in_order_and_the_last_option_of_a_kind():
    # DOC action(): "executed in the containing list order ... the last in the list wins"
    got = collect(
        [
            ReplyAction(FROM, 1),
            Postpone(),
            ("reply", OTHER, 2),
            Postpone(False),
            Hibernate(),
            NextEvent("internal", "x"),
            NextEvent("cast", "y"),
        ]
    )
    assert got.replies == ((FROM, 1), (OTHER, 2))
    assert got.options == Options(False, True, (("internal", "x"), ("cast", "y")), ())
    assert got.refused is None


def test_collect_refuses_a_bad_action_after_sending_the_replies_before_it():
    # SUITE abnormal3/abnormal4: {bad_action_from_state_function, Action}
    got = collect([("reply", FROM, 1), ("badtimeout", 4711, "ouch"), ("reply", OTHER, 2)])
    assert got.replies == ((FROM, 1),)
    assert got.refused.reason == ("bad_action_from_state_function", ("badtimeout", 4711, "ouch"))
    assert "ReplyAction(from_, value)" in str(got.refused)
    assert collect([Reply(1, 2)]).refused is not None
    assert "GenServer's" in str(collect([Reply(1, 2)]).refused)
    assert collect([ReplyAction("not a from", 1)]).refused is not None
    assert collect([NextEvent("bogus", 1)]).refused is not None
    assert collect([GenericTimeout(["unhashable"], 1)]).refused is not None


def test_a_state_enter_call_may_not_postpone_nor_insert_events():
    # DOC handle_event/4: postpone and next_event are not allowed from a state enter call
    for action in (Postpone(), NextEvent("internal", 1)):
        refused = collect([action], enter=True).refused
        assert refused.reason == ("bad_state_enter_action_from_state_function", action)
    allowed = collect(
        [Postpone(False), StateTimeout(1, "t"), ReplyAction(FROM, 1), Hibernate()], enter=True
    )
    assert allowed.refused is None


# -- transitions -----------------------------------------------------------------------------


def test_a_postponed_event_waits_while_the_state_stays_the_same():
    # DOC postpone(): "After a state change (NextState =/= State), it is retried"
    m = Machine("a", 0, queue=(("cast", "q"),))
    after, _ = transition(m, ("cast", "p"), "a", 1, Options(postpone=True))
    assert after.postponed == (("cast", "p"),)
    assert after.queue == (("cast", "q"),)
    again, _ = transition(after, ("cast", "x"), "a", 2, Options(postpone=True))
    assert again.postponed == (("cast", "p"), ("cast", "x"))


def test_a_state_change_retries_postponed_events_oldest_first_after_inserted_ones():
    # DOC transition_option() steps 3-5: postpone; on a state change the queue restarts with
    # the oldest postponed; next_event events are inserted before all of them
    m = Machine("a", 0, queue=(("cast", "queued"),), postponed=(("cast", "p1"), ("cast", "p2")))
    options = Options(next_events=(("internal", "n1"), ("internal", "n2")))
    after, _ = transition(m, ("cast", "now"), "b", 0, options)
    assert after.postponed == ()
    assert after.queue == (
        ("internal", "n1"),
        ("internal", "n2"),
        ("cast", "p1"),
        ("cast", "p2"),
        ("cast", "queued"),
    )


def test_an_event_postponed_by_a_state_change_is_retried_in_the_new_state():
    m = Machine("a", 0, postponed=(("cast", "old"),))
    after, _ = transition(m, ("cast", "now"), "b", 0, Options(postpone=True))
    assert after.queue == (("cast", "old"), ("cast", "now"))


def test_any_event_cancels_the_event_timeout():
    # DOC event_timeout(): "Any event that arrives cancels this time-out"
    m = Machine("a", 0, timers={"timeout": Timer(7, "t")}, tokens=7)
    after, ops = transition(m, ("info", "x"), "a", 0, NO_OPTIONS)
    assert "timeout" not in after.timers
    assert ops == (CancelTimer(7),)


def test_a_state_change_cancels_the_state_timeout_but_not_generic_timeouts():
    # DOC state_timeout() "A state change cancels this timer"; generic_timeout() only by
    # setting it again
    timers = {"state_timeout": Timer(1, "s"), ("timeout", "g"): Timer(2, "g")}
    m = Machine("a", 0, timers=timers, tokens=2)
    kept, ops = transition(m, ("info", 1), "a", 0, NO_OPTIONS)
    assert kept.timers == timers and ops == ()
    changed, ops = transition(m, ("info", 1), "b", 0, NO_OPTIONS)
    assert changed.timers == {("timeout", "g"): Timer(2, "g")}
    assert ops == (CancelTimer(1),)


def test_a_state_timeout_set_on_a_state_change_runs_in_the_new_state():
    # DOC state_timeout(): "the timer runs in the NextState"
    m = Machine("a", 0, timers={"state_timeout": Timer(1, "old")}, tokens=1)
    after, ops = transition(m, ("info", 1), "b", 0, Options(timeouts=(StateTimeout(5, "new"),)))
    assert after.timers == {"state_timeout": Timer(2, "new")}
    assert ops == (CancelTimer(1), StartTimer("state_timeout", 2, 5, False))


def test_timeouts_start_restart_and_cancel_and_the_last_of_a_kind_wins():
    # DOC generic_timeout(): "Setting a timer with the same Name while it is running will
    # restart it"; timeout_cancel_action(); the last action of a kind wins
    m = Machine("a", 0, timers={("timeout", "g"): Timer(3, "g")}, tokens=3)
    options = Options(
        timeouts=(
            StateTimeout(1, "first"),
            GenericTimeout("g", 4, "again"),
            StateTimeout(2, "second"),
            GenericTimeout("h", 1, "h"),
            GenericTimeout("h", None),
        )
    )
    after, ops = transition(m, ("info", 1), "a", 0, options)
    assert dict(after.timeouts()) == {("timeout", "g"): "again", "state_timeout": "second"}
    g, s = after.timers[("timeout", "g")].token, after.timers["state_timeout"].token
    assert 3 not in (g, s)  # a fresh token: the old timer's message will be stale
    assert set(ops) == {
        CancelTimer(3),
        StartTimer(("timeout", "g"), g, 4, False),
        StartTimer("state_timeout", s, 2, False),
    }
    for cancel in (StateTimeout("cancel"), StateTimeout(None), StateTimeout("infinity")):
        m = Machine("a", 0, timers={"state_timeout": Timer(1, "s")}, tokens=1)
        after, ops = transition(m, ("info", 1), "a", 0, Options(timeouts=(cancel,)))
        assert after.timers == {} and ops == (CancelTimer(1),)


def test_a_zero_timeout_goes_to_the_zero_queue_in_action_order_and_starts_no_timer():
    # DOC transition_option() step 6: a time-out zero event is enqueued, not timed
    options = Options(
        timeouts=(GenericTimeout("x", 0, "x"), StateTimeout(0, "s"), EventTimeout(0, "e"))
    )
    after, ops = transition(Machine("a", 0), ("info", 1), "a", 0, options)
    assert ops == ()
    assert [kind for kind, _ in after.t0q] == [("timeout", "x"), "state_timeout", "timeout"]
    absolute, ops = transition(
        Machine("a", 0), None, "a", 0, Options(timeouts=(StateTimeout(0, "s", absolute=True),))
    )
    assert absolute.t0q == () and ops == (StartTimer("state_timeout", 1, 0, True),)


def test_update_changes_a_running_timeout_or_inserts_its_event_at_once():
    # DOC timeout_update_action(): "If no time-out of this type is active, instead inserts
    # the time-out event just like when starting a time-out with relative Time = 0"
    m = Machine("a", 0, timers={"state_timeout": Timer(1, "old")}, tokens=1)
    after, ops = transition(
        m, ("info", 1), "a", 0, Options(timeouts=(StateTimeout("update", "new"),))
    )
    assert after.timers == {"state_timeout": Timer(1, "new")} and ops == () and after.t0q == ()
    fresh, _ = transition(
        Machine("a", 0),
        ("info", 1),
        "a",
        0,
        Options(timeouts=(GenericTimeout("g", "update", "u"),)),
    )
    assert next_event(fresh)[1] == (("timeout", "g"), "u")


def test_the_event_timeout_cannot_be_updated_since_the_event_cancelled_it():
    # gen_statem cancels the event timeout before it handles the new options, so an update
    # finds no timer and inserts the event (DOC event_timeout(), timeout_update_action())
    m = Machine("a", 0, timers={"timeout": Timer(1, "old")}, tokens=1)
    after, ops = transition(
        m, ("info", 1), "a", 0, Options(timeouts=(EventTimeout("update", "u"),))
    )
    assert ops == (CancelTimer(1),)
    assert next_event(after)[1] == ("timeout", "u")


def test_next_event_takes_the_queue_first_then_live_zero_timeouts():
    # DOC transition_option(): zero time-outs come "after already queued events such as
    # inserted and postponed events"
    m, _ = transition(
        Machine("a", 0),
        ("info", 1),
        "a",
        0,
        Options(next_events=(("internal", 1),), timeouts=(StateTimeout(0, "s"),)),
    )
    m, first = next_event(m)
    m, second = next_event(m)
    m, third = next_event(m)
    assert (first, second, third) == (("internal", 1), ("state_timeout", "s"), None)
    assert m.timers == {}


def test_a_zero_event_timeout_is_only_generated_if_the_queue_is_empty():
    # DOC transition_option() step 6: "Any event cancels an event_timeout() so a zero time
    # event time-out is only generated if the event queue is empty"; SUITE event_order
    m, _ = transition(
        Machine("a", 0),
        ("info", 1),
        "a",
        0,
        Options(next_events=(("internal", 1),), timeouts=(EventTimeout(0, "e"),)),
    )
    m, event = next_event(m)
    assert event == ("internal", 1)
    m, _ = transition(m, event, "a", 0, NO_OPTIONS)  # handling it cancels the timeout
    assert next_event(m)[1] is None


def test_a_zero_state_timeout_is_cancelled_by_a_state_change_before_it_is_handled():
    # The case that made OTP give zero time-outs their own queue (erlang/otp PR 2813): a
    # state time-out zero with an inserted event whose handling changes state
    m, _ = transition(
        Machine("a", 0),
        ("info", 1),
        "b",
        0,
        Options(next_events=(("internal", "go on"),), timeouts=(StateTimeout(0, "s"),)),
    )
    m, event = next_event(m)
    m, _ = transition(m, event, "c", 0, NO_OPTIONS)
    assert next_event(m)[1] is None


def test_a_restarted_zero_timeout_replaces_the_one_still_queued():
    # DOC state_timeout(): "Setting this timer while it is running will restart it"; a zero
    # time-out waiting in its queue is running, and restarting it takes it out of the queue
    m, _ = transition(Machine("a", 0), ("info", 1), "a", 0, Options(timeouts=(StateTimeout(0, 5),)))
    m, _ = transition(
        m, ("info", 2), "a", 0, Options(timeouts=(GenericTimeout("g", 0, "g"), StateTimeout(0, 6)))
    )
    m, first = next_event(m)
    m, second = next_event(m)
    assert (first, second) == ((("timeout", "g"), "g"), ("state_timeout", 6))
    assert next_event(m)[1] is None


def test_a_timer_message_counts_only_while_its_timer_runs():
    m = Machine("a", 0, timers={"state_timeout": Timer(4, "s")}, tokens=4)
    assert fire(m, "state_timeout", 3) == (m, None)  # an older, cancelled timer
    after, event = fire(m, "state_timeout", 4)
    assert event == ("state_timeout", "s") and after.timers == {}


def test_hibernate_is_a_transition_option_of_one_transition():
    after, _ = transition(Machine("a", 0), ("info", 1), "a", 0, Options(hibernate=True))
    assert after.hibernate
    again, _ = transition(after, ("info", 2), "a", 0, NO_OPTIONS)
    assert not again.hibernate


def test_a_bare_zero_is_an_event_timeout_not_an_empty_list_of_actions():
    # DOC timeout_action(): "Time - Short for {timeout, Time, Time}", and 0 is a time
    for actions in (0, 0.0):
        assert collect(actions).options.timeouts == (EventTimeout(actions, actions),)
    assert collect([]).options == NO_OPTIONS and collect(()).options == NO_OPTIONS
