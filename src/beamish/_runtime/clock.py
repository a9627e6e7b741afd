"""Time, as the runtime sees it.

Every timeout in beamish (receive, timers, calls, restart windows) reads ``clock.now()`` and
waits with ``clock.call_later()``. The real clock is the event loop's monotonic clock; the
testing clock (``beamish.testing.VirtualClock``) moves only when a test advances it.
Times are in seconds, as everywhere in Python's asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "RealClock", "TimerHandle"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...

    def when(self) -> float: ...


class Clock(Protocol):
    """What the runtime needs from a clock."""

    def now(self) -> float:
        """Monotonic time in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Call ``callback(*args)`` on the loop after ``delay`` seconds."""
        ...

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the runtime's event loop (called once, at runtime start)."""
        ...


class RealClock:
    """The event loop's own clock."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        assert self._loop is not None, "RealClock used before the runtime started"
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        assert self._loop is not None, "RealClock used before the runtime started"
        return self._loop.call_later(delay, callback, *args)
