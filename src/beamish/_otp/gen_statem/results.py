"""What a GenStateMachine's callbacks return, and the actions they ask for.

Pure values and pure functions, kept apart from the process that acts on them
(``gen_statem.py``) and from the transition arithmetic (``gen_statem_transitions.py``).

A state callback returns a *result* (``NextState``, ``KeepState``, ``KeepStateAndData``,
``RepeatState``, ``RepeatStateAndData``, ``Stop``, ``StopAndReply``) that may carry
*actions* (``ReplyAction``, ``Postpone``, ``NextEvent``, ``Hibernate``, ``EventTimeout``,
``StateTimeout``, ``GenericTimeout``). Each also has the shape of Elixir's tuple, as
gen_statem writes it: ``("next_state", state, data, [actions])``,
``("reply", from_, value)``, ``("state_timeout", 5, "tick")``... ``decide`` and
``action_of`` turn either shape into the records; anything else is refused with a
``Refused`` that carries OTP's exit reason and a message listing what is allowed.

Action lists: a ``list`` is a list of actions. A ``tuple`` is one action if it reads as one
(``("postpone", True)``, ``("reply", from_, 1)``), else a sequence of actions
(``(ReplyAction(f, 1), Postpone())``); anything else is a single action.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from beamish._otp.gen_server.results import NOTHING, Ignore, NoReply, Ok, Reply, Stop
from beamish._runtime.request import ReplyTo

__all__ = [
    "ACTION_FORMS",
    "ENTER_ACTIONS",
    "INIT_FORMS",
    "RESULT_FORMS",
    "EventTimeout",
    "GenericTimeout",
    "Go",
    "Hibernate",
    "KeepState",
    "KeepStateAndData",
    "NextEvent",
    "NextState",
    "Postpone",
    "Refused",
    "RepeatState",
    "RepeatStateAndData",
    "ReplyAction",
    "StateTimeout",
    "StopAndReply",
    "TimeoutAction",
    "action_list",
    "action_of",
    "decide",
    "decide_init",
    "is_event_type",
    "same_state",
    "short",
]

# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextState:
    """Go to ``state`` with ``data``, then run ``actions``; a state change if ``state`` differs.

    Also what ``init`` returns: the first state and data, and actions to run on entering it.
    """

    state: Any
    data: Any
    actions: Any = ()


@dataclass(frozen=True, slots=True)
class KeepState:
    """Stay in the current state with new ``data``, then run ``actions``."""

    data: Any
    actions: Any = ()


@dataclass(frozen=True, slots=True)
class KeepStateAndData:
    """Change neither state nor data; only run ``actions``."""

    actions: Any = ()


@dataclass(frozen=True, slots=True)
class RepeatState:
    """Like ``KeepState``, but the state enter call runs again (with state enter calls on)."""

    data: Any
    actions: Any = ()


@dataclass(frozen=True, slots=True)
class RepeatStateAndData:
    """Like ``KeepStateAndData``, but the state enter call runs again."""

    actions: Any = ()


@dataclass(frozen=True, slots=True, repr=False)
class StopAndReply:
    """Send ``replies`` (reply actions), then stop with ``reason`` (``data`` if given)."""

    reason: Any
    replies: Any
    data: Any = NOTHING

    def __repr__(self) -> str:
        data = "" if self.data is NOTHING else f", {self.data!r}"
        return f"StopAndReply({self.reason!r}, {self.replies!r}{data})"


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyAction:
    """Answer the call whose event type was ``("call", from_)`` with ``value``."""

    from_: ReplyTo
    value: Any


@dataclass(frozen=True, slots=True)
class Postpone:
    """Keep the current event; retry it after the next state change (``Postpone(False)``
    takes back an earlier ``Postpone()`` of the same list)."""

    postpone: bool = True


@dataclass(frozen=True, slots=True)
class Hibernate:
    """Accepted for OTP's sake; beamish has nothing to compact (see the guide)."""

    hibernate: bool = True


@dataclass(frozen=True, slots=True)
class NextEvent:
    """Insert the event ``(type, content)`` to be handled next, before any queued event."""

    type: Any
    content: Any


_TIME_RULE = (
    "seconds >= 0, None or 'infinity' (no timer: cancels a running one), 'cancel', or "
    "'update' (new content for a running timer)"
)


def _check_time(owner: str, time: Any, absolute: Any) -> None:
    if type(absolute) is not bool:
        raise TypeError(f"{owner}: absolute must be True or False, got {absolute!r}")
    if time is None or time in ("infinity", "cancel", "update"):
        return
    if isinstance(time, bool) or not isinstance(time, int | float):
        raise TypeError(f"{owner}: time must be {_TIME_RULE}; got {time!r}")
    if time < 0 and not absolute:
        raise ValueError(f"{owner}: time must be {_TIME_RULE}; got {time!r}")


@dataclass(frozen=True, slots=True)
class EventTimeout:
    """After ``time`` seconds with no event, handle the event ``("timeout", content)``.

    Any event cancels it, so there is no need to cancel it by hand. ``absolute=True``
    reads ``time`` as a deadline on ``beamish.monotonic()``.
    """

    time: Any
    content: Any = None
    absolute: bool = False

    def __post_init__(self) -> None:
        _check_time("EventTimeout", self.time, self.absolute)


@dataclass(frozen=True, slots=True)
class StateTimeout:
    """After ``time`` seconds in the state being entered, handle ``("state_timeout", content)``.

    A state change cancels it; ``StateTimeout("cancel")`` does too, and
    ``StateTimeout("update", content)`` changes the content without touching the time.
    """

    time: Any
    content: Any = None
    absolute: bool = False

    def __post_init__(self) -> None:
        _check_time("StateTimeout", self.time, self.absolute)


@dataclass(frozen=True, slots=True)
class GenericTimeout:
    """After ``time`` seconds, handle the event ``(("timeout", name), content)``.

    Only setting it again (it restarts), ``"cancel"`` or ``None`` stop it: neither events
    nor state changes do. Any number of names can run at once.
    """

    name: Any
    time: Any
    content: Any = None
    absolute: bool = False

    def __post_init__(self) -> None:
        _check_time("GenericTimeout", self.time, self.absolute)


TimeoutAction = EventTimeout | StateTimeout | GenericTimeout


# -- what is allowed, for the errors --------------------------------------------------------

RESULT_FORMS = (
    "NextState(state, data[, actions]), KeepState(data[, actions]), "
    "KeepStateAndData([actions]), RepeatState(data[, actions]), "
    "RepeatStateAndData([actions]), Stop(reason[, data]), "
    "StopAndReply(reason, replies[, data]), or Elixir's tuples "
    "('next_state', state, data[, actions]), ('keep_state', data[, actions]), "
    "'keep_state_and_data', ('keep_state_and_data', actions), "
    "('repeat_state', data[, actions]), 'repeat_state_and_data', "
    "('repeat_state_and_data', actions), 'stop', ('stop', reason[, data]), "
    "('stop_and_reply', reason, replies[, data])"
)
INIT_FORMS = (
    "NextState(state, data[, actions]), ('ok', state, data[, actions]), Ignore() or "
    "'ignore', Stop(reason) or ('stop', reason), ('error', reason)"
)
ACTION_FORMS = (
    "ReplyAction(from_, value) or ('reply', from_, value); Postpone() or 'postpone' or "
    "('postpone', bool); NextEvent(type, content) or ('next_event', type, content); "
    "Hibernate() or 'hibernate'; EventTimeout(time, content) or ('timeout', time, content) "
    "or a bare number of seconds; StateTimeout(time, content) or "
    "('state_timeout', time, content); GenericTimeout(name, time, content) or "
    "(('timeout', name), time, content); time may also be 'cancel' (with no content) or "
    "'update' (with the new content)"
)
ENTER_ACTIONS = (
    "a state enter call may only reply, set timeouts or hibernate: Postpone and NextEvent "
    "are for event handling (the enter call is not an event)"
)


class Refused(Exception):
    """A callback returned something gen_statem does not allow.

    ``reason`` is the exit reason, in OTP's words (``("bad_return_from_state_function",
    value)``...); ``str()`` says what is allowed.
    """

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- results --------------------------------------------------------------------------------


class Go(NamedTuple):
    """A state callback's result, normalized: go to ``state`` with ``data``.

    ``enter`` is whether a state enter call follows (a state change, or a repeat).
    """

    state: Any
    data: Any
    actions: Any
    enter: bool


def same_state(a: Any, b: Any) -> bool:
    """OTP's ``=:=`` for states: equal and of the same type (so 1 and 1.0 differ)."""
    return a is b or (type(a) is type(b) and a == b)


def decide(result: Any, *, state: Any, data: Any, enter: bool) -> Go | Stop | StopAndReply:
    """Normalize a state callback's ``result``, in ``state`` with ``data``.

    ``enter`` says the callback was a state enter call: it may not change the state.
    Raises ``Refused`` for anything else.
    """
    raw, kind = result, type(result)
    if kind is tuple or kind is str:
        result = _from_tuple(result)
        kind = type(result)
    if kind is NextState:
        if same_state(result.state, state):
            return Go(state, result.data, result.actions, False)
        if enter:
            raise Refused(
                ("bad_state_enter_return_from_state_function", raw),
                f"a state enter call returned {short(raw)}, which changes the state from "
                f"{state!r}; a state enter call cannot change the state (use KeepState, "
                "or change state from the next event)",
            )
        return Go(result.state, result.data, result.actions, True)
    if kind is KeepState:
        return Go(state, result.data, result.actions, False)
    if kind is KeepStateAndData:
        return Go(state, data, result.actions, False)
    if kind is RepeatState:
        return Go(state, result.data, result.actions, True)
    if kind is RepeatStateAndData:
        return Go(state, data, result.actions, True)
    if (kind is Stop and result.reply is NOTHING) or kind is StopAndReply:
        return cast(Stop | StopAndReply, result)
    reason = (
        "bad_state_enter_return_from_state_function"
        if enter
        else ("bad_return_from_state_function")
    )
    raise Refused((reason, raw), _bad_result(raw, "a state callback", RESULT_FORMS))


def decide_init(result: Any) -> NextState | Ignore | Stop | tuple[str, Any]:
    """Normalize ``init``'s result: ``NextState``, ``Ignore``, ``Stop`` or ``("error", r)``."""
    kind = type(result)
    if (
        kind is NextState
        or kind is Ignore
        or (kind is Stop and result.state is NOTHING and result.reply is NOTHING)
    ):
        return cast(NextState | Ignore | Stop, result)
    if result == "ignore" and kind is str:
        return Ignore()
    if kind is tuple and result:
        tag, *rest = result
        if tag == "ok" and len(rest) in (2, 3):
            return NextState(*rest)
        if tag == "stop" and len(rest) == 1:
            return Stop(rest[0])
        if tag == "error" and len(rest) == 1:
            return ("error", rest[0])
    raise Refused(("bad_return_from_init", result), _bad_result(result, "init", INIT_FORMS))


def _bad_result(result: Any, who: str, forms: str) -> str:
    hint = ""
    if type(result) in (Reply, NoReply, Ok):
        hint = (
            f" ({type(result).__name__} is what a GenServer returns; a GenStateMachine "
            "answers a call with ReplyAction(from_, value) among its actions)"
        )
    elif type(result) is Stop:
        hint = " (Stop(reply=...) is GenServer's; use StopAndReply(reason, replies[, data]))"
    elif result is None:
        hint = " (did the callback forget to return?)"
    return f"{who} returned {short(result)}{hint}; it must return one of: {forms}"


def _from_tuple(result: Any) -> Any:
    if type(result) is str:
        if result == "keep_state_and_data":
            return KeepStateAndData()
        if result == "repeat_state_and_data":
            return RepeatStateAndData()
        if result == "stop":
            return Stop("normal")
        return result
    if not result:
        return result
    tag, *rest = result
    n = len(rest)
    if tag == "next_state" and n in (2, 3):
        return NextState(*rest)
    if tag == "keep_state" and n in (1, 2):
        return KeepState(*rest)
    if tag == "keep_state_and_data" and n == 1:
        return KeepStateAndData(rest[0])
    if tag == "repeat_state" and n in (1, 2):
        return RepeatState(*rest)
    if tag == "repeat_state_and_data" and n == 1:
        return RepeatStateAndData(rest[0])
    if tag == "stop" and n in (1, 2):
        return Stop(*rest)
    if tag == "stop_and_reply" and n in (2, 3):
        return StopAndReply(*rest)
    return result


# -- actions --------------------------------------------------------------------------------


def action_list(actions: Any) -> list[Any]:
    """The actions a result carries, as a list (see the module docstring for tuples)."""
    kind = type(actions)
    if kind is list:
        return actions  # type: ignore[no-any-return]
    if kind is tuple:
        if not actions:
            return []
        if action_of(actions) is not None:
            return [actions]
        return list(actions)
    return [actions]


def action_of(action: Any) -> Any:
    """The record for one action in either shape, or None if it is not an action."""
    kind = type(action)
    if kind in _ACTIONS:
        return action
    if kind is str:
        if action == "postpone":
            return Postpone()
        if action == "hibernate":
            return Hibernate()
        if action == "infinity":
            return EventTimeout(None, "infinity")
        return None
    if kind is int or kind is float:
        return EventTimeout(action, action) if action >= 0 else None
    if kind is not tuple or not action:
        return None
    tag, *rest = action
    n = len(rest)
    try:
        if tag == "reply" and n == 2:
            return ReplyAction(*rest)
        if tag in ("postpone", "hibernate") and n == 1 and type(rest[0]) is bool:
            return Postpone(rest[0]) if tag == "postpone" else Hibernate(rest[0])
        if tag == "next_event" and n == 2:
            return NextEvent(*rest)
        if tag == "timeout":
            return _timeout(EventTimeout, (), rest)
        if tag == "state_timeout":
            return _timeout(StateTimeout, (), rest)
        if type(tag) is tuple and len(tag) == 2 and tag[0] == "timeout":
            return _timeout(GenericTimeout, (tag[1],), rest)
    except (TypeError, ValueError):
        return None
    return None


def _timeout(cls: Any, name: tuple[Any, ...], rest: list[Any]) -> Any:
    n = len(rest)
    if n == 1 and rest[0] == "cancel":
        return cls(*name, "cancel")
    if n == 2 and rest[0] != "cancel":
        return cls(*name, rest[0], rest[1])
    if n == 3 and rest[0] not in ("cancel", "update"):
        absolute = _absolute(rest[2])
        if absolute is not None:
            return cls(*name, rest[0], rest[1], absolute=absolute)
    return None


def _absolute(options: Any) -> bool | None:
    """OTP's timeout options: ``("abs", bool)`` or a list of them (the last wins)."""
    items = options if type(options) is list else [options]
    absolute = False
    for item in items:
        if not (
            type(item) is tuple and len(item) == 2 and item[0] == "abs" and type(item[1]) is bool
        ):
            return None
        absolute = item[1]
    return absolute


_ACTIONS = frozenset(
    {
        ReplyAction,
        Postpone,
        Hibernate,
        NextEvent,
        EventTimeout,
        StateTimeout,
        GenericTimeout,
    }
)


def is_event_type(event_type: Any) -> bool:
    """What ``NextEvent`` may insert: every event type a state callback can be given."""
    if type(event_type) is str:
        return event_type in ("cast", "info", "internal", "timeout", "state_timeout")
    return (
        type(event_type) is tuple
        and len(event_type) == 2
        and (
            event_type[0] == "timeout"
            or (event_type[0] == "call" and type(event_type[1]) is ReplyTo)
        )
    )


_REPR = reprlib.Repr()
_REPR.maxlevel = 5
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 20
_REPR.maxstring = 200
_REPR.maxother = 1000


def short(value: Any, limit: int = 300) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without building a huge one first
    (what a client sent may reach a log through it)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "...(cut)"
