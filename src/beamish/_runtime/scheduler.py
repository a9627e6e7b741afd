"""The scheduler: runs actors' messages from one run queue.

How it works. ``send`` appends the message to the actor's mailbox and, if the actor is not
already queued, appends the actor to ``runq`` (and, if no tick is pending, asks the loop to
call ``tick`` once). ``tick`` pops actors in turn and lets each handle up to ``reductions``
messages, so a busy actor cannot starve the others; an actor with messages left goes to the
back of the queue. One tick handles at most ``tick_budget`` messages and then gives the loop
back (network I/O, timers and tasks run between ticks) by scheduling the next tick.
A call made while a tick is due has its timeout armed at the end of that tick (``arming``),
once its reply had the chance to come: most calls never pay for a timer or a callback.

A synchronous handler runs inline. A handler that returns an awaitable (an ``async def``
handler) is finished in a task created in the process's context; the actor is ``busy`` and
is not queued until that task is done. A handler that raises crashes its own process only.

While it dispatches, the scheduler keeps the running process in ``current`` (for ``self()``
and for the long-schedule watchdog) and is itself the value of the context variable, so no
context switch is paid per message.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from beamish._errors import ProcessExit
from beamish._runtime import context as _context
from beamish._runtime.holds import handler_ended
from beamish._runtime.messages import Crash
from beamish._runtime.process import HIBERNATE, INIT, Process

if TYPE_CHECKING:
    from beamish._runtime.runtime import Runtime

__all__ = ["Scheduler"]


class Scheduler:
    __slots__ = (
        "_context",
        "_loop",
        "arming",
        "current",
        "cut",
        "dispatched",
        "inline",
        "pending",
        "reductions",
        "runq",
        "runtime",
        "tick_budget",
    )

    def __init__(
        self, runtime: Runtime, loop: asyncio.AbstractEventLoop, *, reductions: int,
        tick_budget: int,
    ) -> None:
        self.runtime = runtime
        self._loop = loop
        self.runq: deque[Process] = deque()
        self.pending = False
        self.current: Process | None = None
        self.reductions = reductions
        self.tick_budget = tick_budget
        self.dispatched = 0
        self.arming: list[Any] = []  # calls' ReplyTo whose timeout is armed after this tick
        # set by a process whose work needs the loop (a full frame for another node): the
        # tick ends after it, and the rest run on the next, once the loop has turned
        self.cut = False
        # calls that may still run their idle server's handler at once, before a call goes
        # the long way (through the run queue) and so lets the loop turn; see run_now
        self.inline = reductions
        self._context = contextvars.Context()
        self._context.run(_context.CURRENT.set, self)

    def enqueue(self, proc: Process) -> None:
        """Queue an actor that has messages (the caller has set ``proc.scheduled``)."""
        self.runq.append(proc)
        if not self.pending:
            self.pending = True
            self._loop.call_soon(self.tick, context=self._context)

    def run_now(self, proc: Process, message: Any) -> None:
        """Handle one message of an idle actor at once, for a caller that waits for it.

        A call to an actor that has nothing queued and runs no handler would go through the
        run queue only to run that handler next; ``request`` has it run here instead, in
        the scheduler's context (``self()`` is the actor), as a tick would: its failures end
        the actor, not the caller, and an async handler goes on in its own task. The
        caller's turn runs it, so a caller makes at most ``reductions`` such calls before
        one goes the long way and the loop turns (``inline``, refilled by each tick).
        Called through ``self._context.run``."""
        self.current = proc
        try:
            result = proc.actor.handle(message)  # type: ignore[union-attr]
        except ProcessExit as stop:
            self._stopped(proc, stop)
            return
        except Exception as exc:
            self._crashed(proc, exc)
            return
        finally:
            self.current = None
            self.cut = False
            proc.handled += 1
            self.dispatched += 1
            if self.arming:  # what the handler left for the end of a tick (frames to go)
                self._arm()
        if result is not None:
            self._start_async(proc, result)

    def tick(self) -> None:
        self.pending = False
        self.inline = self.reductions
        handled_total = 0
        try:
            handled_total = _dispatch(self)
        finally:
            self.cut = False
            self.current = None
            self.dispatched += handled_total
            if self.arming:  # most calls were answered in this tick: they need no timer
                self._arm()
        if self.runq and not self.pending:
            self.pending = True
            self._loop.call_soon(self.tick, context=self._context)

    def _stopped(self, proc: Process, stop: ProcessExit) -> None:
        """A handler raised ``ProcessExit``: its process ends with that reason."""
        self.runtime._exit_process(proc, stop.reason, from_inside=True, reported=stop.reported)

    def _crashed(self, proc: Process, exc: Exception) -> None:
        """A handler raised: its process crashes (and only it)."""
        self.runtime._exit_process(proc, Crash(exc), from_inside=True, uncaught=True)

    def _arm(self) -> None:
        """Run what waited for the end of this step: calls' timeouts still needed, frames
        for other nodes (``arming``)."""
        arming, self.arming = self.arming, []
        for reply_to in arming:
            reply_to._arm()

    def _start_async(self, proc: Process, result: Any) -> None:
        if not inspect.isawaitable(result):
            self.runtime._exit_process(
                proc,
                Crash(TypeError(
                    f"{type(proc.actor).__qualname__}.handle() returned {result!r}; an Actor "
                    "handler must return None (or be an async def)"
                )),
                from_inside=True,
                uncaught=True,
            )
            return
        proc.busy = True
        proc.task = self._loop.create_task(
            _finish_handler(proc, result), name=f"beamish{proc.pid!r}",
            context=proc.own_context(),
        )
        self.runtime.wakeups += 1  # the handler's task is due to start


def _dispatch_py(self: Scheduler) -> int:
    """One tick's work: pop actors in turn, each handling up to ``reductions`` messages,
    until the run queue is empty, ``tick_budget`` messages were handled, or a handler set
    ``cut``; returns how many were handled. ``_speedups.dispatch`` is its twin in C (used
    unless ``BEAMISH_PURE_PYTHON`` is set); this one is the reference."""
    runq = self.runq
    budget = self.tick_budget
    reductions = self.reductions
    handled_total = 0
    while runq and budget > 0:
        proc = runq.popleft()
        actor = proc.actor
        if actor is None or proc.busy:  # exited, or finishing an async handler
            proc.scheduled = False
            continue
        self.current = proc
        mailbox = proc.mailbox
        handle = actor.handle
        pid = proc.pid
        n = 0
        drop_empty = False  # INIT or HIBERNATE was taken: an empty mailbox is given back
        while mailbox and n < reductions:
            message = mailbox.popleft()
            n += 1
            if message is HIBERNATE:  # for the scheduler, not the actor
                drop_empty = True
                continue
            try:
                if message is INIT:
                    drop_empty = True
                    result = actor.started()
                else:
                    result = handle(message)
            except ProcessExit as stop:
                self._stopped(proc, stop)
                break
            except Exception as exc:
                self._crashed(proc, exc)
                break
            if result is not None:
                self._start_async(proc, result)
                break
            if pid._proc is None:  # the handler ended its own process
                break
        proc.handled += n
        handled_total += n
        budget -= n
        if drop_empty and not mailbox and proc.mailbox is mailbox:
            proc.mailbox = None  # an idle actor needs no deque (after INIT, or HIBERNATE)
        if mailbox and pid._proc is not None and not proc.busy:
            runq.append(proc)
        else:
            proc.scheduled = False
        if self.cut:
            break
    return handled_total


_dispatch: Callable[[Scheduler], int] = _dispatch_py
"""What a tick runs: ``_dispatch_py``, or the C twin once ``api`` has configured it."""


def close_unstarted(task: asyncio.Task[Any]) -> None:
    """An actor's handler task cancelled before its first step never awaits the handler's
    coroutine it was given (nor what that one holds, as a GenServer's wrapper holds the
    callback's): close that chain, or each coroutine warns "never awaited" when collected.
    The task's own coroutine is left for the task to throw the cancellation into."""
    nested = _first_awaited(task.get_coro())
    while nested is not None:
        after = _first_awaited(nested)
        nested.close()
        nested = after


def _first_awaited(coro: Any) -> Any:
    """The one coroutine a never-started coroutine holds (what it would await first)."""
    if not inspect.iscoroutine(coro) or inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
        return None
    frame = coro.cr_frame
    if frame is None:
        return None
    held = [value for value in frame.f_locals.values() if inspect.iscoroutine(value)]
    return held[0] if len(held) == 1 else None


async def _finish_handler(proc: Process, awaitable: Awaitable[Any]) -> None:
    """Runs an actor's async handler to its end, then lets the actor take messages again."""
    runtime = proc.runtime
    try:
        await awaitable
    except ProcessExit as stop:
        runtime._exit_process(proc, stop.reason, from_inside=True, reported=stop.reported)
        return
    except asyncio.CancelledError:
        if proc.pid._proc is not None:  # cancelled from outside the runtime
            runtime._exit_process(proc, "killed", from_inside=True)
        return
    except Exception as exc:
        runtime._exit_process(proc, Crash(exc), from_inside=True, uncaught=True)
        return
    proc.task = None
    holds = runtime.holds
    if holds is not None and handler_ended(proc, holds):
        return  # held for an upgrade: it stays busy until released
    proc.busy = False
    if proc.pid._proc is not None and proc.mailbox and not proc.scheduled:
        proc.scheduled = True
        runtime.scheduler.enqueue(proc)


_context.SCHEDULER_TYPE = Scheduler
