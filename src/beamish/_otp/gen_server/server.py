"""GenServer: a process that keeps state and serves calls, casts and messages.

How it works. A GenServer is an ``Actor``: the instance the user's class defines is the
process's body, and ``handle`` (below) dispatches each message to the user's callbacks:
``Request`` (what ``call`` sends, through the kernel's ``request``) to ``handle_call``,
``Cast`` to ``handle_cast``, anything else to ``handle_info``. The state is passed in and
returned, as in OTP. A callback may be ``async def``: the dispatch then returns an awaitable
that finishes the step, and the actor takes no other message meanwhile.

Each step returns ``None`` when it finished synchronously, or an awaitable that finishes it;
a ``Continue`` runs inside the same step, before any queued message. Ending the process is
always ``raise ProcessExit(reason)`` after ``terminate`` ran, so the kernel never logs a
GenServer twice: the GenServer logs its own crash report, and says so with
``ProcessExit(reason, reported=True)``, so the kernel still counts the crash and tells the
``crash`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, NoReturn

from beamish._errors import (
    CallError,
    MessageCopyError,
    NameTakenError,
    NotInProcessError,
    NotRegisteredError,
    ProcessExit,
    StartError,
    StartIgnored,
)
from beamish._otp import naming
from beamish._otp.gen_server.results import NOTHING as _NOTHING
from beamish._otp.gen_server.results import RESULTS as _RESULTS
from beamish._otp.gen_server.results import (
    BadReturnValue,
    Continue,
    Ignore,
    NoReply,
    Ok,
    Reply,
    Stop,
)
from beamish._otp.gen_server.results import after_of as _after_of
from beamish._otp.gen_server.results import normalize as _normalize
from beamish._otp.supervisor.child_spec import ChildSpec, ChildSpecOptions
from beamish._runtime.api import (
    cancel_timer,
    exit,
    is_alive,
    send,
    send_after,
    spawn_opt,
    unlink,
)
from beamish._runtime.api import self as _self
from beamish._runtime.crash import ancestors_line
from beamish._runtime.isolation import isolate, mark_shared
from beamish._runtime.messages import Crash, Exit, is_clean_exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.request import ReplyTo, Request, reply, request
from beamish._runtime.wakeups import fail, resolve

__all__ = [
    "Cast",
    "Continue",
    "GenServer",
    "Ignore",
    "NoReply",
    "Ok",
    "Reply",
    "Stop",
]

_log = logging.getLogger("beamish.gen_server")

# What the callbacks return is in gen_server_results.py; here are the messages a GenServer
# takes besides the user's.


@mark_shared
class Cast:
    """The message ``GenServer.cast`` sends (its request was isolated by ``cast``)."""

    __slots__ = ("request",)
    __match_args__ = ("request",)

    def __init__(self, request: Any) -> None:
        self.request = request

    def __repr__(self) -> str:
        return f"Cast({self.request!r})"


@mark_shared
class _Sys:
    """A system request (get_state, suspend, stop, ...), handled even while suspended."""

    __slots__ = ("args", "kind")

    def __init__(self, kind: str, *args: Any) -> None:
        self.kind = kind
        self.args = args


@mark_shared
class _IdleTimeout:
    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


# -- the behaviour -----------------------------------------------------------------------------


class GenServer(Actor, ChildSpecOptions):
    """A server process: state, calls, casts and messages, with OTP's semantics.

    Subclass it and define the callbacks you need::

        class Counter(GenServer):
            def init(self, initial):
                return Ok(initial)

            def handle_cast(self, request, state):
                match request:
                    case "increment":
                        return NoReply(state + 1)

            def handle_call(self, request, from_, state):
                match request:
                    case "get":
                        return Reply(state, state)

        pid = await Counter.start_link(0, name="counter")
        GenServer.cast("counter", "increment")
        assert await GenServer.call("counter", "get") == 1

    Callbacks and what they may return (each may be ``async def``):

    - ``init(arg)``: ``Ok(state[, after])``, ``Ignore()``, ``Stop(reason)`` or
      ``("error", reason)`` (the start fails with ``reason``, quietly: the server exits
      ``"normal"``). Required.
    - ``handle_call(request, from_, state)``: ``Reply(value, state[, after])``,
      ``NoReply(state[, after])`` (reply later with ``GenServer.reply(from_, value)``) or
      ``Stop(reason, state[, reply=value])``. Left out: the server crashes, naming the call.
    - ``handle_cast(request, state)`` and ``handle_info(message, state)``:
      ``NoReply(state[, after])`` or ``Stop(reason, state)``. ``handle_cast`` left out: the
      server crashes; ``handle_info`` left out: the message is logged and ignored.
    - ``handle_continue(term, state)``: as ``handle_cast``; runs after a ``Continue(term)``
      before any other message.
    - ``terminate(reason, state)``: runs when the server stops on purpose, crashes in a
      callback, or (if it traps exits) gets an exit signal from its parent. Not on kill.
    - ``code_change(old_vsn, state, extra)``: returns the new state (default: unchanged).

    ``after`` is a timeout in seconds (``handle_info("timeout", state)`` runs if no message
    arrives first) or ``Continue(term)``. Elixir-style tuples are accepted too:
    ``("reply", value, state)``, ``("noreply", state)``, ``("ok", state)``,
    ``("stop", reason, state)``, ``("continue", term)``.

    Options for the child spec go on the class line, like ``use GenServer, restart: ...``::

        class Worker(GenServer, restart="transient", shutdown=10): ...
    """

    __slots__ = (
        "_acking",
        "_boot",
        "_deferred",
        "_generation",
        "_last",
        "_name",
        "_parent",
        "_state",
        "_suspended",
        "_timer",
        "_trace",
    )

    _boot: tuple[Any, asyncio.Future[Any], Pid | None, Any] | None
    _acking: asyncio.Future[Any] | None  # start_link's, until init has answered
    _parent: Pid | None
    _name: Any
    _state: Any
    _timer: Ref | None
    _generation: int
    _suspended: bool
    _deferred: deque[Any] | None
    _last: Any
    _trace: bool

    display_name: ClassVar[str | None] = None
    """How errors and crash reports name this server (default: its class's name)."""

    # -- default callbacks ------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        raise NotImplementedError(
            f"{_display(type(self))} must define init(self, arg) returning Ok(state)"
        )

    def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        raise NotImplementedError(
            f"{_display(type(self))} {self._who()} got the call {request!r} but defines no "
            "handle_call(self, request, from_, state)"
        )

    def handle_cast(self, request: Any, state: Any) -> Any:
        raise NotImplementedError(
            f"{_display(type(self))} {self._who()} got the cast {request!r} but defines no "
            "handle_cast(self, request, state)"
        )

    def handle_info(self, message: Any, state: Any) -> Any:
        _log.warning(
            "%s %s received an unexpected message in handle_info: %r",
            _display(type(self)), self._who(), message,
        )
        return NoReply(state)

    def handle_continue(self, term: Any, state: Any) -> Any:
        raise NotImplementedError(
            f"{_display(type(self))} {self._who()} returned Continue({term!r}) but defines "
            "no handle_continue(self, term, state)"
        )

    def terminate(self, reason: Any, state: Any) -> Any:
        return None

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        return state

    def _upgrade(self, old_vsn: Any, extra: Any) -> Callable[[], None] | None:
        old = self._state
        self._state = self.code_change(old_vsn, old, extra)

        def undo() -> None:
            self._state = old

        return undo

    # -- client API -----------------------------------------------------------------------

    @classmethod
    async def start_link(
        cls, arg: Any = None, *, name: Any = None, timeout: float | None = 5.0
    ) -> Pid:
        """Start a server linked to the caller; returns its pid once ``init`` has run.

        Raises ``StartError`` (``("already_started", pid)`` if the name is taken,
        ``"timeout"``, init's ``Stop`` or ``("error", reason)`` reason, a ``Crash``) or
        ``StartIgnored``.
        """
        return await _start(cls, arg, name, timeout, link=True)

    @classmethod
    async def start(
        cls, arg: Any = None, *, name: Any = None, timeout: float | None = 5.0
    ) -> Pid:
        """Like ``start_link``, without the link."""
        return await _start(cls, arg, name, timeout, link=False)

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """How a supervisor starts this server: ``cls.start_link(arg)``, options applied."""
        spec = ChildSpec(id=cls, start=(cls.start_link, (arg,)), modules=(cls,))
        return cls.with_defaults(spec)

    @staticmethod
    def call(server: Any, request_: Any, timeout: float | None = 5.0) -> Awaitable[Any]:
        """Send ``request_`` to ``server`` and wait for its reply (``timeout`` seconds).

        On failure raises ``CallError`` with ``why`` ``"timeout"`` (the server keeps
        running, and its late reply is dropped), ``"noproc"``, ``"calling_self"``, or the
        reason the server exited with. Use it as ``await GenServer.call(server, request)``.
        """
        if timeout is not None and (type(timeout) is not float or timeout < 0):
            _check_timeout(timeout, "GenServer.call")
        if type(server) is Pid or type(server) is str:
            dest: Any = server
        else:
            dest = naming.destination(server)
            if dest is None:
                raise CallError("noproc", ("GenServer.call", server, request_, timeout))
        return request(dest, request_, timeout=timeout, what="GenServer.call", server=server)

    @staticmethod
    def cast(server: Any, request_: Any) -> None:
        """Send ``request_`` to ``server`` without waiting. Never fails, even to nobody.

        Only a coroutine given for the server (``start_link`` without ``await``) raises: it
        is a bug, not a server that is gone.
        """
        if type(server) is Pid or type(server) is str:
            dest: Any = server
        else:
            if inspect.isawaitable(server):  # a bug, not a server that is not there
                naming.check_name(server)
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
        inside the server, ``"timeout"`` if it did not exit in time (it keeps running).
        """
        _check_timeout(timeout, "GenServer.stop")
        call = ("GenServer.stop", server, reason, timeout)
        dest = naming.destination(server)
        if dest is None:
            raise CallError("noproc", call)
        try:
            await request(dest, _Sys("stop", reason), timeout=timeout)
        except CallError as exited:
            if exited.why == reason:
                return
            raise CallError(exited.why, call) from None
        raise CallError(("unexpected_reply", "stop"), call)  # pragma: no cover

    @staticmethod
    def whereis(server: Any) -> Pid | None:
        """The pid of a server given by pid, name or via name; None if nobody is there."""
        return naming.whereis(server)

    # -- system functions (Erlang's sys): state, suspension, code change ------------------

    @staticmethod
    async def get_state(server: Any, timeout: float | None = 5.0) -> Any:
        """The server's current state (for debugging and tests)."""
        return await _sys_call(server, _Sys("get_state"), timeout)

    @staticmethod
    async def replace_state(
        server: Any, fn: Callable[[Any], Any], timeout: float | None = 5.0
    ) -> Any:
        """Replace the state with ``fn(state)``; returns the new state."""
        return await _sys_call(server, _Sys("replace_state", fn), timeout)

    @staticmethod
    async def get_status(server: Any, timeout: float | None = 5.0) -> dict[str, Any]:
        """A status report: pid, name, module, parent, status, state, mailbox size."""
        status: dict[str, Any] = await _sys_call(server, _Sys("get_status"), timeout)
        return status

    @staticmethod
    async def suspend(server: Any, timeout: float | None = 5.0) -> None:
        """Suspend: the server then handles only system requests until resumed."""
        await _sys_call(server, _Sys("suspend"), timeout)

    @staticmethod
    async def resume(server: Any, timeout: float | None = 5.0) -> None:
        """Resume a suspended server; messages that arrived meanwhile are handled in order."""
        await _sys_call(server, _Sys("resume"), timeout)

    @staticmethod
    async def change_code(
        server: Any, old_vsn: Any = None, extra: Any = None, timeout: float | None = 5.0
    ) -> None:
        """Run ``code_change(old_vsn, state, extra)`` in a suspended server.

        On success the state is replaced by what it returns; if it raises, the error is
        raised here, and the server keeps its old state and keeps running.
        """
        await _sys_call(server, _Sys("change_code", old_vsn, extra), timeout)

    @staticmethod
    async def trace(server: Any, enabled: bool = True, timeout: float | None = 5.0) -> None:
        """Log every message the server handles, and what it returns (at DEBUG level)."""
        await _sys_call(server, _Sys("trace", bool(enabled)), timeout)

    # -- the process side -----------------------------------------------------------------

    def _who(self) -> str:
        pid = getattr(self, "pid", None)
        name = getattr(self, "_name", None)
        return f"{pid!r}" + (f" ({name!r})" if name is not None else "")

    def started(self) -> Awaitable[None] | None:
        assert self._boot is not None, "a GenServer is started with start_link or start"
        arg, ack, parent, name = self._boot
        self._boot = None
        self._acking = ack
        self._parent = parent
        self._name = name
        self._state = None
        self._timer = None
        self._generation = 0
        self._suspended = False
        self._deferred = None
        self._last = None
        self._trace = False
        if type(name) is tuple:  # a via name: the process registers itself, as in OTP
            registry, key = name[1], name[2]
            try:
                registered = registry.register_name(key, self.pid)
                holder = None if registered else registry.whereis_name(key)
            except Exception as exc:  # the registry itself failed (not running, say)
                _log.error("%s %s could not register %r: %r", _display(type(self)),
                           self._who(), name, exc)
                _ack(ack, ("error", Crash(exc)))
                self._unlink_parent()
                raise ProcessExit("normal") from None
            if not registered:
                _ack(ack, ("error", ("already_started", holder)))
                self._unlink_parent()
                raise ProcessExit("normal")
        try:
            result = self.init(arg)
        except ProcessExit as stop:
            return self._init_failed(ack, stop.reason, None, reported=stop.reported)
        except Exception as exc:
            return self._init_failed(ack, Crash(exc), exc)
        if inspect.isawaitable(result):
            return self._async_init(result, ack)
        return self._init_result(result, ack)

    async def _async_init(self, awaitable: Awaitable[Any], ack: asyncio.Future[Any]) -> None:
        try:
            result = await awaitable
        except ProcessExit as stop:
            self._init_failed(ack, stop.reason, None, reported=stop.reported)
        except Exception as exc:
            self._init_failed(ack, Crash(exc), exc)
        rest = self._init_result(result, ack)
        if rest is not None:
            await rest

    def _init_result(self, result: Any, ack: asyncio.Future[Any]) -> Awaitable[None] | None:
        result = _normalize(result, "oi")
        kind = type(result)
        if kind is Ok:
            self._state = result.state
            _ack(ack, ("ok",))
            self._acking = None
            return self._after(result.after)
        if kind is Ignore:
            return self._init_failed(ack, "ignore", None)
        if kind is Stop:
            return self._init_failed(ack, result.reason, None)
        if kind is tuple and len(result) == 2 and result[0] == "error":
            # OTP 26: start_link returns {error, Reason}; the server exits normal, quietly
            return self._init_failed(ack, result[1], None, exit_reason="normal")
        return self._init_failed(ack, BadReturnValue(result, "init", _display(type(self))), None)

    def _init_failed(
        self, ack: asyncio.Future[Any], reason: Any, exc: BaseException | None,
        *, exit_reason: Any = None, reported: bool | dict[str, Any] = False,
    ) -> NoReturn:
        """End a start that failed: the starter gets ``reason``; the process exits with
        ``exit_reason`` (default ``reason``), a crash if init raised (logged here) or if
        init raised ``ProcessExit(..., reported=True)`` (logged by the init itself)."""
        naming.unregister_own(self._name, self.pid)
        self._unlink_parent()  # the starter learns through start_link's error, not a signal
        if exc is not None:
            _log.error(
                "%s %s failed in init: %s", _display(type(self)), self._who(), reason,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        if reason == "ignore" and exit_reason is None:
            _ack(ack, ("ignore",))
            raise ProcessExit("normal")
        _ack(ack, ("error", reason))
        raise ProcessExit(
            reason if exit_reason is None else exit_reason, reported=reported or exc is not None
        )

    def exited(self, reason: Any) -> None:
        """Killed before init answered (an exit signal, ``kill``): start_link fails now with
        the exit reason, as proc_lib's start does, rather than at its timeout. A subclass
        that defines ``exited`` calls ``super().exited(reason)``."""
        ack = getattr(self, "_acking", None)  # unset if it never started
        if ack is not None and not ack.done():
            _ack(ack, ("error", reason))

    def _unlink_parent(self) -> None:
        if self._parent is not None:
            unlink(self._parent)

    def handle(self, message: Any) -> Awaitable[None] | None:
        if self._timer is not None:
            cancel_timer(self._timer)
            self._timer = None
        kind = type(message)
        if kind is Request:
            payload = message.payload
            if type(payload) is _Sys:
                return self._system(message.reply_to, payload)
            if self._suspended:
                self._defer(message)
                return None
            self._last = message
            if self._trace:
                _log.debug("%s got call %r", self._who(), payload)
            try:
                result = self.handle_call(payload, message.reply_to, self._state)
            except BaseException as exc:
                return self._callback_failed(exc)
            if type(result) not in _RESULTS and inspect.isawaitable(result):
                return self._finish_async(result, message.reply_to)
            return self._apply(result, message.reply_to)
        if self._suspended:
            self._defer(message)
            return None
        self._last = message
        if self._trace:
            _log.debug("%s got %r", self._who(), message)
        if kind is Cast:
            callback: Callable[[Any, Any], Any] = self.handle_cast
            payload = message.request
        elif kind is _IdleTimeout:
            if message.generation != self._generation:
                return None  # a timeout that lost the race with a message
            callback, payload = self.handle_info, "timeout"
        elif kind is Exit and message.pid == self._parent:
            return self._stop(message.reason)  # trapping: the parent asks us to go
        else:
            callback, payload = self.handle_info, message
        try:
            result = callback(payload, self._state)
        except BaseException as exc:
            return self._callback_failed(exc)
        if type(result) not in _RESULTS and inspect.isawaitable(result):
            return self._finish_async(result, None)
        return self._apply(result, None)

    async def _finish_async(
        self, awaitable: Awaitable[Any], from_: ReplyTo | None, callback: str | None = None
    ) -> None:
        try:
            result = await awaitable
        except GeneratorExit:
            raise  # the coroutine is being closed (its task destroyed): no await may follow
        except BaseException as exc:
            rest = self._callback_failed(exc)
        else:
            rest = self._apply(result, from_, callback)
        if rest is not None:
            await rest

    def _apply(
        self, result: Any, from_: ReplyTo | None, callback: str | None = None
    ) -> Awaitable[None] | None:
        """Act on what a callback returned (``from_`` is set for handle_call; ``callback``
        names it when the message does not: handle_continue)."""
        kind = type(result)
        if kind is NoReply:
            self._state = result.state
            return self._after(result.after)
        if kind is Reply and from_ is not None:
            reply(from_, result.value)
            self._state = result.state
            return self._after(result.after)
        if kind is Stop and result.state is not _NOTHING:
            self._state = result.state
            if result.reply is not _NOTHING and from_ is not None:
                return self._stop(result.reason, None, (from_, result.reply))
            return self._stop(result.reason)
        if kind is tuple or kind is str:
            normalized = _normalize(result, "rn" if from_ is not None else "n")
            if normalized is not result:
                return self._apply(normalized, from_, callback)
        if callback is None:
            callback = "handle_call" if from_ is not None else (
                "handle_cast" if type(self._last) is Cast else "handle_info"
            )
        return self._stop(BadReturnValue(result, callback, _display(type(self))))

    def _after(self, after: Any) -> Awaitable[None] | None:
        if after is None:
            return None
        if type(after) is tuple:
            after = _after_of(after)
        if type(after) is Continue:
            return self._continue(after.term)
        if isinstance(after, int | float) and not isinstance(after, bool):
            if self.mailbox_size() == 0:  # a waiting message beats any timeout, even 0
                self._generation += 1
                self._timer = send_after(self.pid, _IdleTimeout(self._generation), after)
            return None
        if after == "hibernate":
            return None
        return self._stop(BadReturnValue(after, "after", _display(type(self))))

    def _continue(self, term: Any) -> Awaitable[None] | None:
        try:
            result = self.handle_continue(term, self._state)
        except BaseException as exc:
            return self._callback_failed(exc)
        if inspect.isawaitable(result):
            return self._finish_async(result, None, "handle_continue")
        return self._apply(result, None, "handle_continue")

    def _callback_failed(self, exc: BaseException) -> Awaitable[None] | None:
        if isinstance(exc, ProcessExit):
            if not is_alive(self.pid):  # killed by a signal it caused: no terminate
                raise exc
            return self._stop(exc.reason, exc)
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit, CancelledError
        return self._stop(Crash(exc), exc)

    def _stop(
        self, reason: Any, exc: BaseException | None = None,
        answer: tuple[ReplyTo, Any] | None = None,
    ) -> Awaitable[None] | None:
        """Run terminate, then send ``answer`` (a ``Stop`` with a reply), report if
        abnormal, and exit with ``reason``. As in OTP the reply follows terminate, and goes
        out even if terminate fails."""
        try:
            result = self.terminate(reason, self._state)
        except Exception as failure:
            reason, exc = Crash(failure), failure
        except BaseException:
            if answer is not None:
                reply(*answer)
            raise
        else:
            if inspect.isawaitable(result):
                return self._finish_terminate(result, reason, exc, answer)
        if answer is not None:
            reply(*answer)
        raise ProcessExit(reason, reported=self._report(reason, exc))

    async def _finish_terminate(
        self, awaitable: Awaitable[Any], reason: Any, exc: BaseException | None,
        answer: tuple[ReplyTo, Any] | None,
    ) -> None:
        try:
            await awaitable
        except Exception as failure:
            reason, exc = Crash(failure), failure
        finally:
            if answer is not None:
                reply(*answer)
        raise ProcessExit(reason, reported=self._report(reason, exc))

    def _report(self, reason: Any, exc: BaseException | None) -> dict[str, Any] | bool:
        """Log the crash report of an abnormal exit; then what the kernel's crash report
        adds (``_runtime/crash.py``), or False if it was no crash."""
        if is_clean_exit(reason):
            return False
        crash = exc if exc is not None and isinstance(exc, Exception) else None
        hint = reason.hint if type(reason) is BadReturnValue else None
        ancestors = ancestors_line(self.pid)
        _log.error(
            "%s %s terminating\n** reason: %s%s\n** last message: %s\n** state: %s%s",
            _display(type(self)), self._who(), _short(reason),
            f"\n** {hint}" if hint else "", _short(self._last), _short(self._state),
            "\n" + ancestors if ancestors else "",
            exc_info=(type(crash), crash, crash.__traceback__) if crash is not None else None,
        )
        return {"behaviour": _behaviour(type(self)), "message": self._last, "state": self._state}

    # -- system requests --------------------------------------------------------------------

    def _defer(self, message: Any) -> None:
        if self._deferred is None:
            self._deferred = deque()
        self._deferred.append(message)

    def _system(self, from_: ReplyTo, request_: _Sys) -> Awaitable[None] | None:
        kind, args = request_.kind, request_.args
        if kind == "get_state":
            _answer(from_, self._state)
        elif kind == "replace_state":
            try:
                self._state = args[0](self._state)
            except Exception as exc:
                reply(from_, _SysFailure(exc))
                return None
            _answer(from_, self._state)
        elif kind == "get_status":
            _answer(from_, {
                "pid": self.pid, "name": self._name, "module": type(self),
                "parent": self._parent, "status": "suspended" if self._suspended else "running",
                "state": self._state, "message_queue_len": self.mailbox_size()
                + (len(self._deferred) if self._deferred else 0),
            })
        elif kind == "suspend":
            self._suspended = True
            reply(from_, None)
        elif kind == "resume":
            self._suspended = False
            reply(from_, None)
            return self._drain()
        elif kind == "change_code":
            if not self._suspended:
                reply(from_, _SysFailure(RuntimeError(
                    "change_code needs a suspended server: call GenServer.suspend first"
                )))
                return None
            try:
                self._upgrade(args[0], args[1])  # what an upgrade runs too
            except Exception as exc:
                reply(from_, _SysFailure(exc))
                return None
            reply(from_, None)
        elif kind == "trace":
            self._trace = args[0]
            reply(from_, None)
        elif kind == "stop":
            return self._stop(args[0])
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


@mark_shared
class _SysFailure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _answer(from_: ReplyTo, value: Any) -> None:
    """Answer a system request with ``value``, or with the error if it cannot be sent (a
    state holding a lock, a socket): a debugging request never takes the server down, as
    ``sys:get_state`` never does."""
    try:
        reply(from_, value)
    except MessageCopyError as exc:
        reply(from_, _SysFailure(exc))


def _behaviour(cls: type[GenServer]) -> str:
    """The behaviour a server class is: its nearest class of beamish's own (GenServer,
    Supervisor, Agent...), or its display name (a channel's process says Channel)."""
    if getattr(cls, "display_name", None):
        return _display(cls)
    for klass in cls.__mro__:
        module = klass.__module__  # a public class says "beamish", a private one its path
        if module == "beamish" or module.startswith("beamish."):
            return getattr(klass, "__qualname__", "GenServer")
    return "GenServer"


def _display(cls: type[GenServer]) -> str:
    """How errors name a server class (a hidden one, by the public name it serves)."""
    name: str = getattr(cls, "display_name", None) or cls.__qualname__
    return name


def _ack(ack: asyncio.Future[Any], value: tuple[Any, ...]) -> None:
    resolve(ack, value)  # the caller of start_link is woken: counted, as the runtime counts


def _short(value: Any, limit: int = 500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _check_timeout(timeout: Any, what: str) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(
            f"{what}: timeout must be a number of seconds >= 0 or None (wait forever), "
            f"got {timeout!r}"
        )


async def _sys_call(server: Any, request_: _Sys, timeout: float | None) -> Any:
    _check_timeout(timeout, f"GenServer.{request_.kind}")
    dest = naming.destination(server)
    call = (f"GenServer.{request_.kind}", server, timeout)
    if dest is None:
        raise CallError("noproc", call)
    try:
        result = await request(dest, request_, timeout=timeout)
    except CallError as failure:
        raise CallError(failure.why, call) from None
    if type(result) is _SysFailure:
        raise result.error
    return result


async def _start(cls: type[GenServer], arg: Any, name: Any, timeout: float | None,
                 *, link: bool) -> Pid:
    naming.check_name(name)
    shown = name  # as the caller wrote it: ("global", n) rather than its via form
    name = naming.normalize(name)
    _check_timeout(timeout, f"{cls.__qualname__}.start_link")
    try:
        server = cls()
    except TypeError as exc:
        raise TypeError(
            f"{cls.__qualname__}() could not be created with no arguments ({exc}); a "
            "GenServer receives its argument in init(self, arg), not in __init__"
        ) from exc
    try:
        parent: Pid | None = _self()
    except NotInProcessError:
        parent, link = None, False
    loop = asyncio.get_running_loop()
    ack: asyncio.Future[Any] = loop.create_future()
    server._boot = (arg, ack, parent, name)
    try:
        pid = spawn_opt(server, link=link, name=name if type(name) is str else None)
    except NameTakenError as taken:
        raise StartError(
            ("already_started", taken.holder),
            f"cannot start {cls.__qualname__} as {shown!r}: already started as {taken.holder!r}",
        ) from None
    try:
        outcome = await _wait_ack(ack, timeout)
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
            reason, f"cannot start {cls.__qualname__} as {shown!r}: already started as "
            f"{reason[1]!r}",
        )
    hint = f": {reason.hint}" if type(reason) is BadReturnValue else ""
    raise StartError(reason, f"{_display(cls)} failed to start: {_short(reason)}{hint}")


async def _wait_ack(ack: asyncio.Future[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await ack
    from beamish._runtime.context import current_runtime

    clock = current_runtime().clock

    def expire() -> None:
        fail(ack, TimeoutError())

    handle = clock.call_later(timeout, expire)
    try:
        return await ack
    finally:
        handle.cancel()

