"""GenStateMachine: OTP's gen_statem, a process that is a state machine.

The user's class: its callbacks and the client API (start, call, cast, reply, stop and
Erlang's ``sys`` functions). What a callback returns is in ``gen_statem_results.py``, the
arithmetic of a transition in ``gen_statem_transitions.py``, and the process that runs the
events through them in ``gen_statem_process.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from beamish._errors import (
    CallError,
    NameTakenError,
    NotInProcessError,
    NotRegisteredError,
    StartError,
    StartIgnored,
)
from beamish._otp import naming
from beamish._otp.gen_server.server import Cast, _Sys, _SysFailure
from beamish._otp.gen_statem.process import StateMachineProcess, display, parse_mode
from beamish._otp.gen_statem.results import (
    KeepStateAndData,
    short,
)
from beamish._otp.supervisor.child_spec import ChildSpec, ChildSpecOptions
from beamish._runtime.api import (
    exit,
    send,
    spawn_opt,
    unlink,
)
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import isolate
from beamish._runtime.pid import Pid
from beamish._runtime.request import ReplyTo, reply, request
from beamish._runtime.wakeups import fail

__all__ = ["GenStateMachine"]

_log = logging.getLogger("beamish.gen_statem")


class GenStateMachine(StateMachineProcess, ChildSpecOptions):
    """A state machine process, with gen_statem's semantics.

    Subclass it, choose a callback mode on the class line (Elixir's
    ``use GenStateMachine, callback_mode: ...``) and define the callbacks::

        class Switch(GenStateMachine, callback_mode="state_functions"):
            def init(self, arg):
                return NextState("off", 0)

            def off(self, event_type, content, count):
                match event_type, content:
                    case ("call", from_), "flip":
                        return NextState("on", count + 1, [ReplyAction(from_, "on")])

            def on(self, event_type, content, count):
                match event_type, content:
                    case ("call", from_), "flip":
                        return NextState("off", count, [ReplyAction(from_, "off")])

    Callback modes: ``"handle_event_function"`` (the default: one
    ``handle_event(event_type, content, state, data)`` for every state, and any value can
    be a state) or ``"state_functions"`` (a method per state, named after it:
    ``state_name(event_type, content, data)``; states are strings). Add ``"state_enter"``
    (``callback_mode=("state_functions", "state_enter")``) to have the state callback
    called with ``("enter", old_state, ...)`` on each state change and at start.

    Callbacks and what they may return (each may be ``async def``):

    - ``init(arg)``: ``NextState(state, data[, actions])`` or ``("ok", state, data[,
      actions])``; ``Ignore()``, ``Stop(reason)`` or ``("error", reason)``. Required.
    - the state callback: ``NextState(state, data[, actions])``, ``KeepState(data[,
      actions])``, ``KeepStateAndData([actions])``, ``RepeatState(data[, actions])``,
      ``RepeatStateAndData([actions])``, ``Stop(reason[, data])``,
      ``StopAndReply(reason, replies[, data])``, or Elixir's tuples of the same names.
    - ``terminate(reason, state, data)``: cleanup; its return is ignored.
    - ``code_change(old_vsn, state, data, extra)``: returns ``(state, data)``.

    Event types: ``("call", from_)``, ``"cast"``, ``"info"``, ``"internal"``,
    ``"timeout"``, ``"state_timeout"``, ``("timeout", name)`` (and ``"enter"``). Actions:
    ``ReplyAction``, ``Postpone``, ``NextEvent``, ``Hibernate``, ``EventTimeout``,
    ``StateTimeout``, ``GenericTimeout``, or their tuples. See docs/guides/gen_statem.md.
    """

    __slots__ = ()

    callback_mode: ClassVar[Any] = "handle_event_function"
    """``"handle_event_function"``, ``"state_functions"``, either with ``"state_enter"``."""

    display_name: ClassVar[str | None] = None
    """How errors and crash reports name this machine (default: its class's name)."""

    max_queued_events: ClassVar[int] = 10_000
    """The most events the machine may hold besides its mailbox: postponed ones and those
    inserted or retried but not handled yet. Past it, it stops with
    ``("event_queue_limit", max_queued_events)``: a machine that postpones forever would
    otherwise grow without bound."""

    def __init_subclass__(cls, *, callback_mode: Any = None, **options: Any) -> None:
        if callback_mode is not None:
            cls.callback_mode = callback_mode
        parse_mode(cls.callback_mode, cls.__qualname__)
        super().__init_subclass__(**options)

    # -- default callbacks ------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        raise NotImplementedError(
            f"{display(type(self))} must define init(self, arg) returning "
            "NextState(state, data[, actions])"
        )

    def handle_event(self, event_type: Any, content: Any, state: Any, data: Any) -> Any:
        if event_type == "info":
            _log.warning(
                "%s %s received an unexpected message in state %s: %s",
                display(type(self)),
                self._who(),
                short(state),
                short(content),
            )
            return KeepStateAndData()
        raise NotImplementedError(
            f"{display(type(self))} {self._who()} got the event ({event_type!r}, "
            f"{short(content)}) in state {short(state)} but defines no "
            "handle_event(self, event_type, content, state, data)"
        )

    def terminate(self, reason: Any, state: Any, data: Any) -> Any:
        return None

    def code_change(self, old_vsn: Any, state: Any, data: Any, extra: Any) -> Any:
        return state, data

    # -- client API -----------------------------------------------------------------------

    @classmethod
    async def start_link(
        cls, arg: Any = None, *, name: Any = None, timeout: float | None = 5.0
    ) -> Pid:
        """Start a machine linked to the caller; returns its pid once ``init`` has run.

        Raises ``StartError`` (``("already_started", pid)`` if the name is taken,
        ``"timeout"``, init's ``Stop`` or ``("error", r)`` reason, a ``Crash``) or
        ``StartIgnored``.
        """
        return await _start(cls, arg, name, timeout, link=True)

    @classmethod
    async def start(cls, arg: Any = None, *, name: Any = None, timeout: float | None = 5.0) -> Pid:
        """Like ``start_link``, without the link."""
        return await _start(cls, arg, name, timeout, link=False)

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """How a supervisor starts this machine: ``cls.start_link(arg)``, options applied."""
        spec = ChildSpec(id=cls, start=(cls.start_link, (arg,)), modules=(cls,))
        return cls.with_defaults(spec)

    @staticmethod
    def call(server: Any, request_: Any, timeout: float | None = None) -> Awaitable[Any]:
        """Send ``request_`` as a call event and wait for the reply (forever by default,
        as gen_statem does). Raises ``CallError`` as ``GenServer.call`` does."""
        _check_timeout(timeout, "GenStateMachine.call")
        if type(server) is Pid or type(server) is str:
            dest: Any = server
        else:
            dest = naming.destination(server)
            if dest is None:
                raise CallError("noproc", ("GenStateMachine.call", server, request_, timeout))
        return request(dest, request_, timeout=timeout, what="GenStateMachine.call", server=server)

    @staticmethod
    def cast(server: Any, request_: Any) -> None:
        """Send ``request_`` as a cast event without waiting. Never fails, even to nobody."""
        if type(server) is Pid or type(server) is str:
            dest: Any = server
        else:
            try:
                dest = naming.destination(server)
            except Exception:
                return
            if dest is None:
                return
        with contextlib.suppress(NotRegisteredError):
            send(dest, Cast(isolate(request_)))

    @staticmethod
    def reply(from_: ReplyTo, value: Any) -> None:
        """Answer a call, from any process; dropped if the caller stopped waiting."""
        reply(from_, value)

    @staticmethod
    async def stop(server: Any, reason: Any = "normal", timeout: float | None = None) -> None:
        """Stop ``server`` with ``reason`` and return once it has exited, terminate done.

        Raises ``CallError`` with ``"noproc"`` if nobody is there, ``"calling_self"`` from
        inside the machine, ``"timeout"`` if it did not exit in time (it keeps running).
        """
        _check_timeout(timeout, "GenStateMachine.stop")
        call = ("GenStateMachine.stop", server, reason, timeout)
        dest = naming.destination(server)
        if dest is None:
            raise CallError("noproc", call)
        try:
            await request(dest, _Sys("stop", reason), timeout=timeout)
        except CallError as exited:
            if exited.why == reason:
                return
            raise CallError(exited.why, call) from None

    @staticmethod
    def whereis(server: Any) -> Pid | None:
        """The pid of a machine given by pid, name or via name; None if nobody is there."""
        return naming.whereis(server)

    # -- system functions (Erlang's sys): state, suspension, code change ------------------

    @staticmethod
    async def get_state(server: Any, timeout: float | None = 5.0) -> tuple[Any, Any]:
        """The machine's ``(state, data)`` (for debugging and tests)."""
        found: tuple[Any, Any] = await _sys_call(server, _Sys("get_state"), timeout)
        return found

    @staticmethod
    async def replace_state(
        server: Any,
        fn: Callable[[tuple[Any, Any]], tuple[Any, Any]],
        timeout: float | None = 5.0,
    ) -> tuple[Any, Any]:
        """Replace ``(state, data)`` with ``fn((state, data))``; returns the new pair.

        Not a state change: no state enter call, no retry of postponed events.
        """
        found: tuple[Any, Any] = await _sys_call(server, _Sys("replace_state", fn), timeout)
        return found

    @staticmethod
    async def get_status(server: Any, timeout: float | None = 5.0) -> dict[str, Any]:
        """A status report: pid, name, module, parent, status, state, data, the postponed
        and queued events, the running timeouts and the mailbox size."""
        status: dict[str, Any] = await _sys_call(server, _Sys("get_status"), timeout)
        return status

    @staticmethod
    async def suspend(server: Any, timeout: float | None = 5.0) -> None:
        """Suspend: the machine then handles only system requests until resumed."""
        await _sys_call(server, _Sys("suspend"), timeout)

    @staticmethod
    async def resume(server: Any, timeout: float | None = 5.0) -> None:
        """Resume a suspended machine; what arrived meanwhile is handled in order."""
        await _sys_call(server, _Sys("resume"), timeout)

    @staticmethod
    async def change_code(
        server: Any, old_vsn: Any = None, extra: Any = None, timeout: float | None = 5.0
    ) -> None:
        """Run ``code_change(old_vsn, state, data, extra)`` in a suspended machine.

        On success ``(state, data)`` become what it returns (a state rename, not a state
        change) and the callback mode is read again; if it fails, the error is raised
        here and the machine keeps its old state and data.
        """
        await _sys_call(server, _Sys("change_code", old_vsn, extra), timeout)

    @staticmethod
    async def trace(server: Any, enabled: bool = True, timeout: float | None = 5.0) -> None:
        """Log every event the machine handles, in which state (at DEBUG level)."""
        await _sys_call(server, _Sys("trace", bool(enabled)), timeout)


GenStateMachine.reserved = frozenset(dir(GenStateMachine))


def _check_timeout(timeout: Any, what: str) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(
            f"{what}: timeout must be a number of seconds >= 0 or None (wait forever), "
            f"got {timeout!r}"
        )


async def _sys_call(server: Any, request_: _Sys, timeout: float | None) -> Any:
    _check_timeout(timeout, f"GenStateMachine.{request_.kind}")
    dest = naming.destination(server)
    call = (f"GenStateMachine.{request_.kind}", server, timeout)
    if dest is None:
        raise CallError("noproc", call)
    try:
        result = await request(dest, request_, timeout=timeout)
    except CallError as failure:
        raise CallError(failure.why, call) from None
    if type(result) is _SysFailure:
        raise result.error
    return result


async def _start(
    cls: type[GenStateMachine], arg: Any, name: Any, timeout: float | None, *, link: bool
) -> Pid:
    naming.check_name(name)
    shown = name  # as the caller wrote it: ("global", n) rather than its via form
    name = naming.normalize(name)
    _check_timeout(timeout, f"{cls.__qualname__}.start_link")
    try:
        machine = cls()
    except TypeError as exc:
        raise TypeError(
            f"{cls.__qualname__}() could not be created with no arguments ({exc}); a "
            "GenStateMachine receives its argument in init(self, arg), not in __init__"
        ) from exc
    try:
        parent: Pid | None = _self()
    except NotInProcessError:
        parent, link = None, False
    ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    machine._boot = (arg, ack, parent, name)
    try:
        pid = spawn_opt(machine, link=link, name=name if type(name) is str else None)
    except NameTakenError as taken:
        raise StartError(
            ("already_started", taken.holder),
            f"cannot start {cls.__qualname__} as {shown!r}: already started as {taken.holder!r}",
        ) from None
    try:
        outcome = await _waitack(ack, timeout)
    except TimeoutError:
        if link:
            unlink(pid)
        exit(pid, "kill")
        raise StartError(
            "timeout", f"{cls.__qualname__}.init did not return within {timeout}s; killed it"
        ) from None
    except BaseException:
        if link:
            unlink(pid)
        exit(pid, "kill")
        raise
    if outcome[0] == "ok":
        return pid
    if outcome[0] == "ignore":
        raise StartIgnored()
    reason = outcome[1]
    if type(reason) is tuple and reason and reason[0] == "already_started":
        raise StartError(
            reason,
            f"cannot start {cls.__qualname__} as {shown!r}: already started as {reason[1]!r}",
        )
    detail = f"; {outcome[2]}" if len(outcome) > 2 and outcome[2] else ""
    raise StartError(reason, f"{display(cls)} failed to start: {short(reason, 500)}{detail}")


async def _waitack(ack: asyncio.Future[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await ack
    from beamish._runtime.context import current_runtime

    def expire() -> None:
        fail(ack, TimeoutError())

    handle = current_runtime().clock.call_later(timeout, expire)
    try:
        return await ack
    finally:
        handle.cancel()
