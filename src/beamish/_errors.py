"""The exception tree of beamish.

Errors are real exceptions that state the broken rule, show what was received and, where
there is one, suggest the fix. Each also derives from the builtin category a Python user
would reach for (``TypeError`` for a wrong kind of argument, ``LookupError`` for a missing
name), so ``except TypeError`` works as expected::

    BaseException
    ├── ProcessExit                 the current process ends with ``reason`` (Elixir's exit/1)
    │   └── CallError               a call to a server failed; the caller exits with the reason
    └── Exception
        └── BeamishError
            ├── NoRuntimeError          (RuntimeError)  no runtime runs in this context
            ├── NotInProcessError       (RuntimeError)  a process-only call outside a process
            ├── SystemLimitError        (RuntimeError)  the process limit is reached
            ├── InvalidTargetError      (TypeError)     spawn() got something that cannot run
            ├── InvalidNameError        (TypeError)     a name of the wrong type
            ├── NameTakenError          (ValueError)    a name or a process already registered
            ├── NoProcessError          (LookupError)   the process is not alive
            │   └── NotRegisteredError                  no process under that name
            ├── MessageCopyError        (TypeError)     a message that cannot be isolated
            ├── NotOwnerError           (ValueError)    a task queried by a process not its owner
            ├── StartError              (RuntimeError)  a process could not be started
            │   └── StartIgnored                        its init asked to be ignored
            ├── SupervisorError         (RuntimeError)  a supervisor refused an operation
            ├── RegistryError           (RuntimeError)  a registry refused an operation
            ├── TrackerError            (RuntimeError)  a presence tracker refused an operation
            ├── ApplicationError        (RuntimeError)  the application controller refused
            ├── SettingsError           (ValueError)    environment variables that cannot be read
            ├── PoolError               (RuntimeError)  a database pool could not serve the caller
            │   ├── PoolTimeout         (TimeoutError)  no connection within the queue timeout
            │   └── PoolOverloaded                      the waiting queue was full: shed at once
            ├── ConnectionLost          (ConnectionError) the database connection died under a query
            └── TransactionError        (RuntimeError)  a transaction used against its rules

``ProcessExit`` derives from ``BaseException`` on purpose: like ``asyncio.CancelledError``
it is a control-flow signal, and a generic ``except Exception`` must not swallow it.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = [
    "BeamishError",
    "InvalidNameError",
    "InvalidTargetError",
    "MessageCopyError",
    "NameTakenError",
    "NoProcessError",
    "NoRuntimeError",
    "NotInProcessError",
    "NotOwnerError",
    "NotRegisteredError",
    "CallError",
    "ProcessExit",
    "RegistryError",
    "ApplicationError",
    "SettingsError",
    "StartError",
    "StartIgnored",
    "SupervisorError",
    "SystemLimitError",
    "ConnectionLost",
    "PoolError",
    "PoolOverloaded",
    "PoolTimeout",
    "TransactionError",
]


class ProcessExit(BaseException):
    """Ends the current process with ``reason``.

    ``raise ProcessExit("normal")`` stops the calling process normally; any other reason
    is an abnormal exit that linked processes see. The runtime also raises it inside a
    process that an exit signal has just killed, so that the process's Python frames
    unwind. Do not catch it unless you re-raise it.

    ``reported=True`` says the exit is a crash that the process has already reported (a
    behaviour such as GenServer logs its own crash report): the runtime counts it in
    ``statistics().crashed`` and emits the ``beamish.process.crash`` telemetry event,
    without logging it a second time. ``reported`` may be a dict of what the behaviour
    knows for the event's crash report: ``behaviour``, ``message``, ``state``. An
    exception that escapes a process is a crash too, which the runtime logs itself.
    """

    def __init__(self, reason: Any, *, reported: bool | dict[str, Any] = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reported = reported

    def __str__(self) -> str:
        return f"process exited with reason {self.reason!r}"


class BeamishError(Exception):
    """Base class of the errors beamish raises for misuse and bad input."""


def not_awaited(value: Any, what: str | None, wanted: str) -> str | None:
    """The message for an awaitable given (to ``what``) where ``wanted`` (its result, most
    often a pid) was expected: "did you forget await?". None if ``value`` is not awaitable.

    A coroutine is closed: it cannot be used any more, and closing it spares Python's own
    "coroutine ... was never awaited" warning on top of this error.
    """
    if not inspect.isawaitable(value):
        return None
    if inspect.iscoroutine(value):
        name = value.__qualname__.rpartition("<locals>.")[2]
        frame = value.cr_frame
        owner = frame.f_locals.get("cls") if frame is not None else None
        if isinstance(owner, type):  # a classmethod such as start_link: name the class
            name = f"{owner.__qualname__}.{value.__name__}"
        value.close()
        shown = f"the coroutine {name}(...)"
        example = f"`pid = await {name}(...)`"
    else:
        shown = f"an awaitable ({type(value).__name__})"
        example = "`pid = await ...`"
    where = f"{what} got" if what else "got"
    return (
        f"{where} {shown} where {wanted} was expected: did you forget await? Write "
        f"{example}, then pass the pid (or the name) on."
    )


class NoRuntimeError(BeamishError, RuntimeError):
    """A beamish call was made where no runtime is running."""


class NotInProcessError(BeamishError, RuntimeError):
    """A call that only a process can make was made outside any process."""


class SystemLimitError(BeamishError, RuntimeError):
    """A configured system limit (such as the process limit) was reached."""


class InvalidTargetError(BeamishError, TypeError):
    """spawn() was given something that cannot be the body of a process."""


class InvalidNameError(BeamishError, TypeError):
    """A process name of the wrong type or form."""


class NameTakenError(BeamishError, ValueError):
    """The name, or the process, is already registered."""

    def __init__(self, message: str, *, name: Any = None, holder: Any = None) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder


class NoProcessError(BeamishError, LookupError):
    """The process an operation needs is not alive."""


class NotRegisteredError(NoProcessError):
    """No process is registered under the given name."""

    def __init__(self, message: str, *, name: Any = None) -> None:
        super().__init__(message)
        self.name = name


class MessageCopyError(BeamishError, TypeError):
    """A mutable message could not be copied for isolation."""


class CallError(ProcessExit):
    """A call to a server failed: the caller exits with ``(why, call)``, as in OTP.

    ``why`` is ``"timeout"``, ``"noproc"``, ``"calling_self"`` or the reason the server
    exited with; ``call`` names the call: ``("GenServer.call", server, request, timeout)``.
    Uncaught, it ends the calling process with that reason (so its links learn of it);
    catch it with ``except CallError`` to handle the failure. A reason that can explain
    itself (it has a ``hint``, as a server's bad return value has) is explained in the
    message.
    """

    def __init__(self, why: Any, call: tuple[Any, ...]) -> None:
        super().__init__((why, call))
        self.why = why
        self.call = call

    def __str__(self) -> str:
        what, server, *rest = self.call
        args = ", ".join(repr(a) for a in [server, *rest])
        why = self.why
        if why == "timeout":
            text = f"no reply within {rest[-1]}s" if rest else "timed out"
        elif why == "noproc":
            text = "no process is alive under that name or pid"
        elif why == "calling_self":
            text = "a process cannot call itself (it would wait for its own reply forever)"
        else:
            exited = "the server" if what.startswith(("GenServer.", "Agent.")) else "the process"
            text = f"{exited} exited with reason {why!r}"
            hint = getattr(why, "hint", None)  # a reason that can explain itself
            if type(hint) is str:
                text += f": {hint}"
        return f"{what}({args}) failed: {text}"


class StartError(BeamishError, RuntimeError):
    """A process could not be started; ``reason`` is why, in OTP's terms.

    Reasons: ``("already_started", pid)``, ``"timeout"`` (init did not finish in time),
    ``("bad_return_value", value)``, a ``Crash`` from init, or the reason init gave with
    ``Stop(reason)`` or ``("error", reason)``. For supervisors:
    ``("shutdown", ("failed_to_start_child", id, r))``.
    """

    def __init__(self, reason: Any, message: str | None = None) -> None:
        super().__init__(message or f"start failed: {reason!r}")
        self.reason = reason


class StartIgnored(StartError):
    """init returned ``Ignore()``: nothing was started (supervisors keep the child spec)."""

    def __init__(self) -> None:
        super().__init__("ignore", "init returned Ignore(): no process was started")


class SupervisorError(BeamishError, RuntimeError):
    """A supervisor refused an operation; ``reason`` says why, in OTP's terms.

    Reasons: ``"not_found"``, ``"running"``, ``"restarting"``, ``"already_present"``,
    ``("already_started", pid)``, ``"max_children"``; for a spec it cannot use,
    ``"missing_id"``, ``"missing_start"``, ``("invalid_mfa", start)`` and the other
    ``("invalid_...", value)`` reasons, ``("invalid_child_spec", spec)``, and
    ``("start_spec", reason)`` among a supervisor's initial children.
    """

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RegistryError(BeamishError, RuntimeError):
    """A registry refused an operation; ``reason`` says why, in OTP's terms.

    Reasons: ``("already_registered", pid)`` (a unique key is held by a live process),
    ``("unknown_registry", name)`` (no registry runs under that name),
    ``("not_supported", operation, kind)`` (``update_value`` or a via name on a duplicate
    registry), ``("reentrant_lock", key)`` (the caller already holds that lock).
    """

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ApplicationError(BeamishError, RuntimeError):
    """The application controller refused an operation; ``reason`` says why, in OTP's terms.

    Reasons: ``("already_started", name)``, ``("not_started", name)`` (stopping an
    application that does not run, or starting one whose dependency does not run),
    ``("stopping", name)``, ``("circular_dependencies", names)``,
    ``("invalid_application", value)``.
    """

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SettingsError(BeamishError, ValueError):
    """Settings could not be read from the environment.

    ``errors`` lists ``(variable, problem)`` pairs: every variable that is required but not
    set, or that cannot be read as the type its setting declares.
    """

    def __init__(self, owner: str, errors: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {variable}: {problem}" for variable, problem in errors)
        super().__init__(f"invalid settings for {owner} (from the environment):\n{lines}")
        self.owner = owner
        self.errors = tuple(errors)


class NotOwnerError(BeamishError, ValueError):
    """A task was awaited, yielded, shut down or ignored by a process that does not own it.

    Only the process that started a task (its owner) receives its reply and its ``Down``;
    ``task`` is the task and ``caller`` the process that asked.
    """

    def __init__(self, message: str, *, task: Any = None, caller: Any = None) -> None:
        super().__init__(message)
        self.task = task
        self.caller = caller


# -- the data layer (beamish.data) ----------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class PoolError(BeamishError, RuntimeError):
    """A database pool could not serve the caller; ``pool`` is its name.

    Raised as such when no pool of that name runs, or when the pool stopped while the caller
    waited for a connection; its subclasses say the pool was too busy.
    """

    def __init__(self, message: str, *, pool: str | None = None) -> None:
        super().__init__(message)
        self.pool = pool


class PoolTimeout(PoolError, TimeoutError):
    """No connection of the pool became free within the caller's queue timeout.

    Carries what the pool looked like when the caller gave up: ``size`` connections, of
    which ``connected`` were open and ``in_use`` checked out, ``waiting`` callers queued
    (this one included), and the last error met while connecting, if any.
    """

    def __init__(
        self, *, pool: str, size: int, waited: float, in_use: int, connected: int,
        waiting: int, last_error: str | None = None,
    ) -> None:
        lines = [
            f"no connection of pool {pool!r} (size {size}) became free within "
            f"{_seconds(waited)}: {in_use} checked out, {connected} of {size} connected, "
            f"{waiting} caller(s) waiting."
        ]
        if connected < size and last_error is not None:
            lines.append(f"The last attempt to connect failed with: {last_error}.")
        if connected == 0:
            lines.append(
                "No connection is open: check that the database server runs and accepts "
                "the pool's connections; the pool keeps trying to connect, with backoff."
            )
        else:
            lines.append(
                "Connections are held too long or the pool is too small: keep transactions "
                "and checkout blocks short, raise size=, or give callers a longer "
                "queue_timeout=."
            )
        super().__init__(" ".join(lines), pool=pool)
        self.size = size
        self.waited = waited
        self.in_use = in_use
        self.connected = connected
        self.waiting = waiting
        self.last_error = last_error


class PoolOverloaded(PoolError):
    """The pool's waiting queue was full, so the caller was turned away at once.

    Shedding load this way keeps an overloaded service answering (with errors) instead of
    piling up callers that would all time out; ``max_waiting`` sets the queue's length.
    """

    def __init__(self, *, pool: str, size: int, waiting: int, max_waiting: int) -> None:
        super().__init__(
            f"pool {pool!r} is overloaded: all {size} connection(s) are in use and "
            f"{waiting} caller(s) already wait (max_waiting={max_waiting}), so this caller "
            "was turned away at once instead of queueing. Answer the request with an error "
            "(e.g. HTTP 503) and let the client retry, or raise size= / max_waiting= if the "
            "database can take more.",
            pool=pool,
        )
        self.size = size
        self.waiting = waiting
        self.max_waiting = max_waiting


class ConnectionLost(BeamishError, ConnectionError):
    """The database connection died under a query: the server closed it, or it broke.

    The statement may or may not have run; an open transaction was not committed. The
    connection's process exits and its supervisor opens a new one, so retrying later (a
    new transaction, from the start) is safe. ``__cause__`` is the driver's error.
    """

    def __init__(self, *, pool: str, reason: str) -> None:
        super().__init__(
            f"lost the connection of pool {pool!r}: {reason}. The statement may not have "
            "run and no open transaction was committed; the pool replaces the connection, "
            "so the operation can be retried from its start."
        )
        self.pool = pool
        self.reason = reason


class TransactionError(BeamishError, RuntimeError):
    """A transaction or a checked-out connection was used against its rules.

    For example: a nested block was cancelled (so the whole transaction was rolled back)
    and the outer block went on, or a connection was used after its block ended.
    """


class TrackerError(BeamishError, RuntimeError):
    """A tracker refused an operation; ``reason`` says why, in Phoenix's terms.

    Reasons: ``("already_tracked", pid, topic, key)`` (track it once; ``update`` changes its
    meta), ``"nopresence"`` (``update`` of a presence that is not tracked),
    ``("unknown_tracker", name)`` (no tracker runs under that name).
    """

    def __init__(self, reason: Any, message: str) -> None:
        super().__init__(message)
        self.reason = reason
