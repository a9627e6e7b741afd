"""Task.Supervisor: start tasks under a supervisor, linked to the caller or not.

How it works. A task supervisor is a DynamicSupervisor whose children are temporary tasks.
For ``async_`` and ``async_nolink`` the supervisor starts a task that first waits for a *go*
message; the caller then links to it (``async_`` only), monitors it and sends the go with
its reply alias, so the task cannot finish before its owner watches it. From there on it is
an ordinary task (see ``task.py``): its owner awaits it, and a GenServer that started it with
``async_nolink`` gets ``(ref, result)`` and then ``Down(ref, pid, reason)`` in
``handle_info``. A task waiting for its go watches its owner, and gives up if the owner dies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from beamish._errors import ProcessExit, SupervisorError
from beamish._otp.supervisor.child_spec import RESTARTS, ChildSpec
from beamish._otp.supervisor.dynamic import DynamicSupervisor
from beamish._otp.task.stream import Starter, TaskStream
from beamish._otp.task.task import (
    DEFAULT_CONCURRENCY,
    ReplyAlias,
    Task,
    caller,
    check_function,
    down_of,
    run_task,
)
from beamish._runtime.api import demonitor, link, monitor, send, spawn_link
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Down
from beamish._runtime.pid import Pid
from beamish._runtime.receive import receive
from beamish._runtime.records import register_wire_callable

__all__ = ["TaskSupervisor"]

_OPTIONS = ("name", "max_children", "max_restarts", "max_seconds")


@mark_shared
class _Go:
    """From the owner to a supervised task: your result goes to ``alias``."""

    __slots__ = ("alias",)

    def __init__(self, alias: ReplyAlias) -> None:
        self.alias = alias


class TaskSupervisor:
    """``Task.Supervisor``: tasks started on demand under a supervisor.

    ::

        children = [(Task.Supervisor, {"name": "tasks"})]          # in a supervision tree
        sup = await Task.Supervisor.start_link(name="tasks")       # or on its own

        task = await Task.Supervisor.async_("tasks", fetch, url)   # linked, awaited as usual
        page = await task

        task = await Task.Supervisor.async_nolink("tasks", fetch, url)   # its failure is
        match await Task.yield_(task, 5):                                # only reported
            case ("ok", page): ...
            case ("exit", reason): ...

    Its children are ``"temporary"`` (never restarted) unless ``start_child`` says
    otherwise; each task may set its own ``shutdown`` (seconds, or ``"brutal_kill"``).
    Stopping the supervisor stops its tasks.
    """

    @staticmethod
    async def start_link(
        *, name: Any = None, max_children: int | str = "infinity", max_restarts: int = 3,
        max_seconds: float = 5.0,
    ) -> Pid:
        """Start a task supervisor linked to the caller.

        Beyond ``max_children`` running tasks, starting one raises
        ``SupervisorError("max_children")``.
        """
        return await DynamicSupervisor.start_link(
            name=name, max_children=max_children, max_restarts=max_restarts,
            max_seconds=max_seconds,
        )

    @staticmethod
    async def start(
        *, name: Any = None, max_children: int | str = "infinity", max_restarts: int = 3,
        max_seconds: float = 5.0,
    ) -> Pid:
        """Like ``start_link``, without the link."""
        return await DynamicSupervisor.start(
            name=name, max_children=max_children, max_restarts=max_restarts,
            max_seconds=max_seconds,
        )

    @staticmethod
    def child_spec(options: Mapping[str, Any] | None = None) -> ChildSpec:
        """``(Task.Supervisor, {"name": "tasks", "max_children": 100})`` in a children list."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                f"Task.Supervisor.child_spec() got unknown option(s) {', '.join(unknown)}; the "
                f"options are {', '.join(_OPTIONS)}"
            )
        return ChildSpec(
            id=opts.get("name") or TaskSupervisor, start=(_start_with, (opts,)),
            type="supervisor", modules=(TaskSupervisor,),
        )

    # -- tasks that reply -----------------------------------------------------------------

    @staticmethod
    async def async_(
        sup: Any, fn: Callable[..., Any], *args: Any, shutdown: float | str = 5.0
    ) -> Task:
        """Start ``fn(*args)`` under ``sup``, linked to the caller and monitored by it.

        As ``Task.async_`` in every other way: await it, and its failure ends the caller
        unless the caller traps exits.
        """
        return await _async(sup, fn, args, shutdown, linked=True, what="Task.Supervisor.async_")

    @staticmethod
    async def async_nolink(
        sup: Any, fn: Callable[..., Any], *args: Any, shutdown: float | str = 5.0
    ) -> Task:
        """Start ``fn(*args)`` under ``sup``, monitored by the caller but not linked.

        A failure does not touch the caller: ``await_`` raises ``CallError`` with the
        reason, ``yield_`` returns ``("exit", reason)``. In a GenServer, handle
        ``(ref, result)`` and then ``Down(ref, pid, reason)`` — which always comes, with
        ``"normal"`` after a success — in ``handle_info``.
        """
        return await _async(
            sup, fn, args, shutdown, linked=False, what="Task.Supervisor.async_nolink"
        )

    # -- tasks that do not reply ----------------------------------------------------------

    @staticmethod
    async def start_child(
        sup: Any, fn: Callable[..., Any], *args: Any, restart: str = "temporary",
        shutdown: float | str = 5.0,
    ) -> Pid:
        """Start ``fn(*args)`` under ``sup`` for its side effects; returns its pid.

        Not linked to the caller, and nothing is sent back. ``restart="transient"`` restarts
        it until it finishes normally, ``"permanent"`` always.
        """
        what = "Task.Supervisor.start_child"
        check_function(fn, what)
        _check_shutdown(shutdown, what)
        if restart not in RESTARTS:
            raise ValueError(
                f"{what}(): restart must be one of {', '.join(RESTARTS)}, got {restart!r}"
            )
        spec = ChildSpec(
            id=Task, start=(Task.start_link, (fn, *args)), restart=restart, shutdown=shutdown,
            modules=(Task,),
        )
        return await _start_child(sup, spec, what)

    @staticmethod
    async def children(sup: Any) -> list[Pid]:
        """The pids of the tasks running under ``sup`` (in no particular order)."""
        return [
            c.pid for c in await DynamicSupervisor.which_children(sup) if type(c.pid) is Pid
        ]

    @staticmethod
    async def terminate_child(sup: Any, pid: Pid) -> None:
        """Stop a task by its shutdown rule; ``SupervisorError("not_found")`` if not a child."""
        await DynamicSupervisor.terminate_child(sup, pid)

    # -- streams --------------------------------------------------------------------------

    @staticmethod
    def async_stream(
        sup: Any, iterable: Iterable[Any] | Any, fn: Callable[[Any], Any], *,
        max_concurrency: int = DEFAULT_CONCURRENCY, ordered: bool = True,
        timeout: float | None = 5.0, on_timeout: str = "exit", zip_input_on_exit: bool = False,
        shutdown: float | str = 5.0,
    ) -> TaskStream:
        """``Task.async_stream`` with each task started under ``sup`` (and linked)."""
        what = "Task.Supervisor.async_stream"
        _check_shutdown(shutdown, what)
        return TaskStream(
            iterable, fn, start=_starter(sup, shutdown, linked=True), linked=True,
            max_concurrency=max_concurrency, ordered=ordered, timeout=timeout,
            on_timeout=on_timeout, zip_input_on_exit=zip_input_on_exit, what=what,
        )

    @staticmethod
    def async_stream_nolink(
        sup: Any, iterable: Iterable[Any] | Any, fn: Callable[[Any], Any], *,
        max_concurrency: int = DEFAULT_CONCURRENCY, ordered: bool = True,
        timeout: float | None = 5.0, on_timeout: str = "exit", zip_input_on_exit: bool = False,
        shutdown: float | str = 5.0,
    ) -> TaskStream:
        """Like ``async_stream``, but the tasks are not linked: a failure is an item,
        ``("exit", reason)``, and never ends the consumer."""
        what = "Task.Supervisor.async_stream_nolink"
        _check_shutdown(shutdown, what)
        return TaskStream(
            iterable, fn, start=_starter(sup, shutdown, linked=False), linked=False,
            max_concurrency=max_concurrency, ordered=ordered, timeout=timeout,
            on_timeout=on_timeout, zip_input_on_exit=zip_input_on_exit, what=what,
        )


async def _start_with(options: dict[str, Any]) -> Pid:
    return await TaskSupervisor.start_link(**options)


async def _async(
    sup: Any, fn: Callable[..., Any], args: tuple[Any, ...], shutdown: Any, *, linked: bool,
    what: str,
) -> Task:
    check_function(fn, what)
    _check_shutdown(shutdown, what)
    owner = caller(what)
    spec = ChildSpec(
        id=Task, start=(_start_replying, (owner, fn, args)), restart="temporary",
        shutdown=shutdown, modules=(Task,),
    )
    pid = await _start_child(sup, spec, what)
    if linked:
        link(pid)
    ref = monitor(pid)
    alias = ReplyAlias(owner, ref)
    send(pid, _Go(alias))
    return Task(pid, ref, owner, alias)


# what a task child's spec names crosses nodes by name, so a task can start on another node
register_wire_callable(Task, "beamish.Task")
register_wire_callable(Task.start_link, "beamish.Task.start_link")


async def _start_child(sup: Any, spec: ChildSpec, what: str) -> Pid:
    try:
        pid: Pid = await DynamicSupervisor.start_child(sup, spec)
    except SupervisorError as error:
        if error.reason != "max_children":
            raise
        raise SupervisorError("max_children", (
            f"{what}(): reached the maximum number of tasks for the task supervisor {sup!r}. "
            "The number of tasks that may run at the same time under a supervisor is set with "
            "the max_children option of Task.Supervisor.start_link."
        )) from None
    return pid


async def _start_replying(owner: Pid, fn: Callable[..., Any], args: tuple[Any, ...]) -> Pid:
    """The start function of a task that replies (runs in the supervisor)."""
    return spawn_link(_supervised, owner, fn, args)


async def _supervised(owner: Pid, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    watch = monitor(owner)
    message = await receive(_Go, down_of(watch))
    if type(message) is Down:  # the owner died before it could watch the task
        raise ProcessExit(("shutdown", message.reason))
    demonitor(watch, flush=True)
    await run_task(message.alias, fn, args)


def _starter(sup: Any, shutdown: Any, *, linked: bool) -> Starter:
    what = "Task.Supervisor.async_stream" + ("" if linked else "_nolink")

    async def start(fn: Callable[..., Any], item: Any) -> Task:
        return await _async(sup, fn, (item,), shutdown, linked=linked, what=what)

    return start


def _check_shutdown(shutdown: Any, what: str) -> None:
    if shutdown == "brutal_kill" or (
        isinstance(shutdown, int | float) and not isinstance(shutdown, bool) and shutdown >= 0
    ):
        return
    raise ValueError(
        f"{what}(): shutdown must be a number of seconds >= 0 or 'brutal_kill', got {shutdown!r}"
    )


Task.Supervisor = TaskSupervisor
