"""The process API: the functions user code calls, re-exported by ``beamish``.

Each finds the calling process (or, outside processes, the current runtime) and hands the
work to it. ``send`` is the hot path and is written out in full here: one attribute read
reaches the mailbox, one set lookup per item decides isolation, and the receiver is woken
only if it is not already queued.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from beamish._errors import InvalidNameError, NoProcessError, ProcessExit, not_awaited
from beamish._runtime import context as _context
from beamish._runtime import runtime as runtime_module
from beamish._runtime import scheduler as scheduler_module
from beamish._runtime import signals as signals_module
from beamish._runtime.introspection import ProcessInfo, RuntimeStatistics
from beamish._runtime.isolation import ATOMIC, isolate
from beamish._runtime.mailbox import deliver as _deliver
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pairs import take
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import HIBERNATE, INIT, Process
from beamish._runtime.runtime import AsProcess, Runtime
from beamish._runtime.scheduler import Scheduler

__all__ = [
    "as_process", "cancel_timer", "current_runtime", "demonitor", "exit", "is_alive", "link",
    "make_ref", "monitor", "monitor_node", "monitor_nodes", "monotonic", "node", "nodes",
    "offload", "on_exit", "process_info", "processes",
    "read_timer",
    "register", "registered", "self", "send", "send_after", "spawn", "spawn_link",
    "spawn_monitor", "spawn_opt", "statistics", "trap_exit", "unlink", "unregister",
    "wait_exit", "whereis",
]

T = TypeVar("T")
_ATOMIC = ATOMIC


def _runtime_of(proc: Process | None) -> Runtime:
    return proc.runtime if proc is not None else _context.current_runtime()


def _require(what: str) -> Process:
    return _context.require_process(what)


def _check_pid(pid: Any, what: str) -> Pid:
    if type(pid) is not Pid:
        raise TypeError(
            not_awaited(pid, what, "a Pid")
            or f"{what} takes a Pid, got {pid!r} ({type(pid).__name__})"
        )
    return pid


# -- identity -------------------------------------------------------------------------------


def self() -> Pid:
    """The pid of the calling process."""
    return _require("self()").pid


def current_runtime() -> Runtime:
    """The runtime of the calling code (raises NoRuntimeError if there is none)."""
    return _runtime_of(_context.current_process())


def monotonic() -> float:
    """The runtime clock's time in seconds (a virtual clock's in tests)."""
    return _runtime_of(_context.current_process()).clock.now()


def make_ref() -> Ref:
    """A new unique reference."""
    return _runtime_of(_context.current_process()).make_ref()


# -- spawning -------------------------------------------------------------------------------


def spawn(target: Any, *args: Any) -> Pid:
    """Start a process running ``target`` and return its pid at once.

    ``target`` is an async function (the process runs ``await target(*args)`` and may
    ``receive``), a plain function (run inside the process), or an ``Actor`` instance (a
    callback-driven process; no arguments). The process ends when its function returns
    (reason ``"normal"``), when it raises (``Crash(exc)``), or by an exit signal.
    """
    me = _context.current_process()
    return _runtime_of(me).spawn(target, args, parent=me)


def spawn_link(target: Any, *args: Any) -> Pid:
    """``spawn`` and link the new process to the caller, atomically."""
    me = _require("spawn_link()")
    return me.runtime.spawn(target, args, parent=me, link=True)


def spawn_monitor(target: Any, *args: Any) -> tuple[Pid, Ref]:
    """``spawn`` and monitor the new process, atomically; returns ``(pid, ref)``."""
    me = _require("spawn_monitor()")
    pid = me.runtime.spawn(target, args, parent=me)
    return pid, monitor(pid)


def spawn_opt(
    target: Any, args: tuple[Any, ...] = (), *, link: bool = False, name: str | None = None,
    trap_exit: bool = False,
) -> Pid:
    """``spawn`` with options, applied before the process runs its first line.

    ``link`` links it to the caller, ``name`` registers it (failing if the name is taken,
    with no process left behind), ``trap_exit`` starts it trapping exits.
    """
    me = _context.current_process()
    if link and me is None:
        _require("spawn_opt(link=True)")
    return _runtime_of(me).spawn(
        target, tuple(args), parent=me, link=link, name=name, trap_exit=trap_exit
    )


# -- messages -------------------------------------------------------------------------------


def _send_py(dest: Pid | str | tuple[str, str], message: Any) -> None:
    """Send ``message`` to a pid or a registered name. Never blocks.

    To a dead pid the message is dropped silently (as on the BEAM); to a name that nobody
    holds it raises ``NotRegisteredError``. Messages from one sender to one receiver arrive
    in the order sent. Mutable messages are copied (see the isolation policy).
    """
    if type(dest) is tuple:  # (name, node): checked first, an exception costs more
        _send_other(dest, message)
        return
    try:
        proc = dest._proc  # type: ignore[union-attr]  # a Pid: one slot read, no lookup
    except AttributeError:
        proc = _runtime_of(_context.current_process())._resolve_name(dest)
    if proc is None:
        if dest._node.index:  # type: ignore[union-attr]  # a pid of another node
            _send_other(dest, message)  # type: ignore[arg-type]
        return  # a dead local pid: dropped, as on the BEAM
    t = type(message)
    if t not in _ATOMIC:
        if t is tuple:
            for item in message:
                if type(item) not in _ATOMIC:
                    message = isolate(message)
                    break
        else:
            message = isolate(message)
    _deliver(proc, message)


def _send_other(dest: Pid | tuple[str, str], message: Any) -> None:
    """The cold branch of ``send``: a pid of another node, or ``(name, node)``."""
    runtime = _runtime_of(_context.current_process())
    if type(dest) is tuple:
        if len(dest) != 2 or type(dest[0]) is not str or type(dest[1]) is not str:
            raise TypeError(
                f"send() takes a Pid, a registered name or (name, node), got {dest!r}"
            )
        if dest[1] == runtime.node_id.name:
            send(dest[0], message)
            return
    runtime._send_remote(dest, message)


def hibernate() -> None:
    """Give back the calling actor's mailbox once it has nothing queued (``erlang:hibernate``'s
    memory half): what is queued now is handled first; if nothing more has come by the end
    of the actor's turn, its empty deque is dropped, and the next message makes a new one.
    For actors idle for long stretches (a WebSocket's process between frames): costs a
    deque's allocation when the next message comes."""
    proc = _context.current_process()
    if proc is None or proc.actor is None or proc.busy:
        # busy: an async handler, whose receive() would take the HIBERNATE as a message
        raise RuntimeError("hibernate() is for an actor, called from its own synchronous "
                           "handler")
    _deliver(proc, HIBERNATE)


def _request_tick(scheduler: Scheduler) -> None:
    """For the C send: the scheduler has work and no tick pending (``pending`` is set)."""
    scheduler._loop.call_soon(scheduler.tick, context=scheduler._context)


def _fast_send() -> Callable[[Pid | str | tuple[str, str], Any], None] | None:
    """The C send (``_speedups``), configured, if it was built and is not disabled; the
    tick's loop and as_process's record (``Host``, ``Block``) are wired in C with it."""
    if os.environ.get("BEAMISH_PURE_PYTHON"):
        return None
    try:
        from beamish._runtime import _speedups

        _speedups.configure(  # ImportError too where it cannot read this Python's layout
            Pid, Process, Scheduler, ATOMIC, _send_py, isolate, _request_tick, INIT, HIBERNATE,
            ProcessExit, Scheduler._stopped, Scheduler._crashed, Scheduler._start_async,
        )
    except ImportError:
        return None
    scheduler_module._dispatch = _speedups.dispatch  # the tick's loop, in C too
    try:  # as_process's record, made and ended in C in the common case
        _speedups.configure_host(
            Pid, Process, Scheduler, signals_module._EXIT, runtime_module._SPAWN,
            _context.CURRENT, asyncio.current_task, runtime_module._hosted_slow,
            runtime_module._leave_block, runtime_module._emit_spawn,
        )
    except ImportError:
        pass
    else:
        runtime_module._c_host = _speedups.Host
    return _speedups.send


send: Callable[[Pid | str | tuple[str, str], Any], None] = _fast_send() or _send_py
"""Send ``message`` to a pid or a registered name. Never blocks.

To a dead pid the message is dropped silently (as on the BEAM); to a name that nobody holds
it raises ``NotRegisteredError``. Messages from one sender to one receiver arrive in the
order sent. Mutable messages are copied (see the isolation policy). The C version
(``_speedups``) and the Python one (``_send_py``, the reference) do the same; set
``BEAMISH_PURE_PYTHON=1`` to use the Python one.
"""


# -- exits, links, monitors -----------------------------------------------------------------


def exit(pid: Pid, reason: Any) -> None:
    """Send an exit signal with ``reason`` to ``pid``.

    ``"kill"`` cannot be trapped: the target dies with ``"killed"``. Other reasons follow
    the rules in the documentation: a process that traps exits gets ``Exit(sender, reason)``
    instead; ``"normal"`` is ignored by a process that does not trap exits, unless it is the
    caller itself. A dead ``pid`` is a no-op. If the signal ends the caller, ``exit``
    raises ``ProcessExit`` in it.
    """
    _check_pid(pid, "exit()")
    me = _context.current_process()
    runtime = _runtime_of(me)
    target = pid._proc
    if target is None:
        if pid._node.index:  # a process of another node
            runtime._exit_remote(me.pid if me is not None else None, pid, reason, link=False)
        return
    reason = isolate(reason)
    if type(reason) is str and reason == "kill":
        runtime._kill(target)
    else:
        runtime._exit_signal(
            target, me.pid if me is not None else runtime.system_pid, reason, link=False
        )
    if me is not None and me.pid._proc is None:
        raise ProcessExit(me.exit_reason)


def link(pid: Pid) -> None:
    """Link the caller and ``pid``: if either exits abnormally, the other gets the signal.

    Linking twice makes one link; linking to oneself does nothing. Linking to a process
    that is not alive sends the caller an exit signal ``"noproc"``: it dies with it, or
    gets ``Exit(pid, "noproc")`` if it traps exits.
    """
    _check_pid(pid, "link()")
    me = _require("link()")
    runtime = me.runtime
    if pid._node.index and pid._proc is None:  # a process of another node
        if runtime._link_remote(me, pid):
            return
        why = "noconnection"
    elif runtime._link(me, pid):
        return
    else:
        why = "noproc"
    if me.trap_exit:
        runtime._deliver(me, Exit(pid, why))
        return
    runtime._exit_process(me, why)
    raise ProcessExit(why)


def unlink(pid: Pid) -> None:
    """Remove the link between the caller and ``pid``; a no-op if there is none."""
    _check_pid(pid, "unlink()")
    me = _require("unlink()")
    me.runtime._unlink(me, pid)
    if pid._node.index:
        me.runtime._unlink_remote(me, pid)


def monitor(target: Pid | str | tuple[str, str]) -> Ref:
    """Watch ``target`` (a pid, a registered name or ``(name, node)``); returns the ref.

    When the target exits, the caller gets ``Down(ref, pid, reason)`` once. If it is not
    alive, the ``Down`` arrives at once with reason ``"noproc"``; if it lives on a node that
    is not connected (or goes down), with ``"noconnection"``. Each call makes an independent
    monitor.
    """
    me = _require("monitor()")
    runtime = me.runtime
    ref = runtime.make_ref()
    if type(target) is Pid:
        proc = target._proc
        if proc is None and target._node.index:
            runtime._monitor_remote(me, target, ref)
            return ref
    elif type(target) is str:
        proc = runtime._names.get(target)
    elif type(target) is tuple and len(target) == 2 and all(type(t) is str for t in target):
        if target[1] != runtime.node_id.name:
            runtime._monitor_remote(me, target, ref)
            return ref
        proc = runtime._names.get(target[0])
    else:
        raise TypeError(
            not_awaited(target, "monitor()", "a Pid or a registered name")
            or f"monitor() takes a Pid or a registered name (str) or (name, node), got {target!r}"
        )
    if proc is None:
        runtime._deliver(me, Down(ref, target, "noproc"))
    else:
        runtime._watch(proc, ref, me)
    return ref


def demonitor(ref: Ref, *, flush: bool = False) -> bool:
    """Remove a monitor; returns True if it was still active.

    With ``flush=True`` a ``Down`` for it already in the mailbox is removed too.
    """
    if type(ref) is not Ref:
        raise TypeError(f"demonitor() takes the Ref that monitor() returned, got {ref!r}")
    me = _require("demonitor()")
    active = False
    me.monitors, target = take(me.monitors, ref)
    if target is not None:
        active = me.runtime._unwatch(target, ref)
    mailbox = me.mailbox
    if flush and mailbox:
        kept = [m for m in mailbox if not (type(m) is Down and m.ref == ref)]
        if len(kept) != len(mailbox):
            # in place: the scheduler may be draining this very deque
            mailbox.clear()
            mailbox.extend(kept)
    return active


def wait_exit(pid: Pid, *, timeout: float | None = None) -> Awaitable[Any]:
    """Wait until ``pid`` exits and return its exit reason (``"noproc"`` if already dead).

    A one-shot monitor that resolves a future instead of sending ``Down`` to the mailbox, so
    it works from anywhere: a receive loop, an actor's async handler, code outside any
    process. The watch starts when ``wait_exit`` is called, so this cannot miss the exit::

        exited = wait_exit(pid)
        exit(pid, "shutdown")
        reason = await exited

    Raises ``TimeoutError`` if ``timeout`` seconds pass first.
    """
    _check_pid(pid, "wait_exit()")
    target = pid._proc
    runtime = target.runtime if target is not None else _context.current_runtime()
    future: asyncio.Future[Any] = runtime._loop.create_future()
    if target is None:
        future.set_result("noproc")
        return future

    def exited(_ref: Ref, _pid: Pid, reason: Any) -> None:
        if not future.done():
            future.set_result(reason)
            runtime.wakeups += 1

    ref = runtime.make_ref()
    runtime._watch(target, ref, exited)
    return _await_exit(runtime, future, pid, ref, timeout)


async def _await_exit(
    runtime: Runtime, future: asyncio.Future[Any], pid: Pid, ref: Ref, timeout: float | None
) -> Any:
    def expire() -> None:
        if not future.done():
            future.set_exception(
                TimeoutError(f"wait_exit() timed out after {timeout}s: {pid!r} is still alive")
            )
            runtime.wakeups += 1

    handle = None if timeout is None else runtime.clock.call_later(timeout, expire)
    try:
        return await future
    finally:
        if handle is not None:
            handle.cancel()
        runtime._unwatch(pid, ref)


def on_exit(pid: Pid, callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``callback(reason)`` once, when ``pid`` exits; returns a function that cancels.

    A monitor that calls instead of sending ``Down``: for code that is not a process, or
    that must learn of an exit without a task waiting for it. The callback runs on the loop,
    during the exit's fan-out: it must not block (schedule or send, do not await). If
    ``pid`` is already dead it is called at once with ``"noproc"``.
    """
    _check_pid(pid, "on_exit()")
    if not callable(callback):
        raise TypeError(f"on_exit() needs a callable, got {callback!r}")
    target = pid._proc
    if target is None:
        callback("noproc")
        return _nothing
    runtime = target.runtime
    ref = runtime.make_ref()
    runtime._watch(target, ref, lambda _ref, _pid, reason: callback(reason))

    def cancel() -> None:
        runtime._unwatch(pid, ref)

    return cancel


def _nothing() -> None:
    return None


def trap_exit(enabled: bool = True) -> bool:
    """Set whether the caller traps exits; returns the previous setting."""
    me = _require("trap_exit()")
    previous = me.trap_exit
    me.trap_exit = bool(enabled)
    return previous


def is_alive(pid: Pid) -> bool:
    """True if ``pid`` is a live local process (False for a pid of another node)."""
    return _check_pid(pid, "is_alive()")._proc is not None


# -- nodes ----------------------------------------------------------------------------------


def node(pid: Pid | None = None) -> str:
    """The name of this node, or of the node ``pid`` lives on."""
    if pid is not None:
        return _check_pid(pid, "node()").node
    return _runtime_of(_context.current_process()).node_id.name


def nodes() -> list[str]:
    """The names of the nodes this one is connected to (empty outside a cluster)."""
    return _runtime_of(_context.current_process()).connected_nodes()


def monitor_node(node: str, enabled: bool = True) -> None:
    """Get ``NodeDown(node, reason)`` once when ``node`` disconnects (at once if it is not
    connected now); each call adds one. ``enabled=False`` removes one."""
    if type(node) is not str:
        raise TypeError(f"monitor_node() takes a node name (str), got {node!r}")
    me = _require("monitor_node()")
    if enabled:
        me.runtime.monitor_node(me, node)
    else:
        me.runtime.demonitor_node(me, node)


def monitor_nodes(enabled: bool = True) -> None:
    """Get ``NodeUp(node)`` and ``NodeDown(node, reason)`` for every node that connects or
    disconnects, until called with ``enabled=False`` (as ``net_kernel:monitor_nodes``)."""
    me = _require("monitor_nodes()")
    me.runtime.monitor_nodes(me, enabled)


# -- names ----------------------------------------------------------------------------------


def register(name: str, pid: Pid | None = None) -> None:
    """Register ``pid`` (default: the caller) under ``name``."""
    if pid is None:
        proc = _require("register() without a pid")
    else:
        _check_pid(pid, "register()")
        found = pid._proc
        if found is None:
            if type(name) is not str:
                raise InvalidNameError(f"a process name must be a str, got {name!r}")
            raise NoProcessError(f"cannot register {name!r} for {pid!r}: it is not alive")
        proc = found
    proc.runtime._register(name, proc)


def unregister(name: str) -> None:
    """Remove the registration of ``name``; raises NotRegisteredError if nobody holds it."""
    _runtime_of(_context.current_process())._unregister(name)


def whereis(name: str) -> Pid | None:
    """The pid registered under ``name``, or None."""
    return _runtime_of(_context.current_process()).whereis(name)


def registered() -> list[str]:
    """The registered names."""
    return _runtime_of(_context.current_process()).registered()


# -- timers ---------------------------------------------------------------------------------


def send_after(dest: Pid | str, message: Any, seconds: float) -> Ref:
    """Send ``message`` to ``dest`` after ``seconds``; returns a timer ref.

    A timer aimed at a pid is cancelled if that process exits first.
    """
    return _runtime_of(_context.current_process()).send_after(dest, message, seconds)


def cancel_timer(ref: Ref) -> float | None:
    """Cancel a timer: the seconds it had left, or None if it already fired or is unknown."""
    return _runtime_of(_context.current_process()).cancel_timer(ref)


def read_timer(ref: Ref) -> float | None:
    """The seconds left on a timer, or None if it fired, was cancelled or is unknown."""
    return _runtime_of(_context.current_process()).read_timer(ref)


# -- introspection --------------------------------------------------------------------------


def process_info(pid: Pid) -> ProcessInfo | None:
    """A snapshot of a live process (see ``ProcessInfo``), or None if it is not alive."""
    _check_pid(pid, "process_info()")
    return _runtime_of(_context.current_process()).process_info(pid)


def processes() -> list[Pid]:
    """The pids of all live processes of the current runtime, oldest first."""
    return _runtime_of(_context.current_process()).processes()


def statistics() -> RuntimeStatistics:
    """Counters of the current node (processes, exits, crashes, run queue, ...)."""
    return _runtime_of(_context.current_process()).statistics()


def as_process(*, name: str | None = None, trap_exit: bool = False) -> AsProcess:
    """``async with as_process() as pid:`` runs the block as a process of the runtime."""
    return _context.current_runtime().as_process(name=name, trap_exit=trap_exit)


# -- fairness -------------------------------------------------------------------------------


async def offload(fn: Callable[..., T], *args: Any, executor: Executor | None = None) -> T:
    """Run blocking or CPU-bound ``fn(*args)`` in a worker thread; other processes go on.

    The runtime keeps a thread pool for this. Pure-Python CPU work in a thread still takes
    the GIL in turns with the loop, which keeps every process responsive but gains no
    parallel speed; for that, pass a ``concurrent.futures.ProcessPoolExecutor`` as
    ``executor``. A process killed while it waits leaves the work running to its end.
    """
    runtime = _runtime_of(_context.current_process())
    pool = executor if executor is not None else runtime._offload_executor()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args))
