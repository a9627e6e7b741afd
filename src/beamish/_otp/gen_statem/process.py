"""The process side of a GenStateMachine: how events run through the engine.

How it works. A GenStateMachine is an ``Actor``, as a GenServer is: ``handle`` turns each
message into an event (``Request``, what ``call`` sends, into ``(("call", from_),
request)``; ``Cast`` into ``("cast", request)``; one of its own timers into that timeout's
event; anything else into ``("info", message)``) and runs it through the engine: the
user's state callback, the state enter calls, and the pure arithmetic of
``gen_statem_transitions.py``; then every event the machine queued for itself (inserted,
retried, zero timeouts) before it takes the next message of its mailbox.

The work of one message is a generator that yields only an awaitable: an ``async``
callback's, or a pause after a long run of queued events so other processes get the loop.
``_drive`` runs it to the end at once when it never yields, so a synchronous machine costs
no task; otherwise it is finished in a task, and the actor takes no other message
meanwhile. Ending the process is always ``raise ProcessExit(reason)`` after ``terminate``
ran, and the machine logs its own crash report, as a GenServer does.

System requests (``_Sys``, GenServer's) are handled even while suspended, so Erlang's
``sys`` functions work on either behaviour: ``GenServer.get_state(machine)`` too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from beamish._errors import (
    ProcessExit,
)
from beamish._otp import naming
from beamish._otp.gen_server.results import NOTHING, Ignore, Stop
from beamish._otp.gen_server.server import Cast, _Sys, _SysFailure
from beamish._otp.gen_statem.results import (
    Go,
    KeepState,
    KeepStateAndData,
    NextState,
    Refused,
    RepeatState,
    RepeatStateAndData,
    ReplyAction,
    StopAndReply,
    action_list,
    action_of,
    decide,
    decide_init,
    short,
)
from beamish._otp.gen_statem.transitions import (
    NO_OPTIONS,
    CancelTimer,
    Event,
    Machine,
    Options,
    StartTimer,
    collect,
    fire,
    next_event,
    transition,
)
from beamish._runtime.api import (
    cancel_timer,
    is_alive,
    monotonic,
    send_after,
    unlink,
)
from beamish._runtime.crash import ancestors_line
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Crash, Exit, is_clean_exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.receive import sleep
from beamish._runtime.request import ReplyTo, Request, reply
from beamish._runtime.wakeups import resolve

__all__ = ["StateMachineProcess", "acknowledge", "display", "parse_mode"]

_log = logging.getLogger("beamish.gen_statem")

_Steps = Generator[Awaitable[Any], Any, None]
_PLAIN = frozenset(
    {
        NextState,
        KeepState,
        KeepStateAndData,
        RepeatState,
        RepeatStateAndData,
        Stop,
        StopAndReply,
        tuple,
        str,
    }
)  # results that are certainly not awaitable
_BUDGET = 1000  # queued events handled in a row before the machine lets the loop run
_MODES = ("state_functions", "handle_event_function")


@mark_shared
class _Timeout:
    """What one of the machine's own timers sends it: the timeout's type and token."""

    __slots__ = ("token", "type")

    def __init__(self, type_: Any, token: int) -> None:
        self.type = type_
        self.token = token


class StateMachineProcess(Actor):
    """The process side of ``GenStateMachine`` (which adds the callbacks and the client API)."""

    __slots__ = (
        "_boot",
        "_deferred",
        "_enter",
        "_functions",
        "_last",
        "_m",
        "_name",
        "_parent",
        "_refs",
        "_suspended",
        "_trace",
    )

    _boot: tuple[Any, asyncio.Future[Any], Pid | None, Any] | None
    _m: Machine
    _parent: Pid | None
    _name: Any
    _refs: dict[int, Ref]
    _suspended: bool
    _deferred: deque[Any] | None
    _last: Any
    _trace: bool
    _functions: bool
    _enter: bool

    callback_mode: ClassVar[Any] = "handle_event_function"
    display_name: ClassVar[str | None] = None
    max_queued_events: ClassVar[int] = 10_000
    reserved: ClassVar[frozenset[str]] = frozenset()  # names a state function cannot have

    if TYPE_CHECKING:  # the callbacks: GenStateMachine defines them

        def init(self, arg: Any) -> Any: ...

        def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any: ...

        def terminate(self, reason: Any, state: Any, data: Any) -> Any: ...

        def code_change(self, old_vsn: Any, state: Any, data: Any, extra: Any) -> Any: ...

    # -- start ------------------------------------------------------------------------------

    def _who(self) -> str:
        pid = getattr(self, "pid", None)
        name = getattr(self, "_name", None)
        return f"{pid!r}" + (f" ({name!r})" if name is not None else "")

    def started(self) -> Awaitable[None] | None:
        assert self._boot is not None, "a GenStateMachine is started with start_link or start"
        arg, ack, parent, name = self._boot
        self._boot = None
        self._parent, self._name = parent, name
        self._m = Machine(None, None)
        self._refs = {}
        self._suspended, self._deferred, self._last, self._trace = False, None, None, False
        self._functions, self._enter = parse_mode(type(self).callback_mode, display(type(self)))
        if type(name) is tuple:  # a via name: the process registers itself, as in OTP
            registry, key = name[1], name[2]
            try:
                registered = registry.register_name(key, self.pid)
                holder = None if registered else registry.whereis_name(key)
            except Exception as exc:  # the registry itself failed (not running, say)
                self._name = None
                self._init_failed(ack, Crash(exc), exc)
            if not registered:
                self._name = None
                acknowledge(ack, ("error", ("already_started", holder)))
                self._unlink_parent()
                raise ProcessExit("normal")
        return self._drive(self._boot_steps(arg, ack))

    def _boot_steps(self, arg: Any, ack: asyncio.Future[Any]) -> _Steps:
        try:
            result = self.init(arg)
            if inspect.isawaitable(result):
                result = yield result
        except ProcessExit as stop:
            self._init_failed(ack, stop.reason, None)
        except Exception as exc:
            self._init_failed(ack, Crash(exc), exc)
        try:
            first = decide_init(result)
        except Refused as refused:
            self._init_failed(ack, refused.reason, None, str(refused))
        if type(first) is Ignore:
            self._init_failed(ack, "ignore", None, how="ignore")
        if type(first) is Stop:
            self._init_failed(ack, first.reason, None)
        if type(first) is tuple:  # ("error", reason): a quiet failure, exit normal (OTP 26)
            self._init_failed(ack, first[1], None, how="quiet")
        assert type(first) is NextState
        self._m = Machine(first.state, first.data)
        acknowledge(ack, ("ok",))
        yield from self._go(None, Go(first.state, first.data, first.actions, True))
        yield from self._steps(None)

    def _init_failed(
        self,
        ack: asyncio.Future[Any],
        reason: Any,
        exc: BaseException | None,
        message: str | None = None,
        *,
        how: str = "error",
    ) -> NoReturn:
        """End a start that failed: ``how`` is "error" (exit with ``reason``), "quiet"
        (``("error", reason)``: exit normal) or "ignore"."""
        naming.unregister_own(self._name, self.pid)
        self._unlink_parent()  # the starter learns through start_link's error, not a signal
        if exc is not None or message is not None:
            _log.error(
                "%s %s failed in init: %s%s",
                display(type(self)),
                self._who(),
                short(reason),
                f"\n** {message}" if message else "",
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
        if how == "ignore":
            acknowledge(ack, ("ignore",))
            raise ProcessExit("normal")
        acknowledge(ack, ("error", reason, message))
        raise ProcessExit("normal" if how == "quiet" else reason)

    def _unlink_parent(self) -> None:
        if self._parent is not None:
            unlink(self._parent)

    # -- events -----------------------------------------------------------------------------

    def handle(self, message: Any) -> Awaitable[None] | None:
        kind = type(message)
        if kind is Request:
            payload = message.payload
            if type(payload) is _Sys:
                return self._system(message.reply_to, payload)
            if self._suspended:
                self._defer(message)
                return None
            event: Event = (("call", message.reply_to), payload)
        elif kind is Exit and self._parent is not None and message.pid == self._parent:
            m = self._m  # trapping exits: the parent asks us to go (even while suspended)
            return self._drive(self._stop(message.reason, m.state, m.data))
        elif self._suspended:
            self._defer(message)
            return None
        elif kind is Cast:
            event = ("cast", message.request)
        elif kind is _Timeout:
            self._refs.pop(message.token, None)
            self._m, fired = fire(self._m, message.type, message.token)
            if fired is None:
                return None  # a timer cancelled or restarted after it sent this
            event = fired
        else:
            event = ("info", message)
        return self._drive(self._steps(event))

    def _steps(self, event: Event | None) -> _Steps:
        """Handle ``event``, then the events the machine holds (inserted, retried, zero
        timeouts) before its mailbox."""
        budget = _BUDGET
        while True:
            if event is not None:
                yield from self._event(event)
            m = self._m
            if not m.queue and not m.t0q:
                return
            self._m, event = next_event(m)
            budget -= 1
            if budget == 0:  # let the other processes run; our mailbox waits, in order
                budget = _BUDGET
                yield sleep(0)

    def _event(self, event: Event) -> _Steps:
        """Call the state callback with ``event``, then make the transition it returns."""
        m = self._m
        self._last = event
        if self._trace:
            _log.debug("%s in state %r got %r", self._who(), m.state, event)
        try:
            result = self._callback(event[0], event[1], m.state, m.data)
            if type(result) not in _PLAIN and inspect.isawaitable(result):
                result = yield result
        except BaseException as exc:
            yield from self._failed(exc)
            return
        try:
            decision = decide(result, state=m.state, data=m.data, enter=False)
        except Refused as refused:
            yield from self._stop(refused.reason, m.state, m.data, None, str(refused))
            return
        if not isinstance(decision, Go):
            yield from self._stopping(decision, m.state, m.data)
            return
        yield from self._go(event, decision)

    def _callback(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        if not self._functions:
            return self.handle_event(event_type, content, state, data)
        if type(state) is not str or state.startswith("_") or state in self.reserved:
            raise TypeError(
                f"{display(type(self))} uses callback_mode 'state_functions', where a state "
                f"is the name of the method that handles it; {state!r} cannot be one "
                f"({'it names a GenStateMachine attribute; ' if state in self.reserved else ''}"
                "use a plain identifier, or callback_mode 'handle_event_function' for "
                "states of any kind)"
            )
        function = getattr(self, state, None)
        if not callable(function):
            raise NotImplementedError(
                f"{display(type(self))} {self._who()} got the event ({event_type!r}, "
                f"{short(content)}) in state {state!r} but defines no method "
                f"{state}(self, event_type, content, data); in callback_mode "
                "'state_functions' each state needs a method of its name"
            )
        return function(event_type, content, data)

    def _go(self, event: Event | None, decision: Go, options: Options = NO_OPTIONS) -> _Steps:
        """Carry out a transition: actions, state enter calls, then the engine's arithmetic."""
        m = self._m
        state, data = decision.state, decision.data
        collected = collect(decision.actions, options)
        self._send(collected.replies)
        if collected.refused is not None:
            yield from self._stop(
                collected.refused.reason, state, data, None, str(collected.refused)
            )
            return
        options = collected.options
        if event is None and options.postpone:  # init: there is no event to postpone
            options = options._replace(postpone=False)
        enter = decision.enter and self._enter
        while enter:
            try:
                result = self._callback("enter", m.state, state, data)
                if type(result) not in _PLAIN and inspect.isawaitable(result):
                    result = yield result
            except BaseException as exc:
                yield from self._failed(exc)
                return
            try:
                entered = decide(result, state=state, data=data, enter=True)
            except Refused as refused:
                yield from self._stop(refused.reason, state, data, None, str(refused))
                return
            if not isinstance(entered, Go):
                yield from self._stopping(entered, state, data)
                return
            data = entered.data
            collected = collect(entered.actions, options, enter=True)
            self._send(collected.replies)
            if collected.refused is not None:
                yield from self._stop(
                    collected.refused.reason, state, data, None, str(collected.refused)
                )
                return
            options = collected.options
            enter = entered.enter
        after, ops = transition(m, event, state, data, options)
        self._m = after
        if ops:
            self._set_timers(ops)
        limit = self.max_queued_events
        if (after.queue or after.postponed) and after.held() > limit:
            yield from self._stop(
                ("event_queue_limit", limit),
                state,
                data,
                None,
                f"the machine holds {after.held()} events besides its mailbox "
                f"({len(after.postponed)} postponed), over its max_queued_events of {limit}; "
                "a state that postpones every event and is never left, or a loop of "
                "NextEvent actions, grows without bound (raise max_queued_events on the "
                "class if the machine needs more)",
            )
            return

    def _send(self, replies: tuple[tuple[ReplyTo, Any], ...]) -> None:
        for from_, value in replies:
            reply(from_, value)
            if self._trace:
                _log.debug("%s replied %r to %r", self._who(), value, from_.pid)

    def _set_timers(self, ops: tuple[StartTimer | CancelTimer, ...]) -> None:
        refs = self._refs
        for op in ops:
            if type(op) is CancelTimer:
                ref = refs.pop(op.token, None)
                if ref is not None:
                    cancel_timer(ref)
            else:
                assert type(op) is StartTimer
                delay = max(0.0, op.time - monotonic()) if op.absolute else op.time
                refs[op.token] = send_after(self.pid, _Timeout(op.type, op.token), delay)

    # -- stopping ---------------------------------------------------------------------------

    def _stopping(self, decision: Stop | StopAndReply, state: Any, data: Any) -> _Steps:
        if type(decision) is Stop:
            yield from self._stop(
                decision.reason, state, data if decision.state is NOTHING else decision.state
            )
            return
        assert type(decision) is StopAndReply
        if decision.data is not NOTHING:
            data = decision.data
        for item in action_list(decision.replies):
            action = action_of(item)
            if type(action) is not ReplyAction or type(action.from_) is not ReplyTo:
                yield from self._stop(
                    ("bad_reply_action_from_state_function", item),
                    state,
                    data,
                    None,
                    f"StopAndReply's replies must be ReplyAction(from_, value) or ('reply', "
                    f"from_, value), got {short(item)}",
                )
                return
            reply(action.from_, action.value)
        yield from self._stop(decision.reason, state, data)

    def _failed(self, exc: BaseException) -> _Steps:
        m = self._m
        if isinstance(exc, ProcessExit):
            if not is_alive(self.pid):  # killed by a signal it caused: no terminate
                raise exc
            yield from self._stop(exc.reason, m.state, m.data, exc)
            return
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit, CancelledError
        yield from self._stop(Crash(exc), m.state, m.data, exc)

    def _stop(
        self,
        reason: Any,
        state: Any,
        data: Any,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> _Steps:
        """Run terminate, report if abnormal, and exit with ``reason``."""
        self._m = self._m._replace(state=state, data=data)
        try:
            result = self.terminate(reason, state, data)
            if result is not None and inspect.isawaitable(result):
                yield result
        except Exception as failure:
            reason, exc, message = Crash(failure), failure, None
        raise ProcessExit(reason, reported=self._report(reason, exc, message))

    def _report(self, reason: Any, exc: BaseException | None, message: str | None
                ) -> dict[str, Any] | bool:
        """Log the crash report of an abnormal exit; then what the kernel's crash report
        adds (``_runtime/crash.py``), or False if it was no crash."""
        if is_clean_exit(reason):
            return False
        m = self._m
        crash = exc if isinstance(exc, Exception) else None
        lines = [
            f"{display(type(self))} {self._who()} terminating",
            f"** reason: {short(reason, 500)}",
            f"** last event: {short(self._last, 500)}",
            f"** state: {short(m.state, 500)}",
            f"** data: {short(m.data, 500)}",
        ]
        if m.queue:
            lines.append(f"** queued: {short(list(m.queued()), 500)}")
        if m.postponed:
            lines.append(f"** postponed: {short(list(m.postponed), 500)}")
        if m.timers:
            lines.append(f"** timeouts: {short(m.timeouts(), 500)}")
        if message:
            lines.append(f"** {message}")
        ancestors = ancestors_line(self.pid)
        if ancestors:
            lines.append(ancestors)
        _log.error(
            "%s",
            "\n".join(lines),
            exc_info=(type(crash), crash, crash.__traceback__) if crash is not None else None,
        )
        return {"behaviour": "GenStateMachine", "message": self._last,
                "state": {"state": m.state, "data": m.data}}

    # -- running the steps ------------------------------------------------------------------

    def _drive(self, steps: _Steps) -> Awaitable[None] | None:
        """Run ``steps`` to its end now, or return what finishes it once it must wait."""
        try:
            awaitable = steps.send(None)
        except StopIteration:
            return None
        return self._finish(steps, awaitable)

    async def _finish(self, steps: _Steps, awaitable: Awaitable[Any]) -> None:
        while True:
            try:
                value = await awaitable
            except BaseException as exc:
                try:
                    awaitable = steps.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    awaitable = steps.send(value)
                except StopIteration:
                    return

    # -- system requests --------------------------------------------------------------------

    def _defer(self, message: Any) -> None:
        if self._deferred is None:
            self._deferred = deque()
        self._deferred.append(message)

    def _system(self, from_: ReplyTo, request_: _Sys) -> Awaitable[None] | None:
        kind, args, m = request_.kind, request_.args, self._m
        if kind == "get_state":
            reply(from_, (m.state, m.data))
        elif kind == "replace_state":
            try:
                new = args[0]((m.state, m.data))
                if type(new) is not tuple or len(new) != 2:
                    raise TypeError(
                        f"replace_state's function must return (state, data), got {new!r}"
                    )
            except Exception as exc:
                reply(from_, _SysFailure(exc))
                return None
            self._m = m._replace(state=new[0], data=new[1])
            reply(from_, new)
        elif kind == "get_status":
            reply(
                from_,
                {
                    "pid": self.pid,
                    "name": self._name,
                    "module": type(self),
                    "parent": self._parent,
                    "status": "suspended" if self._suspended else "running",
                    "state": m.state,
                    "data": m.data,
                    "queued": list(m.queued()),
                    "postponed": list(m.postponed),
                    "timeouts": m.timeouts(),
                    "message_queue_len": self.mailbox_size()
                    + (len(self._deferred) if self._deferred else 0),
                },
            )
        elif kind == "suspend":
            self._suspended = True
            reply(from_, None)
        elif kind == "resume":
            self._suspended = False
            reply(from_, None)
            return self._drain()
        elif kind == "change_code":
            reply(from_, self._change_code(*args))
        elif kind == "trace":
            self._trace = args[0]
            reply(from_, None)
        elif kind == "stop":
            return self._drive(self._stop(args[0], m.state, m.data))
        else:
            reply(from_, _SysFailure(ValueError(f"unknown system request {kind!r}")))
        return None

    def _upgrade(self, old_vsn: Any, extra: Any) -> Callable[[], None] | None:
        m, functions, enter = self._m, self._functions, self._enter
        new = self.code_change(old_vsn, m.state, m.data, extra)
        if type(new) is not tuple or len(new) != 2:
            raise TypeError(f"code_change must return (state, data), got {short(new)}")
        self._functions, self._enter = parse_mode(type(self).callback_mode,
                                                  display(type(self)))
        self._m = m._replace(state=new[0], data=new[1])

        def undo() -> None:
            self._m, self._functions, self._enter = m, functions, enter

        return undo

    def _change_code(self, old_vsn: Any, extra: Any) -> Any:
        if not self._suspended:
            return _SysFailure(
                RuntimeError(
                    "change_code needs a suspended machine: call GenStateMachine.suspend first"
                )
            )
        try:
            self._upgrade(old_vsn, extra)  # what an upgrade runs too, nothing kept to undo
        except Exception as exc:
            return _SysFailure(exc)
        return None

    def _drain(self) -> Awaitable[None] | None:
        deferred = self._deferred
        while deferred and not self._suspended:
            rest = self.handle(deferred.popleft())
            if rest is not None:
                return self._drain_after(rest)
        return None

    async def _drain_after(self, rest: Awaitable[None]) -> None:
        await rest
        more = self._drain()
        if more is not None:
            await more


def parse_mode(mode: Any, owner: str) -> tuple[bool, bool]:
    """``(state_functions, state_enter)`` from a callback mode; TypeError if it is none."""
    items = [mode] if type(mode) is str else list(mode) if type(mode) in (list, tuple) else None
    if items is not None:
        modes = [item for item in items if item in _MODES]
        enter = [item for item in items if item == "state_enter"]
        if len(modes) == 1 and len(modes) + len(enter) == len(items) and len(enter) <= 1:
            return modes[0] == "state_functions", bool(enter)
    raise TypeError(
        f"{owner}: invalid callback_mode {mode!r}; it is 'handle_event_function' or "
        "'state_functions', optionally with 'state_enter', e.g. "
        "callback_mode=('state_functions', 'state_enter')"
    )


def display(cls: type[StateMachineProcess]) -> str:
    name: str = getattr(cls, "display_name", None) or cls.__qualname__
    return name


def acknowledge(ack: asyncio.Future[Any], value: tuple[Any, ...]) -> None:
    resolve(ack, value)  # the caller of start_link is woken: counted, as the runtime counts
