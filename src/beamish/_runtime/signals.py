"""Exits, links and monitors: the signals between processes.

How it works. A process exits through ``_exit_process``, which at once marks it dead (its
pid no longer reaches it), releases its name and cancels its timers, and only then queues
its *fan-out*: the down messages for its watchers and the exit signals for its links. The
fan-out is drained in a loop, not by recursion, so a chain of ten thousand linked processes
that fall one after another needs no deep stack; a process killed by the fan-out is marked
dead at that moment and queued in turn. Because the whole fan-out runs before the call that
started it returns, an exit is visible to the sender immediately, as on the BEAM where an
exit signal is handled before ``is_process_alive`` answers.

An exit signal, by the BEAM's truth table (``_exit_signal``):

===========================  ==========================  ================================
signal                       receiver traps exits        receiver does not
===========================  ==========================  ================================
``exit(pid, "kill")``        dies with ``"killed"``      dies with ``"killed"``
``"normal"`` over a link     gets ``Exit(pid, "normal")``  ignores it
``exit(pid, "normal")``      gets ``Exit(from, "normal")``  ignores it (unless pid is self)
``exit(self(), "normal")``   gets ``Exit(self, "normal")``  dies with ``"normal"``
any other reason             gets ``Exit(from, reason)``   dies with that reason
===========================  ==========================  ================================

A ``"kill"`` that arrives over a link (a linked process exited with reason ``"kill"``) is an
ordinary reason: it can be trapped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beamish._runtime.crash import CrashReport, crash_report
from beamish._runtime.events import event
from beamish._runtime.isolation import isolate
from beamish._runtime.mailbox import deliver
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pairs import entries, put, take
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor, Process
from beamish._runtime.scheduler import close_unstarted

if TYPE_CHECKING:
    from beamish._runtime.clock import TimerHandle
    from beamish._runtime.scheduler import Scheduler

__all__ = ["Signals"]

_log = logging.getLogger("beamish.process")
_EXIT = event("beamish", "process", "exit")
_CRASH = event("beamish", "process", "crash")
_NONE: dict[str, Any] = {}  # the measurements of an event that has none (never written)
_ACTOR_EXITED = Actor.exited

Watcher = Process | Callable[[Ref, Pid, Any], None]


class Signals:
    """The signal half of the Runtime (a mixin: it uses the Runtime's tables)."""

    _procs: dict[int, Process]
    _names: dict[str, Process]
    _timers: dict[Ref, tuple[TimerHandle, Any, Any, float]]
    _fanout: deque[Process]
    _draining: bool
    scheduler: Scheduler
    _exited: int
    crashed: int
    wakeups: int

    if TYPE_CHECKING:  # the Remote mixin's
        _remote_monitors: dict[Ref, Any]

        def _demonitor_remote(self, ref: Ref) -> bool: ...
        def _exit_remote(
            self, sender: Pid | None, target: Pid, reason: Any, *, link: bool
        ) -> None: ...

    # -- delivery -----------------------------------------------------------------------

    # Put an already isolated message in a live process's mailbox and wake it.
    _deliver = staticmethod(deliver)

    # -- exits ----------------------------------------------------------------------------

    def _exit_process(
        self, proc: Process, reason: Any, *, from_inside: bool = False, uncaught: bool = False,
        reported: bool | dict[str, Any] = False,
    ) -> None:
        """End ``proc`` with ``reason`` (no-op if it already ended).

        ``from_inside`` says the process's own code is ending it (its task is finishing and
        must not be cancelled). A crash is counted and told to the ``crash`` hooks once:
        ``uncaught`` says an exception escaped the process, which is logged here;
        ``reported`` that the process reported its own crash (``ProcessExit(reason,
        reported=True)``, or a dict of what its behaviour knows: ``crash.py``), so it is
        not logged again.
        """
        pid = proc.pid
        if pid._proc is None:
            return
        pid._proc = None
        if type(reason) is not str:
            reason = isolate(reason)
        proc.exit_reason = reason
        del self._procs[pid.id]
        if proc.name is not None:
            self._names.pop(proc.name, None)
        if proc.timers:
            for ref in proc.timers:
                entry = self._timers.pop(ref, None)
                if entry is not None:
                    entry[0].cancel()
            proc.timers = None
        self._exited += 1
        if not from_inside:
            task = proc.task
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
                self.wakeups += 1  # its task runs once more, to unwind
                if proc.actor is not None:  # an async handler's, perhaps not started yet
                    close_unstarted(task)
        waiter = proc.waiter
        if waiter is not None:
            proc.waiter = None
            if not waiter.done():
                waiter.cancel()
        if uncaught or reported:
            self.crashed += 1
            if uncaught or _CRASH.handlers:
                report = crash_report(proc, reason, reported)
                if uncaught:
                    _log_crash(proc, report)
                if _CRASH.handlers:
                    _CRASH.emit(_NONE, {"pid": pid, "reason": reason, "report": report})
        if (
            proc.links is None and proc.watchers is None and proc.monitors is None
            and not _EXIT.handlers
            and (proc.actor is None or type(proc.actor).exited is _ACTOR_EXITED)
        ):
            # nobody to tell: most short-lived processes (a request, a task) end here
            proc.mailbox = proc.actor = proc.context = proc.task = None
            return
        self._fanout.append(proc)
        if not self._draining:
            self._drain()

    def _drain(self) -> None:
        self._draining = True
        try:
            fanout = self._fanout
            while fanout:
                self._notify_exit(fanout.popleft())
        finally:
            self._draining = False

    def _notify_exit(self, proc: Process) -> None:
        pid = proc.pid
        reason = proc.exit_reason
        if proc.monitors is not None:  # monitors this process held: the targets forget them
            monitors = proc.monitors
            proc.monitors = None
            for ref, watched in entries(monitors):
                t = watched._proc if type(watched) is Pid else None
                if t is not None:
                    t.watchers = take(t.watchers, ref)[0]
                elif ref in self._remote_monitors:  # on another node: tell it
                    self._demonitor_remote(ref)
        if proc.watchers is not None:  # monitors on this process: each fires once
            watchers = proc.watchers
            proc.watchers = None
            for ref, watcher in entries(watchers):
                if type(watcher) is Process:
                    if watcher.pid._proc is not None:
                        watcher.monitors = take(watcher.monitors, ref)[0]
                        self._deliver(watcher, Down(ref, pid, reason))
                else:
                    try:
                        watcher(ref, pid, reason)  # type: ignore[operator]
                    except Exception:
                        _log.exception("exit watcher %r of %r raised", watcher, pid)
        if proc.links is not None:
            links = proc.links
            proc.links = None
            others = (links,) if isinstance(links, Pid) else links
            for other in others:
                linked = other._proc
                if linked is not None:
                    _drop_link(linked, pid)
                    self._exit_signal(linked, pid, reason, link=True)
                elif other._node.index:  # a process of another node: over the wire
                    self._exit_remote(pid, other, reason, link=True)
        if _EXIT.handlers:
            _EXIT.emit(_NONE, {"pid": pid, "reason": reason})
        actor = proc.actor
        if actor is not None and type(actor).exited is not _ACTOR_EXITED:
            try:
                actor.exited(reason)
            except Exception:
                _log.exception("%s.exited() of %r raised", type(actor).__qualname__, pid)
        # Release what the record holds: a dead process keeps only its pid and reason.
        proc.mailbox = None
        proc.actor = None
        proc.context = None
        proc.task = None

    def _exit_signal(self, target: Process, sender: Pid | None, reason: Any, *, link: bool) -> None:
        """Deliver an exit signal with ``reason`` from ``sender`` to a live ``target``."""
        if target.trap_exit:
            self._deliver(target, Exit(sender, reason))
            return
        if type(reason) is str and reason == "normal":
            if not link and sender is not None and sender == target.pid:
                self._exit_process(target, "normal")
            return
        self._exit_process(target, reason)

    def _kill(self, target: Process) -> None:
        """The untrappable ``exit(pid, "kill")``."""
        self._exit_process(target, "killed")

    # -- links ----------------------------------------------------------------------------

    def _link(self, me: Process, other: Pid) -> bool:
        """Link ``me`` and ``other``; False if ``other`` is not alive (noproc)."""
        if other == me.pid:
            return True
        target = other._proc
        if target is None:
            return False
        _add_link(me, other)
        _add_link(target, me.pid)
        return True

    def _unlink(self, me: Process, other: Pid) -> None:
        _drop_link(me, other)
        target = other._proc
        if target is not None:
            _drop_link(target, me.pid)

    # -- monitors -------------------------------------------------------------------------

    def _watch(self, target: Process, ref: Ref, watcher: Watcher) -> None:
        """Register ``watcher`` to learn once of ``target``'s exit under ``ref``.

        A watcher is a process (it gets a ``Down`` message) or a callback
        ``(ref, pid, reason)`` run on the loop during the exit fan-out.
        """
        target.watchers = put(target.watchers, ref, watcher)
        if type(watcher) is Process:
            watcher.monitors = put(watcher.monitors, ref, target.pid)

    def _unwatch(self, target_pid: Pid, ref: Ref) -> bool:
        target = target_pid._proc if type(target_pid) is Pid else None
        if target is not None:
            target.watchers, watcher = take(target.watchers, ref)
            return watcher is not None
        return self._demonitor_remote(ref)


# A process's links are None, one Pid, or a set of pids: most processes have at most one
# link (to their parent or supervisor), and an empty set alone costs over 200 bytes.


def _add_link(proc: Process, pid: Pid) -> None:
    links = proc.links
    if links is None:
        proc.links = pid
    elif type(links) is Pid:
        if links != pid:
            proc.links = {links, pid}
    else:
        links.add(pid)  # type: ignore[union-attr]


def _drop_link(proc: Process, pid: Pid) -> None:
    links = proc.links
    if links is None:
        return
    if type(links) is Pid:
        if links == pid:
            proc.links = None
    else:
        links.discard(pid)  # type: ignore[union-attr]
        if not links:
            proc.links = None


def links_of(proc: Process) -> tuple[Pid, ...]:
    """The pids ``proc`` is linked to."""
    links = proc.links
    if links is None:
        return ()
    return (links,) if type(links) is Pid else tuple(links)  # type: ignore[arg-type]


def _log_crash(proc: Process, report: CrashReport) -> None:
    exc = report.exception
    name = f" ({proc.name})" if proc.name else ""
    what = type(proc.actor).__qualname__ if proc.actor is not None else _describe(proc.initial)
    _log.error(
        "process %r%s running %s crashed: %s: %s\n%s",
        proc.pid, name, what, type(exc).__name__, exc, "\n".join(report.lines()[1:]),
        exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
    )


def _describe(initial: Any) -> str:
    return getattr(initial, "__qualname__", None) or repr(initial)
