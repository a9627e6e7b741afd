"""The application controller and the application masters (hidden processes).

How it works. The controller is a GenServer registered as ``"application_controller"``,
started on demand by the first start and ending when the last application stops, so a
runtime with no application has no controller. It traps exits and keeps the applications
in the order they came up. To start one it spawns a *master* linked to itself and answers
the caller only when the master reports back, so it stays free meanwhile, as OTP's does.

The master is a task-shaped process named ``"application:<name>"``. It reads the settings,
runs the application's ``start`` (so the root supervisor's parent is the master), links the
root and reports it. If it exits before reporting, the start failed. Afterwards it waits
for one of two exits: the controller's ``"shutdown"`` (a requested stop: ``prep_stop``, the
root supervisor stopped with ``"shutdown"`` -- its children in reverse order -- then
``stop``, and the master exits ``"normal"``), or the root's own exit (the application
stopped by itself: ``prep_stop`` and ``stop``, then the master exits with the root's reason,
and the application's restart type decides what the controller does).

The runtime's shutdown signals the controller first (it is the root of this tree), and its
``terminate`` stops the applications in reverse start order.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from beamish._errors import (
    ApplicationError,
    NameTakenError,
    ProcessExit,
    SettingsError,
    StartError,
)
from beamish._otp.application.application import Application, ApplicationInfo, Box
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply, Stop
from beamish._runtime.api import exit, link, process_info, send, spawn_opt, trap_exit, wait_exit
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Crash, Exit
from beamish._runtime.pid import Pid
from beamish._runtime.receive import receive
from beamish._runtime.request import ReplyTo, reply

__all__ = ["Controller", "Failure", "describe_reason"]

_log = logging.getLogger("beamish.application")


@mark_shared
class Failure:
    """A controller reply that the client raises."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@mark_shared
class _Started:
    __slots__ = ("master", "supervisor")

    def __init__(self, master: Pid, supervisor: Pid) -> None:
        self.master = master
        self.supervisor = supervisor


class _Entry:
    __slots__ = (
        "app", "master", "name", "restart", "start_type", "status", "supervisor", "waiters",
    )

    def __init__(
        self, app: Application, master: Pid, start_type: Any, restart: str, waiter: ReplyTo
    ) -> None:
        self.app = app
        self.name = app.name
        self.master = master
        self.start_type = start_type
        self.restart = restart
        self.status = "starting"
        self.supervisor: Pid | None = None
        self.waiters = [waiter]

    def info(self) -> ApplicationInfo:
        return ApplicationInfo(
            self.name, self.master, self.supervisor, self.status, self.start_type, self.restart
        )


class Controller(GenServer):
    """The application controller: starts, tracks and stops applications."""

    __slots__ = ("apps",)

    def init(self, _arg: Any) -> Ok:
        trap_exit(True)
        self.apps: dict[str, _Entry] = {}
        return Ok(None)

    async def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        match request:
            case ("start", box, args, start_type, restart, strict):
                return self._start_app(box, args, start_type, restart, strict, from_)
            case ("stop", name):
                entry = self.apps.get(name)
                if entry is None:
                    return self._idle_or(Reply(None, state))
                await self._stop_app(entry)
                return self._idle_or(Reply(True, state))
            case ("stop_all",):
                names = []
                for entry in reversed(list(self.apps.values())):
                    await self._stop_app(entry)
                    names.append(entry.name)
                return Stop("normal", state, reply=names)
            case ("which",):
                return self._idle_or(Reply([e.info() for e in reversed(self.apps.values())], state))
        return self._idle_or(Reply(Failure(ApplicationError(
            ("unknown_call", request), f"the application controller got an unknown call {request!r}"
        )), state))

    def _start_app(
        self, box: Box, args: Any, start_type: Any, restart: str, strict: bool,
        from_: ReplyTo,
    ) -> Any:
        app = box.app
        name = app.name
        entry = self.apps.get(name)
        if entry is not None:
            if strict:
                return Reply(Failure(ApplicationError(
                    ("already_started", name), f"application {name!r} is already {entry.status}",
                )), None)  # (something runs: no need to check for idleness)
            if entry.status == "starting":
                entry.waiters.append(from_)
                return NoReply(None)
            return Reply(False, None)
        if strict:
            for dep in type(app).dependencies:
                running = self.apps.get(dep.name)
                if running is None or running.status != "running":
                    return self._idle_or(Reply(Failure(ApplicationError(
                        ("not_started", dep.name),
                        f"cannot start {name!r}: it depends on {dep.name!r}, which is not "
                        f"running; start that first, or use ensure_all_started("
                        f"{type(app).__qualname__}), which starts dependencies in order",
                    )), None))
        try:
            master = spawn_opt(
                _master, (box, args, start_type, self.pid), link=True, name=f"application:{name}"
            )
        except NameTakenError as taken:
            return self._idle_or(Reply(Failure(ApplicationError(
                ("name_taken", taken.name),
                f"cannot start {name!r}: the process name {taken.name!r} that its master "
                f"takes is registered to {taken.holder!r}",
            )), None))
        self.apps[name] = _Entry(app, master, start_type, restart, from_)
        return NoReply(None)

    async def _stop_app(self, entry: _Entry) -> None:
        self.apps.pop(entry.name, None)
        exited = wait_exit(entry.master)
        exit(entry.master, "shutdown")
        await exited
        for waiter in entry.waiters:  # still starting: those waiting learn it was stopped
            reply(waiter, Failure(StartError(
                "stopped", f"application {entry.name!r} was stopped while it was starting"
            )))
        _log.info("application %r stopped", entry.name)

    def _idle_or(self, result: Reply | NoReply) -> Any:
        """Exit once no application is left (a runtime without applications has no controller).

        A call that arrives meanwhile fails with "normal"; the client then starts a new one.
        """
        if self.apps:
            return result
        if type(result) is Reply:
            return Stop("normal", None, reply=result.value)
        return Stop("normal", None)

    def handle_info(self, message: Any, state: Any) -> Any:
        if type(message) is _Started:
            entry = self._by_master(message.master)
            if entry is not None and entry.status == "starting":
                entry.status = "running"
                entry.supervisor = message.supervisor
                del self.apps[entry.name]  # the start order is the order they came up
                self.apps[entry.name] = entry
                waiters, entry.waiters = entry.waiters, []
                for i, waiter in enumerate(waiters):
                    reply(waiter, i == 0)
                start_type = entry.start_type
                _log.info(
                    "application %r started (root supervisor %r%s)", entry.name,
                    message.supervisor, "" if start_type == "normal" else f", {start_type!r}",
                )
            return NoReply(state)
        if type(message) is Exit:
            entry = self._by_master(message.pid)
            if entry is not None:
                return self._app_exited(entry, message.reason)
            return NoReply(state)
        return super().handle_info(message, state)

    def _by_master(self, pid: Any) -> _Entry | None:
        for entry in self.apps.values():
            if entry.master == pid:
                return entry
        return None

    def _app_exited(self, entry: _Entry, reason: Any) -> Any:
        del self.apps[entry.name]
        if entry.status == "starting":
            error = StartError(
                reason, f"application {entry.name!r} failed to start: {describe_reason(reason)}"
            )
            crash = reason.exception if type(reason) is Crash else None
            if crash is not None:
                error.__cause__ = crash
            _log.error(
                "application %r failed to start: %s", entry.name, describe_reason(reason),
                exc_info=_exc_info(crash),
            )
            for waiter in entry.waiters:
                reply(waiter, Failure(error))
            return self._idle_or(NoReply(None))
        terminates = entry.restart == "permanent" or (
            entry.restart == "transient" and reason != "normal"
        )
        if terminates:
            _log.error(
                "application %r (%s) exited with reason %s; stopping every application",
                entry.name, entry.restart, describe_reason(reason),
            )
            return Stop(("shutdown", ("application_terminated", entry.name, reason)), None)
        _log.log(
            logging.INFO if reason == "normal" else logging.ERROR,
            "application %r (%s) exited with reason %s", entry.name, entry.restart,
            describe_reason(reason),
        )
        return self._idle_or(NoReply(None))

    async def terminate(self, reason: Any, state: Any) -> None:
        for entry in reversed(list(self.apps.values())):
            await self._stop_app(entry)


def _exc_info(exc: BaseException | None) -> Any:
    if exc is None or exc.__traceback__ is None or isinstance(exc, SettingsError):
        return None
    return (type(exc), exc, exc.__traceback__)


def describe_reason(reason: Any) -> str:
    """An exit reason for people: a crash as ``Type: message``, a failed child by its id."""
    if type(reason) is Crash:
        exc = reason.exception
        return f"{type(exc).__name__}: {exc}"
    if (
        type(reason) is tuple and len(reason) == 2 and reason[0] == "shutdown"
        and type(reason[1]) is tuple and len(reason[1]) == 3
        and reason[1][0] == "failed_to_start_child"
    ):
        _, child, why = reason[1]
        return f"child {_child_name(child)} failed to start: {describe_reason(why)}"
    return repr(reason)


def _child_name(child: Any) -> str:
    return child.__qualname__ if isinstance(child, type) else repr(child)


# -- the master ---------------------------------------------------------------------------------


async def _master(box: Box, args: Any, start_type: Any, controller: Pid) -> None:
    app = box.app
    trap_exit(True)
    try:
        app.load_settings()
        result: Any = app.start(start_type, args)
        if inspect.isawaitable(result):
            result = await result
    except StartError as failure:
        raise ProcessExit(failure.reason) from None
    except Exception as exc:  # the controller logs it: a crash, reported once
        raise ProcessExit(Crash(exc), reported=True) from None
    root, state = _root_of(app, result)
    link(root)
    send(controller, _Started(_self(), root))
    while True:
        message = await receive(Exit)
        if message.pid == root:  # the tree stopped by itself
            state = await _callback(app, "prep_stop", state)
            await _callback(app, "stop", state)
            raise ProcessExit(message.reason)
        if message.pid == controller or message.pid is None:  # asked to stop
            state = await _callback(app, "prep_stop", state)
            exited = wait_exit(root)
            exit(root, "shutdown")
            await exited
            await _callback(app, "stop", state)
            return
        # an exit from another process the application linked to: not ours to act on


def _root_of(app: Application, result: Any) -> tuple[Pid, Any]:
    value = result
    if type(value) is tuple and len(value) in (2, 3) and value[0] == "ok":
        value = value[1] if len(value) == 2 else value[1:]
    root, state = (value, None) if type(value) is Pid else (
        value if type(value) is tuple and len(value) == 2 and type(value[0]) is Pid
        else (None, None)
    )
    owner = type(app).__qualname__
    if root is None:
        raise ProcessExit(Crash(TypeError(
            f"{owner}.start returned {result!r}; it must return the root supervisor's pid "
            "or (pid, state)"
        )), reported=True)
    info = process_info(root)
    if info is None:
        raise ProcessExit(Crash(TypeError(
            f"{owner}.start returned {root!r}, which is not alive"
        )), reported=True)
    if info.parent != _self():
        raise ProcessExit(Crash(TypeError(
            f"{owner}.start returned {root!r}, which it did not start; start the root "
            "supervisor inside start with start_link, so that it stops with the application"
        )), reported=True)
    return root, state


async def _callback(app: Application, name: str, state: Any) -> Any:
    """Run prep_stop or stop; a failure is logged and the state passes unchanged."""
    try:
        result = getattr(app, name)(state)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        _log.exception("application %r: %s raised", app.name, name)
        return state
    return result if name == "prep_stop" else state
