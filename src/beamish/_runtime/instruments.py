"""Instrument hooks: how the layers above (telemetry, the dashboard, tests) watch the kernel.

The kernel imports nothing above itself; instead it calls the hooks attached here::

    detach = rt.instruments.attach("crash", lambda pid, reason: ...)

Events and their arguments:

- ``spawn(pid)``: a process was created;
- ``exit(pid, reason)``: a process exited, whatever the reason;
- ``crash(pid, reason)``: a process crashed, once per crash, after it was reported: an
  exception escaped it (``reason`` is a ``Crash``; the runtime logged it), or a behaviour
  reported its own abnormal exit (a GenServer, Supervisor or Agent that crashed or stopped
  with an abnormal reason, a Task that failed; ``reason`` is its exit reason). Each also
  counts in ``statistics().crashed``;
- ``long_schedule(report)``: a step held the event loop longer than the watchdog threshold
  (``report`` is a ``LongSchedule``).

Hooks run on the loop, synchronously, in the order attached. A hook that raises is detached
and the error logged: an instrument must never take the runtime down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "Instruments"]

EVENTS = ("spawn", "exit", "crash", "long_schedule")
_log = logging.getLogger("beamish.runtime")


class Instruments:
    __slots__ = ("crash", "exit", "long_schedule", "spawn")

    def __init__(self) -> None:
        self.spawn: list[Callable[..., Any]] = []
        self.exit: list[Callable[..., Any]] = []
        self.crash: list[Callable[..., Any]] = []
        self.long_schedule: list[Callable[..., Any]] = []

    def attach(self, event: str, hook: Callable[..., Any]) -> Callable[[], None]:
        """Call ``hook`` on ``event``; returns a function that detaches it."""
        if event not in EVENTS:
            raise ValueError(
                f"unknown instrument event {event!r}; the events are {', '.join(EVENTS)}"
            )
        if not callable(hook):
            raise TypeError(f"an instrument hook must be callable, got {hook!r}")
        hooks: list[Callable[..., Any]] = getattr(self, event)
        hooks.append(hook)

        def detach() -> None:
            if hook in hooks:
                hooks.remove(hook)

        return detach

    def emit(self, hooks: list[Callable[..., Any]], *args: Any) -> None:
        for hook in list(hooks):
            try:
                hook(*args)
            except Exception:
                _log.exception("instrument hook %r raised; it has been detached", hook)
                if hook in hooks:
                    hooks.remove(hook)
