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
again, the step is over; the report, with its measured duration, is handed to the loop,
which logs it and passes it to the ``long_schedule`` instrument hooks.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from beamish._runtime.events import event

if TYPE_CHECKING:
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


class Watchdog:
    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, threshold: float):
        self._runtime = runtime
        self._loop = loop
        self.threshold = threshold
        self._interval = max(threshold / 4, 0.001)
        self._beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()
        self.reports = 0

    def start(self) -> None:
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self._interval, self._heartbeat)
        self._thread = threading.Thread(
            target=self._watch, name="beamish-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set():
            self._handle = self._loop.call_later(self._interval, self._heartbeat)

    # -- the watchdog thread ----------------------------------------------------------------

    def _watch(self) -> None:
        pending: tuple[float, Any, str | None, str, str] | None = None
        while not self._stop.wait(self._interval):
            beat = self._beat
            now = time.monotonic()
            if pending is not None:
                if beat != pending[0]:  # the loop ran again: the step is over
                    started, pid, name, function, stack = pending
                    duration = beat - started - self._interval
                    report = LongSchedule(pid, name, function, stack, max(duration, 0.0))
                    pending = None
                    try:
                        self._loop.call_soon_threadsafe(self._report, report)
                    except RuntimeError:  # loop closed
                        return
                continue
            if now - beat > self.threshold + self._interval:
                snapshot = self._snapshot()
                if snapshot is not None and self._beat == beat:
                    pending = (beat, *snapshot)

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
