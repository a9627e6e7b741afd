"""The Runtime: one node, owning every table its processes live in.

A runtime is bound to one event loop. It owns the process table, the name table, the timers,
the scheduler for actors, the watchdog and the instrument hooks; nothing is global, so two
runtimes can live side by side in one test.

Start one with ``beamish.run(main)`` (which makes its own loop), or inside a running loop::

    async with beamish.Runtime() as rt:
        result = await rt.run(main)          # main runs as a process
        async with rt.as_process():          # or: this block runs as a process
            ...

Stopping (``rt.stop()``, or leaving the ``async with``) shuts every process down within the
shutdown timeout: processes with no live parent get an exit signal ``"shutdown"`` on their
parent's behalf, so supervision trees stop from the top, children in order; a process that
traps exits gets the signal as a message and a chance to clean up; what is still alive at
the deadline is killed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import inspect
import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import Any

from beamish._errors import InvalidTargetError, ProcessExit, SystemLimitError
from beamish._runtime import context as _context
from beamish._runtime.clock import Clock, RealClock, TimerHandle
from beamish._runtime.events import event
from beamish._runtime.introspection import ProcessInfo, RuntimeStatistics
from beamish._runtime.introspection import process_info as _process_info
from beamish._runtime.isolation import ATOMIC, isolate
from beamish._runtime.messages import Crash
from beamish._runtime.names import Names
from beamish._runtime.pid import NodeId, Pid, Ref, new_creation
from beamish._runtime.process import INIT, Actor, Process
from beamish._runtime.remote import Remote
from beamish._runtime.scheduler import Scheduler
from beamish._runtime.signals import Signals
from beamish._runtime.tables import Table
from beamish._runtime.timers import Timers
from beamish._runtime.watchdog import Watchdog

__all__ = ["Runtime"]

DEFAULT_MAX_PROCESSES = 1_048_576

_SPAWN = event("beamish", "process", "spawn")
_NONE: dict[str, Any] = {}  # the measurements of an event that has none (never written)


class Runtime(Signals, Names, Timers, Remote):
    """One beamish node: processes, names, timers, scheduler and watchdog.

    Options (all keyword-only):

    - ``node``: the node's name (default ``"nonode@nohost"``, as on an undistributed BEAM);
    - ``max_processes``: the process limit (default 1,048,576); spawning past it raises
      ``SystemLimitError``;
    - ``long_schedule``: the watchdog threshold in seconds (default 0.1); a step that holds
      the loop longer is reported. ``None`` turns the watchdog off;
    - ``reductions``: how many messages an actor handles before the next one gets a turn
      (default 200);
    - ``tick_budget``: how many messages the scheduler handles before it yields the loop to
      I/O and tasks (default 4000);
    - ``shutdown_timeout``: the bound on ``stop()`` in seconds (default 5);
    - ``clock``: a ``Clock`` (default: the loop's clock; tests pass a virtual one);
    - ``offload_workers``: threads for ``offload()`` (default: Python's default pool size);
    - ``gc_threshold``: the cyclic garbage collector's thresholds while the runtime runs
      (default ``(50_000, 10, 10)``; ``None`` leaves them alone). CPython's default of 700
      allocations per young collection makes spawning a million processes about twice as
      slow (measured in ``bench/runtime.py``); the previous thresholds come back at stop.
    """

    def __init__(
        self,
        *,
        node: str = "nonode@nohost",
        max_processes: int = DEFAULT_MAX_PROCESSES,
        long_schedule: float | None = 0.1,
        reductions: int = 200,
        tick_budget: int = 4000,
        shutdown_timeout: float = 5.0,
        clock: Clock | None = None,
        offload_workers: int | None = None,
        gc_threshold: tuple[int, int, int] | None = (50_000, 10, 10),
    ) -> None:
        if type(max_processes) is not int or max_processes < 1:
            raise ValueError(f"max_processes must be a positive int, got {max_processes!r}")
        if long_schedule is not None and long_schedule <= 0:
            raise ValueError(f"long_schedule must be > 0 seconds or None, got {long_schedule!r}")
        if reductions < 1 or tick_budget < 1:
            raise ValueError("reductions and tick_budget must be >= 1")
        self.node_id = NodeId(node, new_creation())
        self._max_processes = max_processes
        self.shutdown_timeout = shutdown_timeout
        self.clock: Clock = clock if clock is not None else RealClock()
        self.system_pid = Pid(self.node_id, 0)
        self._long_schedule = long_schedule
        self._reductions = reductions
        self._tick_budget = tick_budget
        self._offload_workers = offload_workers
        self._gc_threshold = gc_threshold
        self._gc_saved: tuple[int, int, int] | None = None
        self._procs: dict[int, Process] = {}
        self.holds: dict[Process, Any] | None = None  # actors held for an upgrade (holds.py)
        self._names: dict[str, Process] = {}
        self._timers: dict[Ref, tuple[TimerHandle, Any, Any, float]] = {}
        self._fanout: deque[Process] = deque()
        self._draining = False
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._state = "new"
        self._token: Token[Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        # tasks that as_process made processes for a while (a request's server task): the
        # watchdog finds their process here, since their names do not carry a pid
        self._hosted: dict[asyncio.Task[Any], Process] = {}
        self._watchdog: Watchdog | None = None
        self._started_at = 0.0
        self.extensions: dict[str, Any] = {}
        self._tables: dict[Any, Table] = {}  # owned tables (tables.py), by name
        self._init_remote()
        # the processes made and ended by the Python paths; the C host counts its own
        # (``spawned``/``exited`` add them up)
        self._spawned = 0
        self._exited = 0
        self._host: Any = None  # _speedups.Host while running, where the C path is built
        self.crashed = 0
        self.wakeups = 0  # see _runtime/wakeups.py

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def node(self) -> str:
        return self.node_id.name

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def spawned(self) -> int:
        """Processes made so far."""
        host = self._host
        return self._spawned + (host.spawned if host is not None else 0)

    @property
    def exited(self) -> int:
        """Processes ended so far."""
        host = self._host
        return self._exited + (host.exited if host is not None else 0)

    @property
    def max_processes(self) -> int:
        """The process limit: spawning past it raises ``SystemLimitError``."""
        return self._max_processes

    @max_processes.setter
    def max_processes(self, limit: int) -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"max_processes must be a positive int, got {limit!r}")
        self._max_processes = limit
        if self._host is not None:
            self._host.max_processes = limit

    async def start(self) -> Runtime:
        """Start on the running loop and make this runtime current in the calling task."""
        if self._state != "new":
            raise RuntimeError(f"this Runtime is {self._state}; a runtime starts once")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.clock.bind(loop)
        self.scheduler = Scheduler(
            self, loop, reductions=self._reductions, tick_budget=self._tick_budget
        )
        if self._long_schedule is not None:
            self._watchdog = Watchdog(self, loop, self._long_schedule)
            self._watchdog.start()
        if self._gc_threshold is not None:
            self._gc_saved = gc.get_threshold()
            gc.set_threshold(*self._gc_threshold)
        self._started_at = time.monotonic()
        if _c_host is not None:
            self._host = _c_host(self, self._procs, self._ids, self.node_id, self._hosted, loop,
                                 self._max_processes)
        self._state = "running"
        self._token = _context.CURRENT.set(self)
        return self

    # ``extensions``: configuration a layer above the kernel keeps per runtime for as long as
    # the runtime lives (the event streams' settings), under a key named after the layer.
    # State that belongs to a process (a registry's table, a pool's) is an owned table
    # instead (``tables.py``), which goes with its owner. The kernel never reads either.

    def bind(self) -> None:
        """Make this runtime current in the calling context (e.g. a server's own task)."""
        _context.CURRENT.set(self)

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._token is not None:
            with contextlib.suppress(ValueError):  # exited in another context than entered
                _context.CURRENT.reset(self._token)
            self._token = None

    async def stop(self, timeout: float | None = None) -> None:
        """Shut every process down, top first, within ``timeout`` (default: the option)."""
        if self._state != "running":
            return
        self._state = "stopping"
        loop = self._loop
        deadline = loop.time() + (self.shutdown_timeout if timeout is None else timeout)
        tasks: list[asyncio.Task[Any]] = []
        while self._procs and loop.time() < deadline:
            roots = [p for p in self._procs.values() if p.parent is None or p.parent._proc is None]
            await self._shut_down(roots, deadline, tasks)
        for proc in list(self._procs.values()):
            if proc.task is not None:
                tasks.append(proc.task)
            self._kill(proc)
        pending = [t for t in tasks if not t.done() and t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for handle, *_ in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._gc_saved is not None:
            gc.set_threshold(*self._gc_saved)
        self._state = "stopped"
        if self._host is not None:
            self._host.open = False

    async def _shut_down(
        self, roots: list[Process], deadline: float, tasks: list[asyncio.Task[Any]]
    ) -> None:
        waiting = {p.pid for p in roots}
        done: asyncio.Future[None] = self._loop.create_future()

        def gone(_ref: Ref, pid: Pid, _reason: Any) -> None:
            waiting.discard(pid)
            if not waiting and not done.done():
                done.set_result(None)

        for proc in roots:
            if proc.task is not None:
                tasks.append(proc.task)
            self._watch(proc, self.make_ref(), gone)
        for proc in roots:
            if proc.pid._proc is not None:
                # on the parent's behalf; Exit(None, ...) when it has none
                self._exit_signal(proc, proc.parent, "shutdown", link=True)
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done, max(deadline - self._loop.time(), 0))

    # -- spawning -------------------------------------------------------------------------

    def make_ref(self) -> Ref:
        """A new unique reference."""
        return Ref(self.node_id, next(self._refs))

    def spawn(
        self,
        target: Any,
        args: tuple[Any, ...] = (),
        *,
        parent: Process | None = None,
        link: bool = False,
        name: str | None = None,
        trap_exit: bool = False,
    ) -> Pid:
        """Create a process running ``target``; see ``beamish.spawn``."""
        actor = _check_target(target, args)
        if args:  # the arguments are the new process's first message: isolate them
            for arg in args:
                if type(arg) not in ATOMIC:
                    args = isolate(args)
                    break
        proc = self._new_process(target, actor, parent, link, name, trap_exit)
        pid = proc.pid
        if actor is not None:
            actor.pid = pid
            if type(actor).started is not Actor.started:
                proc.mailbox = deque((INIT,))
                proc.scheduled = True
                self.scheduler.enqueue(proc)
        else:
            proc.task = self._loop.create_task(
                _task_main(proc, target, args), name=f"beamish{pid!r}",
                context=proc.own_context(),
            )
            self.wakeups += 1  # its task is due to start
        if _SPAWN.handlers:
            _SPAWN.emit(_NONE, {"pid": pid})
        return pid

    def _new_process(
        self, target: Any, actor: Actor | None, parent: Process | None, link: bool,
        name: str | None, trap_exit: bool,
    ) -> Process:
        if self._state != "running" and self._state != "stopping":
            raise RuntimeError(
                f"cannot spawn: the runtime is {self._state} (start it first, e.g. "
                "`async with beamish.Runtime():` or beamish.run(main))"
            )
        if len(self._procs) >= self.max_processes:
            raise SystemLimitError(
                f"cannot spawn: the process limit of {self.max_processes:,} is reached. Raise "
                "it with Runtime(max_processes=...) if the machine can hold more, or look for "
                "a leak with beamish.processes()."
            )
        if name is not None:
            self._check_free(name)
        pid = Pid(self.node_id, next(self._ids))
        proc = Process(self, pid, actor, target)
        pid._proc = proc
        self._procs[pid.id] = proc
        self._spawned += 1
        if parent is not None:
            proc.parent = parent.pid
            if link:
                self._link(parent, pid)
        if name is not None:
            self._register(name, proc)
        if trap_exit:
            proc.trap_exit = True
        return proc

    def _check_free(self, name: str) -> None:
        from beamish._runtime.names import check_name

        check_name(name)
        holder = self._names.get(name)
        if holder is not None:
            from beamish._errors import NameTakenError

            raise NameTakenError(
                f"cannot start a process named {name!r}: the name is already registered to "
                f"{holder.pid!r}",
                name=name, holder=holder.pid,
            )

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` as a process and return its result.

        An exception escaping the process is raised here; any other abnormal exit raises
        ``ProcessExit(reason)``.
        """
        pid = self.spawn(fn, args)
        proc = pid._proc
        assert proc is not None
        outcome: asyncio.Future[Any] = self._loop.create_future()

        def on_exit(_ref: Ref, _pid: Pid, reason: Any) -> None:
            if not outcome.done():
                outcome.set_result(reason)
                self.wakeups += 1

        self._watch(proc, self.make_ref(), on_exit)
        task = proc.task
        try:
            reason = await outcome
            result = await task if task is not None else None
        except asyncio.CancelledError:
            if pid._proc is not None:
                self._kill(pid._proc)
            raise
        if type(reason) is Crash:
            raise reason.exception
        if reason != "normal":
            raise ProcessExit(reason)
        return result

    def as_process(self, *, name: str | None = None, trap_exit: bool = False) -> AsProcess:
        """Run the body of an ``async with`` block as a process of this runtime."""
        return AsProcess(self, name, trap_exit)

    def process_block(self) -> AbstractContextManager[Pid]:
        """``with rt.process_block() as pid:``: ``AsProcess(rt, None, False)`` for a plain
        ``with`` (no name, no trap_exit), entered and left in C where the extension is built
        (``_speedups.Block``; the web endpoint's request processes use it)."""
        host = self._host
        return host.block() if host is not None else AsProcess(self, None, False)

    # -- introspection --------------------------------------------------------------------

    def processes(self) -> list[Pid]:
        """The pids of all live processes, oldest first."""
        return [p.pid for p in self._procs.values()]

    def process_info(self, pid: Pid) -> ProcessInfo | None:
        """A snapshot of a live process, or None if it is not alive."""
        proc = pid._proc
        if proc is None or proc.runtime is not self:
            return None
        return _process_info(self, proc)

    def statistics(self) -> RuntimeStatistics:
        return RuntimeStatistics(
            node=self.node,
            uptime=time.monotonic() - self._started_at if self._started_at else 0.0,
            process_count=len(self._procs),
            process_limit=self.max_processes,
            spawned=self.spawned,
            exited=self.exited,
            crashed=self.crashed,
            run_queue=len(self.scheduler.runq) if self._state != "new" else 0,
            messages_dispatched=self.scheduler.dispatched if self._state != "new" else 0,
            registered_names=len(self._names),
            timers=len(self._timers),
            long_schedules=self._watchdog.reports if self._watchdog else 0,
            wakeups=self.wakeups,
        )

    def _process_of_task(self, task: Any) -> Process | None:
        """The process a task runs: a task-shaped process's own (named ``beamish<pid>``), or
        one that ``as_process`` borrowed. Safe from the watchdog's thread."""
        if task is None:
            return None
        hosted = self._hosted.get(task)
        if hosted is not None:
            return hosted
        name = task.get_name()
        if not name.startswith("beamish<"):
            return None
        try:
            return self._procs.get(int(name.split(".")[1]))
        except (IndexError, ValueError):
            return None

    def _offload_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._offload_workers or min(32, (os.cpu_count() or 1) + 4),
                thread_name_prefix="beamish-offload",
            )
        return self._executor


def _check_target(target: Any, args: tuple[Any, ...]) -> Actor | None:
    if isinstance(target, Actor):
        if args:
            raise InvalidTargetError(
                f"spawn() got an Actor instance ({type(target).__qualname__}) and arguments "
                f"{args!r}; an actor takes no arguments at spawn: give them to its constructor"
            )
        existing = getattr(target, "pid", None)
        if existing is not None and existing._proc is not None:
            raise InvalidTargetError(
                f"this {type(target).__qualname__} instance is already the body of process "
                f"{existing!r}; spawn a new instance"
            )
        return target
    if inspect.iscoroutine(target):
        target.close()
        raise InvalidTargetError(
            "spawn() got a coroutine object; pass the async function and its arguments "
            "instead, spawn(fn, 1, 2), not spawn(fn(1, 2))"
        )
    if isinstance(target, type) and issubclass(target, Actor):
        raise InvalidTargetError(
            f"spawn() got the Actor class {target.__qualname__}; spawn an instance of it: "
            f"spawn({target.__qualname__}(...))"
        )
    if not callable(target):
        raise InvalidTargetError(
            f"spawn() needs an async function, a function or an Actor instance to run; got "
            f"{target!r} ({type(target).__name__}), which is not callable"
        )
    return None


async def _task_main(proc: Process, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """The body of a task-shaped process: run ``fn``, then exit with what happened."""
    runtime = proc.runtime
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
    except ProcessExit as stop:
        runtime._exit_process(proc, stop.reason, from_inside=True, reported=stop.reported)
        return None
    except asyncio.CancelledError:
        if proc.pid._proc is not None:  # cancelled by something other than an exit signal
            runtime._exit_process(proc, "killed", from_inside=True)
        return None
    except Exception as exc:
        runtime._exit_process(proc, Crash(exc), from_inside=True, uncaught=True)
        return None
    except BaseException as exc:  # KeyboardInterrupt, SystemExit: end it, then let it through
        runtime._exit_process(proc, Crash(exc), from_inside=True)
        raise
    runtime._exit_process(proc, "normal", from_inside=True)
    return result


# The C type that makes and ends as_process's records in the common case, and runs a plain
# ``with`` block as a process (``_speedups.Host``; a runtime makes one when it starts), set by
# api.py where the extension is built and not disabled; None: AsProcess, the reference, does
# it all in Python.
_c_host: Callable[..., Any] | None = None


def _hosted_slow(runtime: Runtime, parent: Process | None, task: asyncio.Task[Any]) -> Process:
    """A block's process where the common path cannot make it (the runtime not running, the
    limit reached: ``_new_process`` raises and says why)."""
    proc = runtime._new_process(None, None, parent, False, None, False)
    proc.task = task
    return proc


def _emit_spawn(pid: Pid) -> None:
    _SPAWN.emit(_NONE, {"pid": pid})


def _leave_block(runtime: Runtime, proc: Process, exc: BaseException | None) -> bool:
    """The end of a process block, once CURRENT and the hosted table are restored: end the
    process as what left the block says; True swallows ``exc`` (``__exit__``'s answer)."""
    if proc.pid._proc is None:  # already exited (killed, or exit(self(), ...))
        reason = proc.exit_reason
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.uncancel() > 0:
                return False  # also cancelled from outside: let that through
        if reason == "normal":
            return exc is None or isinstance(exc, ProcessExit | asyncio.CancelledError)
        if isinstance(exc, ProcessExit):
            return False
        raise ProcessExit(reason) from exc
    if exc is None:
        runtime._exit_process(proc, "normal", from_inside=True)
        return False
    if isinstance(exc, ProcessExit):
        runtime._exit_process(proc, exc.reason, from_inside=True, reported=exc.reported)
        return bool(exc.reason == "normal")
    runtime._exit_process(proc, Crash(exc), from_inside=True, reported=isinstance(exc, Exception))
    return False


class AsProcess:
    """``async with rt.as_process() as pid:``: the block's task is a process meanwhile.

    Entering and leaving await nothing, so a plain ``with`` does the same without two
    coroutines; either way it must run in a task on the runtime's loop.
    ``Runtime.process_block()`` is this class for a plain ``with`` with no name or trap_exit,
    done in C where the extension is built (``_speedups.Block``, with the same helpers
    above for every case but the common one); this class is its reference.

    On leaving the block the process exits ``"normal"``. An exception leaving the block ends
    the process with ``Crash(exc)`` and goes on: the crash is counted and told to the
    ``crash`` hooks, but not logged, since the code around the block gets the exception
    and decides (the web endpoint logs a crashed request itself). If the process is killed
    by an exit signal while inside the block, the block is cancelled and
    ``ProcessExit(reason)`` leaves it.
    """

    __slots__ = ("_name", "_outer", "_proc", "_runtime", "_task", "_token", "_trap_exit")

    def __init__(self, runtime: Runtime, name: str | None, trap_exit: bool) -> None:
        self._runtime = runtime
        self._name = name
        self._trap_exit = trap_exit
        self._proc: Process | None = None
        self._outer: Process | None = None
        self._task: asyncio.Task[Any] | None = None
        self._token: Token[Any] | None = None

    def __enter__(self) -> Pid:
        runtime = self._runtime
        # The runtime's loop given: asyncio's own lookup of the running loop makes a
        # getpid() system call each time (its fork check), once per request here
        task = asyncio.current_task(runtime._loop)
        if task is None:
            raise RuntimeError(
                "as_process() must be used inside an asyncio task on the runtime's event loop"
            )
        parent = _context.current_process()
        host = runtime._host
        proc = None
        if host is not None and self._name is None and not self._trap_exit:
            proc = host.make(parent, task)  # None: a case only the Python path takes
        if proc is None:
            proc = runtime._new_process(None, None, parent, False, self._name, self._trap_exit)
            proc.task = task
        self._proc = proc
        if _SPAWN.handlers:
            _SPAWN.emit(_NONE, {"pid": proc.pid})
        self._token = _context.CURRENT.set(proc)
        self._task = task
        self._outer = runtime._hosted.get(task)  # a block inside another one's block
        runtime._hosted[task] = proc
        return proc.pid

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        proc = self._proc
        assert proc is not None and self._token is not None
        _context.CURRENT.reset(self._token)
        runtime = self._runtime
        task = self._task  # not proc.task: an exit clears that
        assert task is not None
        if self._outer is not None:
            runtime._hosted[task] = self._outer
        else:
            runtime._hosted.pop(task, None)
        host = runtime._host
        if exc is None and host is not None and host.end(proc):  # False: nothing done
            return False
        return _leave_block(runtime, proc, exc)

    async def __aenter__(self) -> Pid:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)
