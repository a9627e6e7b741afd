"""Task: run one function in a process of its own and collect its result, as Elixir's Task.

How it works. ``Task.async_`` spawns the task, monitors it (the monitor's ref is the task's
ref) and links it to the caller, its *owner*. The task runs the function, delivers
``(ref, result)`` to the owner's mailbox and exits normally. The owner takes the reply, or
the ``Down`` of a task that failed, with a selective ``receive``; because the reply is an
ordinary message, a GenServer can take it in ``handle_info`` as well.

No late replies. The task sends through a *reply alias*: the one-reply form of the BEAM's
process aliases (EEP 53), an object holding the owner, the ref and an ``active`` flag. The
task sends only while the alias is active; an owner that gives up (a timeout, ``ignore``,
``shutdown``) deactivates it and removes the monitor with its queued ``Down`` in the same
synchronous step. The processes of a node share one thread and ``send`` delivers at once, so
no reply is ever "in flight" between the two: once ``await_`` has timed out, nothing about
that ref reaches the owner's mailbox again.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from beamish._errors import (
    CallError,
    InvalidTargetError,
    NotInProcessError,
    NotOwnerError,
    ProcessExit,
)
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._otp.task.stream import TaskStream
from beamish._runtime.api import (
    demonitor,
    exit,
    is_alive,
    link,
    make_ref,
    monitor,
    monotonic,
    send,
    spawn,
    spawn_link,
    spawn_monitor,
    unlink,
)
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Crash, Down, is_clean_exit
from beamish._runtime.patterns import Matcher
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.receive import receive, receive_nowait

if TYPE_CHECKING:
    from beamish._otp.task.supervisor import TaskSupervisor

__all__ = ["Task"]

_log = logging.getLogger("beamish.task")
DEFAULT_CONCURRENCY = os.cpu_count() or 1
_TIMEOUT: Any = object()
_ON_TIMEOUT = ("nothing", "ignore", "kill_task")


@mark_shared
class ReplyAlias:
    """Where a task's result goes: the owner's mailbox, while the owner still wants it.

    Shared by reference between the owner and the task (both run on the node's one thread).
    """

    __slots__ = ("active", "owner", "ref")

    def __init__(self, owner: Pid, ref: Ref | None) -> None:
        self.owner = owner
        self.ref = ref
        self.active = True

    def deliver(self, value: Any) -> None:
        """Send ``(ref, value)`` to the owner, once, unless the owner gave up."""
        if self.active:
            self.active = False
            send(self.owner, (self.ref, value))

    def __repr__(self) -> str:
        return f"ReplyAlias({self.owner!r}, {'active' if self.active else 'inactive'})"


@dataclass(frozen=True, slots=True)
class Task:
    """A running task: Elixir's ``%Task{}`` and the ``Task`` module in one class.

    ``pid`` is the task process (None for ``Task.completed``), ``ref`` the monitor ref that
    tags its reply ``(ref, result)`` and its ``Down``, ``owner`` the process that started it
    and the only one that may await it. A task is awaitable: ``await task`` is
    ``await Task.await_(task)``::

        task = Task.async_(fetch, url)      # runs concurrently, linked to the caller
        other_work()
        page = await task                   # or: await Task.await_(task, timeout=10)

    The names that clash with Python keywords take a trailing underscore (PEP 8):
    ``async_``, ``await_``, ``yield_``.
    """

    pid: Pid | None
    ref: Ref
    owner: Pid
    _alias: ReplyAlias = field(repr=False, compare=False)

    Supervisor: ClassVar[type[TaskSupervisor]]
    """``Task.Supervisor``: start tasks under a supervisor (see ``TaskSupervisor``)."""

    def __await__(self) -> Generator[Any, None, Any]:
        return Task.await_(self).__await__()

    # -- starting ---------------------------------------------------------------------------

    @staticmethod
    def async_(fn: Callable[..., Any], *args: Any) -> Task:
        """Run ``fn(*args)`` in a new process, linked to the caller and monitored by it.

        ``fn`` may be a plain or an ``async`` function. The task sends ``(task.ref,
        result)`` to the caller and exits ``"normal"``; collect the result with ``await``,
        ``Task.await_`` or ``Task.yield_``, or take the message in ``handle_info``. If the
        task fails, the caller exits with the same reason (it is linked), unless it traps
        exits.
        """
        check_function(fn, "Task.async_")
        owner = caller("Task.async_")
        alias = ReplyAlias(owner, None)
        pid, ref = spawn_monitor(run_task, alias, fn, args)
        link(pid)
        alias.ref = ref  # set before the task runs: a new process waits for the next turn
        return Task(pid, ref, owner, alias)

    @staticmethod
    def completed(value: Any) -> Task:
        """A task that has already finished with ``value``, with no process behind it.

        Handy where a result is sometimes known at once (a cache hit) and sometimes needs a
        task: the caller awaits both the same way.
        """
        owner = caller("Task.completed")
        ref = make_ref()
        alias = ReplyAlias(owner, ref)
        alias.deliver(value)
        return Task(None, ref, owner, alias)

    @staticmethod
    async def start(fn: Callable[..., Any], *args: Any) -> Pid:
        """Run ``fn(*args)`` in a new process for its side effects; returns its pid.

        Nothing is sent back and nothing is linked. Use it in a supervision tree through
        ``Task.child_spec``, or use ``Task.Supervisor.start_child`` for tasks started on demand.
        """
        check_function(fn, "Task.start")
        return spawn(fn, *args)

    @staticmethod
    async def start_link(fn: Callable[..., Any], *args: Any) -> Pid:
        """Like ``start``, linked to the caller: the start function of ``Task.child_spec``."""
        check_function(fn, "Task.start_link")
        caller("Task.start_link")
        return spawn_link(fn, *args)

    @staticmethod
    def child_spec(arg: Any) -> ChildSpec:
        """How a supervisor runs a task: ``(Task, fn)`` or ``(Task, (fn, arg1, ...))``.

        The task is started with ``Task.start_link`` and is ``"temporary"``: it is never
        restarted (override with ``Supervisor.child_spec(..., restart="transient")`` for a
        task that must finish its job).
        """
        fn, args = function_and_args(arg, "Task.child_spec")
        return ChildSpec(
            id=Task, start=(Task.start_link, (fn, *args)), restart="temporary", modules=(Task,)
        )

    # -- collecting -------------------------------------------------------------------------

    @staticmethod
    async def await_(task: Task, timeout: float | None = 5.0) -> Any:
        """Wait for the task's result and return it.

        Raises ``CallError(why, ("Task.await", task, timeout))``, which ends the caller with
        that reason unless caught: ``why`` is ``"timeout"`` when no reply came in ``timeout``
        seconds (``None``: wait forever) — the monitor is removed and a later reply is
        dropped, so await a task once —, or the task's exit reason if it died first.
        """
        check_owner(task, "Task.await_")
        check_timeout(timeout, "Task.await_")
        message = await receive(from_task(task.ref), timeout=timeout, default=_TIMEOUT)
        if message is _TIMEOUT:
            abandon(task)
            raise CallError("timeout", ("Task.await", task, timeout))
        if type(message) is Down:
            raise CallError(message.reason, ("Task.await", task, timeout))
        demonitor(task.ref, flush=True)
        return message[1]

    @staticmethod
    async def yield_(task: Task, timeout: float | None = 5.0) -> tuple[str, Any] | None:
        """Wait up to ``timeout`` seconds: ``("ok", result)``, ``("exit", reason)`` or None.

        None means nothing arrived in time: the task is still monitored, so ``yield_`` can
        be called again, or the task shut down (``await Task.yield_(t) or await
        Task.shutdown(t)``). ``("exit", reason)`` comes only if the task died without
        killing the caller: it exited ``"normal"``, is not linked, or the caller traps exits.
        """
        check_owner(task, "Task.yield_")
        check_timeout(timeout, "Task.yield_")
        message = await receive(from_task(task.ref), timeout=timeout, default=_TIMEOUT)
        if message is _TIMEOUT:
            return None
        if type(message) is Down:
            return ("exit", message.reason)
        demonitor(task.ref, flush=True)
        return ("ok", message[1])

    @staticmethod
    async def await_many(tasks: Sequence[Task], timeout: float | None = 5.0) -> list[Any]:
        """Await several tasks within one ``timeout``; the results in the order of ``tasks``.

        Raises ``CallError(why, ("Task.await_many", tasks, timeout))`` as soon as one task
        dies or the time runs out; the tasks still pending are then no longer monitored and
        their late replies are dropped.
        """
        tasks = tuple(tasks)
        for task in tasks:
            check_owner(task, "Task.await_many")
        check_timeout(timeout, "Task.await_many")
        pending = {task.ref: i for i, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        deadline = None if timeout is None else monotonic() + timeout
        call = ("Task.await_many", tasks, timeout)
        while pending:
            left = None if deadline is None else max(0.0, deadline - monotonic())
            message = await receive(from_tasks(pending), timeout=left, default=_TIMEOUT)
            if message is _TIMEOUT or type(message) is Down:
                for ref in pending:
                    abandon(tasks[pending[ref]])
                raise CallError("timeout" if message is _TIMEOUT else message.reason, call)
            ref, value = message
            demonitor(ref, flush=True)
            results[pending.pop(ref)] = value
        return results

    @staticmethod
    async def yield_many(
        tasks: Sequence[Task], timeout: float | None = 5.0, *, limit: int | None = None,
        on_timeout: str = "nothing",
    ) -> list[tuple[Task, tuple[str, Any] | None]]:
        """Wait for several tasks within one ``timeout``; ``(task, result)`` in input order.

        Each result is as ``yield_`` gives it: ``("ok", value)``, ``("exit", reason)`` or
        None. ``limit`` returns as soon as that many tasks have answered (the others are
        left as None and ``on_timeout`` does not apply). ``on_timeout`` says what happens
        to the tasks that did not answer in time: ``"nothing"`` (they keep running and stay
        monitored), ``"ignore"`` (``Task.ignore``: they keep running, unwatched) or
        ``"kill_task"`` (``Task.shutdown(task, "brutal_kill")``).
        """
        tasks = tuple(tasks)
        for task in tasks:
            check_owner(task, "Task.yield_many")
        check_timeout(timeout, "Task.yield_many")
        if on_timeout not in _ON_TIMEOUT:
            raise ValueError(
                f"Task.yield_many: on_timeout must be one of {', '.join(map(repr, _ON_TIMEOUT))}"
                f", got {on_timeout!r}"
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0
        ):
            raise ValueError(f"Task.yield_many: limit must be an int > 0 or None, got {limit!r}")
        wanted = len(tasks) if limit is None else min(limit, len(tasks))
        pending = {task.ref: i for i, task in enumerate(tasks)}
        results: list[tuple[str, Any] | None] = [None] * len(tasks)
        deadline = None if timeout is None else monotonic() + timeout
        answered = 0
        while answered < wanted:
            left = None if deadline is None else max(0.0, deadline - monotonic())
            message = await receive(from_tasks(pending), timeout=left, default=_TIMEOUT)
            if message is _TIMEOUT:
                break
            if type(message) is Down:
                results[pending.pop(message.ref)] = ("exit", message.reason)
            else:
                demonitor(message[0], flush=True)
                results[pending.pop(message[0])] = ("ok", message[1])
            answered += 1
        if answered < wanted and on_timeout != "nothing":
            for i in pending.values():
                if on_timeout == "ignore":
                    results[i] = Task.ignore(tasks[i])
                else:
                    results[i] = await Task.shutdown(tasks[i], "brutal_kill")
        return list(zip(tasks, results, strict=True))

    # -- stopping ---------------------------------------------------------------------------

    @staticmethod
    async def shutdown(task: Task, timeout: float | str | None = 5.0) -> tuple[str, Any] | None:
        """Unlink and stop the task, then look for its reply.

        ``timeout`` seconds to exit after the ``"shutdown"`` signal before it is killed
        (``None``: wait forever), or ``"brutal_kill"`` to kill it at once. Returns
        ``("ok", result)`` if the reply arrived meanwhile (even if the task had exited too),
        None if it stopped as this call asked (``"shutdown"``, or ``"killed"`` with
        ``"brutal_kill"``), ``("exit", "killed")`` if it outlived its shutdown time and had
        to be killed, ``("exit", reason)`` if the task had died for another reason, and
        ``("exit", "noproc")`` if its result or ``Down`` was already taken (its outcome
        cannot be known any more). A task with no process (``Task.completed``) is not shut
        down: its result is looked up, as ``Task.ignore`` does.
        """
        check_owner(task, "Task.shutdown")
        if timeout != "brutal_kill":
            check_timeout(timeout, "Task.shutdown", extra=" or 'brutal_kill'")
        pid = task.pid
        if pid is None:
            return Task.ignore(task)
        mon = monitor(pid)
        unlink(pid)
        brutal = timeout == "brutal_kill"
        exit(pid, "kill" if brutal else "shutdown")
        # what this call asked for; a kill after the timeout was not asked for (Elixir's
        # :timeout_kill), so it is told as ("exit", "killed")
        ours = "killed" if brutal else "shutdown"
        wait = None if brutal else timeout
        down = await receive(down_of(mon), timeout=wait, default=_TIMEOUT)  # type: ignore[arg-type]
        if down is _TIMEOUT:
            exit(pid, "kill")
            down = await receive(down_of(mon))
        task._alias.active = False
        if down.reason == "noproc":
            # the task was dead before the signal: its own Down, if still queued, says why
            own = take_now(down_of(task.ref), "Task.shutdown")
            if own is None:
                demonitor(task.ref, flush=True)
                outcome: tuple[str, Any] | None = ("exit", "noproc")
            else:
                outcome = None if own.reason == ours else ("exit", own.reason)
        else:
            demonitor(task.ref, flush=True)
            outcome = None if down.reason == ours else ("exit", down.reason)
        reply = take_now(reply_of(task.ref), "Task.shutdown")
        return ("ok", reply[1]) if reply is not None else outcome

    @staticmethod
    def ignore(task: Task) -> tuple[str, Any] | None:
        """Stop watching the task and let it run on, unlinked; its later reply is dropped.

        Returns what had already arrived: ``("ok", result)``, ``("exit", reason)``, or None
        if the task is still running.
        """
        check_owner(task, "Task.ignore")
        message = take_now(from_task(task.ref), "Task.ignore")
        if task.pid is not None:
            unlink(task.pid)
        if message is None:
            abandon(task)
            return None
        if type(message) is Down:
            return ("exit", message.reason)
        demonitor(task.ref, flush=True)
        return ("ok", message[1])

    # -- streams ----------------------------------------------------------------------------

    @staticmethod
    def async_stream(
        iterable: Iterable[Any] | Any, fn: Callable[[Any], Any], *,
        max_concurrency: int = DEFAULT_CONCURRENCY, ordered: bool = True,
        timeout: float | None = 5.0, on_timeout: str = "exit", zip_input_on_exit: bool = False,
    ) -> TaskStream:
        """Run ``fn(item)`` for each item of ``iterable`` in concurrent tasks, lazily.

        Returns an async iterator of ``("ok", result)`` or ``("exit", reason)``, one per
        item, in input order (``ordered=False``: as they finish). At most
        ``max_concurrency`` tasks run at once, and input is pulled only as they finish, so
        an endless input is fine. Each task has ``timeout`` seconds (None: no limit); when
        it runs out, ``on_timeout="exit"`` kills the tasks and raises ``CallError("timeout",
        ("Task.async_stream", timeout))`` from the iteration, ``"kill_task"`` kills that task
        and yields ``("exit", "timeout")``. ``zip_input_on_exit`` turns exits into
        ``("exit", (item, reason))``. ``iterable`` may be async.

        The tasks are linked to the iterating process through a coordinator process: a
        failing task ends the iteration's process, unless it traps exits, in which case the
        failure is yielded as ``("exit", reason)``. Close the stream when leaving early
        (``async with`` or ``aclose()``): its tasks are then killed at once. Options are
        checked here, when the stream is built.
        """
        return TaskStream(
            iterable, fn, start=start_linked, linked=True, max_concurrency=max_concurrency,
            ordered=ordered, timeout=timeout, on_timeout=on_timeout,
            zip_input_on_exit=zip_input_on_exit, what="Task.async_stream",
        )


# -- helpers shared with Task.Supervisor and streams -------------------------------------------


def start_linked(fn: Callable[..., Any], value: Any) -> Task:
    """How a stream starts a task of its own: ``Task.async_(fn, value)``."""
    return Task.async_(fn, value)


async def run_task(alias: ReplyAlias, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """The body of a task that replies: run ``fn``, deliver its result, exit normally.

    A task that fails reports it, as Elixir's does, naming its function, its arguments and
    its owner: an exception, or an exit with a reason other than ``"normal"`` and the
    shutdown forms. The report stands for the crash (``ProcessExit(..., reported=True)``),
    so the runtime counts it without logging it again.
    """
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
    except ProcessExit as stop:
        me = _self()
        if stop.reported or is_clean_exit(stop.reason) or not is_alive(me):
            raise  # a clean exit, or an exit signal that already ended the task
        _report(me, alias.owner, fn, args, stop.reason, None)
        raise ProcessExit(stop.reason, reported=True) from None
    except Exception as exc:
        _report(_self(), alias.owner, fn, args, Crash(exc), exc)
        raise ProcessExit(Crash(exc), reported=True) from None
    alias.deliver(result)


def _report(
    me: Pid, owner: Pid, fn: Callable[..., Any], args: tuple[Any, ...], reason: Any,
    exc: BaseException | None,
) -> None:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    shown = ", ".join(_short(a) for a in args)
    what = f"{type(exc).__name__}: {exc}" if exc is not None else f"exit {_short(reason)}"
    _log.error(
        "Task %r started from %r terminating: %s\n** function: %s(%s)", me, owner, what,
        name, shown, exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
    )


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def caller(what: str) -> Pid:
    """The calling process, or a NotInProcessError that explains why one is needed."""
    try:
        return _self()
    except NotInProcessError:
        raise NotInProcessError(
            f"{what}() must be called inside a beamish process: a task belongs to the process "
            "that starts it (its owner), which is linked to it, watches it and receives its "
            "result. Run the code in a process: beamish.run(main), beamish.spawn(fn), or "
            "`async with beamish.as_process():`."
        ) from None


def check_owner(task: Any, what: str) -> Pid:
    if not isinstance(task, Task):
        raise TypeError(
            f"{what}() takes a Task (what Task.async_ or Task.Supervisor.async_ returned), "
            f"got {task!r}"
        )
    me = caller(what)
    if task.owner != me:
        raise NotOwnerError(
            f"{what}(): task {task!r} must be queried from its owner {task.owner!r} but was "
            f"queried from {me!r}. Only the process that started a task receives its reply; "
            "start the task in the process that collects it, or have the owner forward the "
            "result",
            task=task, caller=me,
        )
    return me


def check_timeout(timeout: Any, what: str, extra: str = "") -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(
            f"{what}: timeout must be a number of seconds >= 0 or None (wait forever){extra}, "
            f"got {timeout!r}"
        )


def check_function(fn: Any, what: str) -> None:
    """Refuse what cannot be a task's body, with the fix."""
    if inspect.iscoroutine(fn):
        fn.close()
        raise InvalidTargetError(
            f"{what}() got a coroutine object; pass the function and its arguments instead: "
            f"{what}(fetch, url), not {what}(fetch(url))"
        )
    if isinstance(fn, Actor) or (isinstance(fn, type) and issubclass(fn, Actor)):
        raise InvalidTargetError(
            f"{what}() runs a function, not an Actor ({fn!r}); spawn actors with "
            "beamish.spawn, or start a GenServer"
        )
    if not callable(fn):
        raise InvalidTargetError(
            f"{what}() needs a function (plain or async) to run, got {fn!r} "
            f"({type(fn).__name__}), which is not callable"
        )


def function_and_args(arg: Any, what: str) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """``fn`` or ``(fn, arg1, ...)``: the forms a child spec accepts for a function."""
    if type(arg) is tuple and arg and callable(arg[0]):
        fn, args = arg[0], arg[1:]
    else:
        fn, args = arg, ()
    if not callable(fn):
        raise TypeError(
            f"{what}() takes a function or a tuple (fn, arg1, ...), got {arg!r}"
        )
    check_function(fn, what)
    return fn, args


def from_task(ref: Ref) -> Matcher:
    """A pattern for the task's reply ``(ref, result)`` or its ``Down``."""

    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and type(m[0]) is Ref and m[0] == ref
        return t is Down and m.ref == ref

    return match


def from_tasks(refs: dict[Ref, int]) -> Matcher:
    """A pattern for the reply or the ``Down`` of any of ``refs``."""

    def match(m: Any) -> bool:
        t = type(m)
        if t is tuple:
            return len(m) == 2 and type(m[0]) is Ref and m[0] in refs
        return t is Down and m.ref in refs

    return match


def reply_of(ref: Ref) -> Matcher:
    return lambda m: type(m) is tuple and len(m) == 2 and type(m[0]) is Ref and m[0] == ref


def down_of(ref: Ref) -> Matcher:
    return lambda m: type(m) is Down and m.ref == ref


def abandon(task: Task) -> None:
    """The owner gives up on ``task``: nothing about its ref reaches the mailbox again."""
    task._alias.active = False
    demonitor(task.ref, flush=True)


def take_now(pattern: Matcher, what: str) -> Any:
    """The first queued message that matches ``pattern``, or None. Never waits."""
    try:
        return receive_nowait(pattern)
    except NotInProcessError:
        raise NotInProcessError(
            f"{what}() reads the caller's mailbox, so it must be called by the task's owner, "
            "inside a process"
        ) from None


# Task.Supervisor lives in its own module, which builds on this one and sets the attribute.
import beamish._otp.task.supervisor  # noqa: E402, F401
