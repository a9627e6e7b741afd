"""The gen_statem engine's arithmetic: what a state transition does, with no process.

No process here: plain functions on plain data, tested without a scheduler. The process
(``gen_statem.py``) calls the user's callbacks, hands their results to these functions, and
does what they return: send the replies, start and cancel the timers.

The machine between two events is a ``Machine``: the state and data, the *queue* of events
to handle before the next message of the mailbox (inserted with ``NextEvent`` and retried
after a state change), the *postponed* events, the running *timers* and the *t0q*.

A transition, in gen_statem's order (see its "transition_option()" documentation):

1. ``collect`` reads the actions in order: replies (sent at once, by the process), and the
   transition options (postpone, hibernate, inserted events, timeouts; the last of a kind
   wins). A state enter call, if one follows, adds its own actions the same way.
2. ``transition`` then: postpones the current event if asked; cancels the event timeout
   (any event does); on a *state change* (a different state, compared as OTP's ``=:=``)
   puts the postponed events back at the head of the queue, oldest first, and cancels the
   state timeout; inserts the ``NextEvent`` events before all of those, in order; and
   handles the timeouts, the last action of each kind winning.
3. ``next_event`` gives the event to handle next: the head of the queue, else the oldest
   live zero timeout, else None (the process waits for its mailbox).

Timers are identified by a *token*, a number that is never reused: a timer message that
comes back with a token the table no longer holds is stale (its timer was cancelled or
restarted) and is dropped. A timeout of zero starts no timer: it goes to the *t0q* (the
"time-out zero queue" of OTP), which is read after the queue and before the mailbox, so a
zero timeout is handled before any message not yet received, and can still be cancelled by
the events handled before it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from beamish._otp.gen_server.results import Reply
from beamish._otp.gen_statem.results import (
    ACTION_FORMS,
    ENTER_ACTIONS,
    EventTimeout,
    GenericTimeout,
    Hibernate,
    NextEvent,
    Postpone,
    Refused,
    ReplyAction,
    StateTimeout,
    TimeoutAction,
    action_list,
    action_of,
    is_event_type,
    same_state,
    short,
)
from beamish._runtime.request import ReplyTo

__all__ = [
    "NO_OPTIONS",
    "CancelTimer",
    "Collected",
    "Event",
    "Machine",
    "Options",
    "StartTimer",
    "Timer",
    "collect",
    "fire",
    "next_event",
    "timeout_type",
    "transition",
]

Event = tuple[Any, Any]
"""``(event_type, content)``: what a state callback is called with."""


class Timer(NamedTuple):
    """A running timeout: its token and the content its event will carry."""

    token: int
    content: Any


_NO_TIMERS: dict[Any, Timer] = {}  # never changed: transition copies before it writes


class Machine(NamedTuple):
    """Everything the engine keeps between two events. ``timers`` is never changed in place."""

    state: Any
    data: Any
    queue: tuple[Event, ...] = ()
    postponed: tuple[Event, ...] = ()  # oldest first
    timers: dict[Any, Timer] = _NO_TIMERS  # timeout type -> Timer
    t0q: tuple[tuple[Any, int], ...] = ()  # (timeout type, token) of zero timeouts, in order
    hibernate: bool = False
    tokens: int = 0  # the last token handed out
    head: int = 0  # how many events of ``queue`` were taken (always less than its length)

    def queued(self) -> tuple[Event, ...]:
        """The events still to handle before the mailbox, in order."""
        return self.queue[self.head :] if self.head else self.queue

    def timeouts(self) -> list[tuple[Any, Any]]:
        """The running timeouts, as ``(event_type, content)``."""
        return [(kind, timer.content) for kind, timer in self.timers.items()]

    def held(self) -> int:
        """How many events the machine holds besides its mailbox."""
        return len(self.queue) - self.head + len(self.postponed)


class Options(NamedTuple):
    """The transition options the actions set so far (OTP's ``transition_option()``)."""

    postpone: bool = False
    hibernate: bool = False
    next_events: tuple[Event, ...] = ()
    timeouts: tuple[TimeoutAction, ...] = ()  # in action order


NO_OPTIONS = Options()


class Collected(NamedTuple):
    """What ``collect`` read: the options, the replies to send now (in order), and the
    refusal of a bad action, if any (the replies before it are still sent, as in OTP)."""

    options: Options
    replies: tuple[tuple[ReplyTo, Any], ...] = ()
    refused: Refused | None = None


class StartTimer(NamedTuple):
    """Start a timer for ``time`` seconds (a deadline if ``absolute``) with this token."""

    type: Any
    token: int
    time: float
    absolute: bool = False


class CancelTimer(NamedTuple):
    """Cancel the timer started with this token (if it has one and it is still running)."""

    token: int


def timeout_type(action: TimeoutAction) -> Any:
    """The event type a timeout action's event has: its key in the timer table."""
    kind = type(action)
    if kind is EventTimeout:
        return "timeout"
    if kind is StateTimeout:
        return "state_timeout"
    return ("timeout", action.name)  # type: ignore[union-attr]


def collect(actions: Any, options: Options = NO_OPTIONS, *, enter: bool = False) -> Collected:
    """Read ``actions`` (any accepted shape) on top of ``options``.

    ``enter`` says they come from a state enter call, where postponing and inserting
    events are refused.
    """
    if (type(actions) is tuple or type(actions) is list) and not actions:
        return Collected(options)  # (a bare 0 is an action: an event timeout of 0)
    items = action_list(actions)
    if len(items) == 1 and type(items[0]) is ReplyAction and type(items[0].from_) is ReplyTo:
        return Collected(options, ((items[0].from_, items[0].value),))  # the common case
    postpone, hibernate = options.postpone, options.hibernate
    next_events = list(options.next_events)
    timeouts = list(options.timeouts)
    replies: list[tuple[ReplyTo, Any]] = []
    refused = None
    for item in items:
        action = action_of(item)
        kind = type(action)
        if kind is ReplyAction:
            if type(action.from_) is not ReplyTo:
                refused = _bad(
                    item,
                    enter,
                    "ReplyAction needs the from_ of a call event "
                    f"(a ReplyTo), got {short(action.from_)}",
                )
                break
            replies.append((action.from_, action.value))
        elif kind is Postpone:
            if enter and action.postpone:
                refused = _bad(item, True, ENTER_ACTIONS)
                break
            postpone = action.postpone
        elif kind is Hibernate:
            hibernate = action.hibernate
        elif kind is NextEvent:
            if enter:
                refused = _bad(item, True, ENTER_ACTIONS)
                break
            if not is_event_type(action.type):
                refused = _bad(
                    item,
                    False,
                    f"{action.type!r} is not an event type; NextEvent "
                    "takes 'internal', 'cast', 'info', ('call', from_), 'timeout', "
                    "'state_timeout' or ('timeout', name)",
                )
                break
            next_events.append((action.type, action.content))
        elif kind is EventTimeout or kind is StateTimeout or kind is GenericTimeout:
            if kind is GenericTimeout:
                try:
                    hash(action.name)
                except TypeError:
                    refused = _bad(
                        item,
                        enter,
                        f"a GenericTimeout name must be hashable, got {short(action.name)}",
                    )
                    break
            timeouts.append(action)
        else:
            hint = ""
            if type(item) is Reply:
                hint = " (Reply(value, state) is GenServer's; reply with ReplyAction(from_, value))"
            refused = _bad(
                item,
                enter,
                f"{short(item)} is not an action{hint}; the actions are: {ACTION_FORMS}",
            )
            break
    return Collected(
        Options(postpone, hibernate, tuple(next_events), tuple(timeouts)),
        tuple(replies),
        refused,
    )


def _bad(action: Any, enter: bool, why: str) -> Refused:
    tag = (
        "bad_state_enter_action_from_state_function"
        if enter
        else ("bad_action_from_state_function")
    )
    return Refused((tag, action), f"refused the action {short(action)}: {why}")


def transition(
    machine: Machine, event: Event | None, state: Any, data: Any, options: Options
) -> tuple[Machine, tuple[StartTimer | CancelTimer, ...]]:
    """The machine after handling ``event`` (None at start) into ``state`` with ``data``,
    and the timer operations the process must carry out."""
    postponed = machine.postponed
    if options.postpone and event is not None:
        postponed = (*postponed, event)
    queue, head = machine.queue, machine.head
    changed = not same_state(state, machine.state)
    if (
        not machine.timers
        and not options.timeouts
        and not options.next_events
        and not (changed and postponed)
    ):  # nothing but the state and data change: the common case
        return Machine(
            state,
            data,
            queue,
            postponed,
            machine.timers,
            machine.t0q,
            options.hibernate,
            machine.tokens,
            head,
        ), ()
    timers = dict(machine.timers)
    ops: list[StartTimer | CancelTimer] = []
    _cancel(timers, "timeout", ops)  # any event cancels the event timeout
    if changed:  # a state change
        if postponed:
            queue, head = postponed + queue[head:], 0
            postponed = ()
        _cancel(timers, "state_timeout", ops)
    if options.next_events:
        queue, head = options.next_events + queue[head:], 0
    tokens = machine.tokens
    zero: list[tuple[Any, int]] = []
    seen: set[Any] = set()
    for action in reversed(options.timeouts):  # the last of each kind wins
        kind = timeout_type(action)
        if kind in seen:
            continue
        seen.add(kind)
        time = action.time
        if time is None or time == "cancel" or time == "infinity":
            _cancel(timers, kind, ops)
        elif time == "update":
            running = timers.get(kind)
            if running is not None:
                timers[kind] = Timer(running.token, action.content)
            else:  # nothing to update: OTP starts it with time 0
                tokens += 1
                timers[kind] = Timer(tokens, action.content)
                zero.append((kind, tokens))
        else:
            _cancel(timers, kind, ops)  # setting a running timeout restarts it
            tokens += 1
            timers[kind] = Timer(tokens, action.content)
            if time == 0 and not action.absolute:
                zero.append((kind, tokens))
            else:
                ops.append(StartTimer(kind, tokens, time, action.absolute))
    zero.reverse()  # back to action order
    after = Machine(
        state,
        data,
        queue,
        postponed,
        timers,
        machine.t0q + tuple(zero),
        options.hibernate,
        tokens,
        head,
    )
    return after, tuple(ops)


def _cancel(timers: dict[Any, Timer], kind: Any, ops: list[StartTimer | CancelTimer]) -> None:
    timer = timers.pop(kind, None)
    if timer is not None:
        ops.append(CancelTimer(timer.token))


def next_event(machine: Machine) -> tuple[Machine, Event | None]:
    """The next event to handle before the mailbox, and the machine without it."""
    queue = machine.queue
    if queue:  # taken by moving ``head``: no copy of the queue per event
        m, head = machine, machine.head + 1
        if head == len(queue):
            queue, head = (), 0
        event = m.queue[m.head]
        return Machine(
            m.state, m.data, queue, m.postponed, m.timers, m.t0q, m.hibernate, m.tokens, head
        ), event
    t0q = machine.t0q
    if not t0q:
        return machine, None
    timers = machine.timers
    for i, (kind, token) in enumerate(t0q):
        timer = timers.get(kind)
        if timer is not None and timer.token == token:
            rest = dict(timers)
            del rest[kind]
            return machine._replace(t0q=t0q[i + 1 :], timers=rest), (kind, timer.content)
    return machine._replace(t0q=()), None


def fire(machine: Machine, kind: Any, token: int) -> tuple[Machine, Event | None]:
    """A timer's message came: its event, or None if the timer is no longer running."""
    timer = machine.timers.get(kind)
    if timer is None or timer.token != token:
        return machine, None
    rest = dict(machine.timers)
    del rest[kind]
    return machine._replace(timers=rest), (kind, timer.content)
