"""The long-schedule watchdog: who held the event loop, where, and for how long.

asyncio cannot preempt Python code, so a handler that computes for a second stops every
other process for that second. The BEAM has a monitor for this (``long_schedule``); here is
ours, with no cost on the hot path.

How it works. A heartbeat callback on the loop records the time at which it ran, every
``threshold / 4`` seconds. A watchdog thread wakes at the same pace; when the heartbeat is
late by more than ``threshold``, the loop is held by one step. The thread then reads what
runs on the loop thread: the process (the scheduler's ``current`` actor, or the process
of the current task: a task-shaped process's own task, or a task that ``as_process`` made
a process for a while, as the web layer does for each request in the server's task) and
the loop thread's Python stack, via ``sys._current_frames()``. When the heartbeat runs
again, the step is over: the heartbeat logs the report, with its measured duration, and
passes it to the ``long_schedule`` instrument hooks.

The thread is C's (``_watchman.c``): it reads the heartbeat's time without the GIL and takes
the GIL only to read the stack of a step that is holding the loop. A Python thread needs the
GIL merely to look at the clock, and under load the loop thread, which lets the GIL go at
every turn, wakes it again and again before it wins it (``bench/http_stack.py --watchdog
python`` against ``--watchdog c``; the figures are in docs/benchmarks.md). Where the
extension is not built (or ``BEAMISH_PURE_PYTHON`` is set), the watchdog runs the same
watch in a Python thread.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from beamish._runtime.events import event

if TYPE_CHECKING:
    from beamish._runtime._watchman import Watchman
    from beamish._runtime.runtime import Runtime

__all__ = ["LongSchedule", "Watchdog"]

_log = logging.getLogger("beamish.watchdog")
_LONG_SCHEDULE = event("beamish", "runtime", "long_schedule")


@dataclass(frozen=True, slots=True)
class LongSchedule:
    """One step that held the loop longer than the threshold."""

    pid: Any
    name: str | None
    function: str
    stack: str
    duration: float

    def __str__(self) -> str:
        who = f"process {self.pid!r}" if self.pid is not None else "code outside any process"
        if self.name:
            who += f" ({self.name})"
        return (
            f"{who} held the event loop for {self.duration * 1000:.0f} ms in {self.function}; "
            "other processes could not run meanwhile. Move blocking or CPU-bound work off the "
            "loop with `await beamish.offload(fn, *args)`.\n" + self.stack
        )


def _native_watchman() -> type[Watchman] | None:
    """The C thread (``_watchman.Watchman``), if it was built and is not disabled."""
    if os.environ.get("BEAMISH_PURE_PYTHON"):
        return None
    try:
        from beamish._runtime._watchman import Watchman
    except ImportError:
        return None
    return Watchman


class Watchdog:
    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, threshold: float,
                 *, native: bool = True):
        self._runtime = runtime
        self._loop = loop
        self.threshold = threshold
        self._interval = max(threshold / 4, 0.001)
        self._beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()
        # the step holding the loop, read by the thread: (beat before it, pid, name,
        # function, stack); the next heartbeat reports it
        self._pending: tuple[float, Any, str | None, str, str] | None = None
        watchman = _native_watchman() if native else None
        self._watchman: Any = (
            watchman(self._interval, threshold, self._late) if watchman is not None else None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports = 0

    @property
    def native(self) -> bool:
        """Whether the thread is C's (no GIL to watch) rather than Python's."""
        return self._watchman is not None

    def start(self) -> None:
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self._interval, self._heartbeat)
        if self._watchman is not None:
            self._watchman.start()
            atexit.register(self._watchman.stop)  # joined before the interpreter goes away
            return
        self._thread = threading.Thread(
            target=self._watch, name="beamish-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._watchman is not None:
            self._watchman.stop()
            atexit.unregister(self._watchman.stop)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _heartbeat(self) -> None:
        now = self._beat = time.monotonic()
        watchman = self._watchman
        if watchman is not None:
            watchman.beat()
        pending = self._pending
        if pending is not None:  # the loop runs again: the step that held it is over
            self._pending = None
            started, pid, name, function, stack = pending
            duration = max(now - started - self._interval, 0.0)
            self._report(LongSchedule(pid, name, function, stack, duration))
        if not self._stop.is_set():
            self._handle = self._loop.call_later(self._interval, self._heartbeat)

    # -- the watchdog's thread --------------------------------------------------------------

    def _last_beat(self) -> float:
        watchman = self._watchman
        return self._beat if watchman is None else float(watchman.last_beat())

    def _late(self, beat: float) -> None:
        """The heartbeat after ``beat`` is late: read what holds the loop (thread, GIL)."""
        if self._last_beat() != beat:
            return  # the loop ran meanwhile
        snapshot = self._snapshot()
        if snapshot is not None and self._last_beat() == beat:
            self._pending = (beat, *snapshot)

    def _watch(self) -> None:
        """The Python thread, where the C one is not built: ``_watchman.c``'s loop."""
        reported: float | None = None
        while not self._stop.wait(self._interval):
            beat = self._beat
            if time.monotonic() - beat > self.threshold + self._interval and beat != reported:
                reported = beat
                self._late(beat)

    def _snapshot(self) -> tuple[Any, str | None, str, str] | None:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return None
        proc = self._runtime.scheduler.current
        if proc is None:
            proc = self._runtime._process_of_task(_current_task(self._loop))
        stack = "".join(traceback.format_stack(frame, limit=30))
        pid = proc.pid if proc is not None else None
        name = proc.name if proc is not None else None
        return pid, name, _describe_frame(frame), stack

    # -- back on the loop -----------------------------------------------------------------

    def _report(self, report: LongSchedule) -> None:
        self.reports += 1
        _log.warning("long schedule: %s", report)
        if _LONG_SCHEDULE.handlers:
            _LONG_SCHEDULE.emit({"duration": report.duration}, {"report": report,
                                 "pid": report.pid})


def _current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    # asyncio keeps the running task per loop in this dict; reading one key is atomic.
    tasks: dict[Any, Any] = getattr(asyncio.tasks, "_current_tasks", {})
    return tasks.get(loop)


def _describe_frame(frame: FrameType) -> str:
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({code.co_filename}:{frame.f_lineno})"
