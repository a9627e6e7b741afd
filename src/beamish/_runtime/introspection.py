"""What a process and a node can tell about themselves: ``process_info`` and ``statistics``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from beamish._runtime import pairs
from beamish._runtime.pid import Pid
from beamish._runtime.process import Process
from beamish._runtime.signals import links_of

if TYPE_CHECKING:
    from beamish._runtime.runtime import Runtime

__all__ = ["ProcessInfo", "RuntimeStatistics", "describe", "process_info"]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A snapshot of one live process.

    ``status`` is ``"running"`` (its code is on the loop now), ``"runnable"`` (it has work
    and waits for its turn) or ``"waiting"`` (idle, or awaiting something). ``memory`` is an
    estimate in bytes of what the process holds: its record, mailbox, actor or coroutine
    frames (shallow sizes, not the objects they reference).
    """

    pid: Pid
    name: str | None
    kind: str
    status: str
    message_queue_len: int
    memory: int
    current_function: str
    initial_call: str
    links: tuple[Pid, ...]
    monitors: tuple[Pid, ...]
    monitored_by: tuple[Any, ...]
    messages_handled: int
    trap_exit: bool
    parent: Pid | None


@dataclass(frozen=True, slots=True)
class RuntimeStatistics:
    """Counters of one node.

    ``run_queue`` is how many actors wait for their turn now. ``wakeups`` counts, since the
    start, the times the runtime made a task-shaped process (or an actor's ``async``
    handler) ready to run: a message or a reply for one that waited, a timer, a spawn, an
    exit signal (see ``_runtime/wakeups.py``; ``wait_until_idle`` is built on it).
    """

    node: str
    uptime: float
    process_count: int
    process_limit: int
    spawned: int
    exited: int
    crashed: int
    run_queue: int
    messages_dispatched: int
    registered_names: int
    timers: int
    long_schedules: int
    wakeups: int


def describe(target: Any) -> str:
    """A short name for a process body: a function's or an actor class's qualified name."""
    if target is None:
        return "as_process"
    name = getattr(target, "__qualname__", None)
    if name is None:
        name = type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _coroutine_chain(coro: Any) -> Iterator[Any]:
    seen = 0
    while coro is not None and seen < 50:
        yield coro
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        seen += 1


def _innermost(task: Any) -> str:
    innermost = None
    for coro in _coroutine_chain(task.get_coro()):
        if isinstance(coro, CoroutineType) and coro.cr_frame is not None:
            innermost = coro
    if innermost is None:
        return "?"
    code = innermost.cr_code
    frame = innermost.cr_frame
    line = frame.f_lineno if frame is not None else "?"
    return f"{code.co_qualname} (line {line})"


def _memory(proc: Process) -> int:
    size = sys.getsizeof(proc) + sys.getsizeof(proc.pid)
    if proc.mailbox is not None:
        size += sys.getsizeof(proc.mailbox) + sum(sys.getsizeof(m) for m in proc.mailbox)
    for table in (proc.links, proc.monitors, proc.watchers, proc.timers):
        if table is not None and type(table) is not Pid:
            size += sys.getsizeof(table)
    if proc.actor is not None:
        size += sys.getsizeof(proc.actor)
        attrs = getattr(proc.actor, "__dict__", None)
        if attrs is not None:
            size += sys.getsizeof(attrs)
    if proc.task is not None:
        size += sys.getsizeof(proc.task)
        for coro in _coroutine_chain(proc.task.get_coro()):
            size += sys.getsizeof(coro)
            frame = getattr(coro, "cr_frame", None)
            if frame is not None:
                size += sys.getsizeof(frame)
    if proc.waiter is not None:
        size += sys.getsizeof(proc.waiter)
    return size


def process_info(runtime: Runtime, proc: Process) -> ProcessInfo:
    running = runtime.scheduler.current is proc or (
        proc.task is not None and proc.task is _running_task()
    )
    if running:
        status = "running"
    elif proc.actor is not None:
        status = "runnable" if proc.scheduled else "waiting"
    elif proc.waiter is not None or _awaiting(proc.task):
        status = "waiting"
    else:
        status = "runnable"  # woken, or never run yet: its task is due on the loop
    if proc.actor is not None:
        if proc.task is not None:
            current = _innermost(proc.task)
        elif running:
            current = f"{type(proc.actor).__qualname__}.handle"
        else:
            current = f"{type(proc.actor).__qualname__}.handle (idle)"
    elif proc.task is not None:
        current = _innermost(proc.task)
    else:
        current = "?"
    watchers = pairs.values(proc.watchers)
    return ProcessInfo(
        pid=proc.pid,
        name=proc.name,
        kind="actor" if proc.actor is not None else "task",
        status=status,
        message_queue_len=len(proc.mailbox) if proc.mailbox else 0,
        memory=_memory(proc),
        current_function=current,
        initial_call=describe(proc.initial),
        links=tuple(sorted(links_of(proc))),
        monitors=tuple(pairs.values(proc.monitors)),
        monitored_by=tuple(
            w.pid if type(w) is Process else getattr(w, "pid", w) for w in watchers
        ),
        messages_handled=proc.handled,
        trap_exit=proc.trap_exit,
        parent=proc.parent,
    )


def _awaiting(task: Any) -> bool:
    """True if ``task`` is parked on a future that is not yet resolved."""
    if task is None or task.done():
        return False
    waiter = getattr(task, "_fut_waiter", None)  # the future it awaits, while it awaits
    return waiter is not None and not waiter.done()


def _running_task() -> Any:
    import asyncio

    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
