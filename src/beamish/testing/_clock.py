"""``VirtualClock``: a runtime clock whose time moves only when the test moves it.

How it works. The clock keeps its timers in a heap ordered by deadline, then by the order
they were set. ``advance_nowait(s)`` pops every timer due within the next ``s`` seconds and
runs its callback at once, with ``now()`` reading that timer's deadline; a timer that a
callback sets within the window is popped in its turn. ``await advance(s)`` does the same
one instant at a time and, after each, waits until every process has reacted
(``wait_until_idle``), so a process that sets a new timer when an old one fires (an idle
timeout that re-arms itself, a supervisor that restarts a child) does so at the right
virtual time. A timer due now (a delay of 0) needs no advance: it fires on the loop's next
turn, as it would on a real clock.

Everything in beamish that waits reads the runtime's clock, so with
``Runtime(clock=VirtualClock())`` receive timeouts, ``send_after``, ``sleep``, call and
``wait_exit`` timeouts, GenServer idle timeouts and supervisor restart windows all follow it.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
from collections.abc import Callable
from typing import Any

from beamish._errors import NoRuntimeError
from beamish._runtime.context import current_runtime
from beamish.testing._idle import wait_until_idle

__all__ = ["VirtualClock", "VirtualTimer"]


class VirtualTimer:
    """The handle ``VirtualClock.call_later`` returns (the runtime's ``TimerHandle``)."""

    __slots__ = ("_args", "_callback", "_cancelled", "_clock", "_context", "_when")

    def __init__(
        self, clock: VirtualClock, when: float, callback: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self._clock: VirtualClock | None = clock
        self._when = when
        self._callback: Callable[..., Any] | None = callback
        self._args = args
        self._context = contextvars.copy_context()  # as asyncio's call_later does
        self._cancelled = False

    def when(self) -> float:
        """The virtual time at which the timer fires (or would have fired)."""
        return self._when

    def cancel(self) -> None:
        """Stop the timer from firing; a no-op once it has fired or been cancelled."""
        clock = self._clock
        if clock is not None:
            self._done()
            self._cancelled = True
            clock._live -= 1

    def cancelled(self) -> bool:
        """True if the timer was cancelled before it fired."""
        return self._cancelled

    def _done(self) -> None:
        self._clock = None
        self._callback = None
        self._args = ()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "pending" if self._clock else "fired"
        return f"<VirtualTimer when={self._when} {state}>"


class VirtualClock:
    """A ``Clock`` for tests: virtual seconds that pass only when the test advances them.

    Give it to a runtime and move time explicitly::

        clock = VirtualClock()
        async with beamish.Runtime(clock=clock):
            ...
            await clock.advance(30)    # 30 seconds pass at once; processes react

    In a pytest test, ask for the ``virtual_clock`` fixture (or mark the test
    ``@pytest.mark.beamish(clock="virtual")`` and use ``runtime.clock``).

    Time never passes by itself: code that waits for it (``beamish.sleep(1)``, a receive
    with a timeout and no message) waits until something advances the clock. Only timers
    due now fire without an advance. ``assert_receive`` and ``refute_receive`` know this and
    do not wait on a virtual clock: they look once the node is idle.
    """

    __slots__ = ("_busy", "_firing", "_heap", "_live", "_loop", "_now", "_seq", "_soon")

    def __init__(self, *, start: float = 0.0) -> None:
        if isinstance(start, bool) or not isinstance(start, int | float) or not (
            math.isfinite(start)
        ):
            raise ValueError(f"VirtualClock(start=...) needs a finite number, got {start!r}")
        self._now = float(start)
        self._heap: list[tuple[float, int, VirtualTimer]] = []
        self._seq = 0
        self._live = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon = False
        self._busy = False  # an advance is in progress
        self._firing = False  # timer callbacks are running

    # -- the Clock protocol -------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the runtime's loop (due-now timers fire on it). Called at start."""
        if self._loop is not None and self._loop is not loop and not self._loop.is_closed():
            raise RuntimeError(
                "this VirtualClock is already bound to another running event loop; give "
                "each runtime its own VirtualClock (two runtimes on one loop may share one)"
            )
        self._loop = loop

    def now(self) -> float:
        """The virtual time in seconds."""
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> VirtualTimer:
        """Call ``callback(*args)`` once the clock reaches ``now() + delay``."""
        delay = float(delay)
        when = self._now + delay if delay > 0 else self._now  # NaN counts as 0, as "now"
        timer = VirtualTimer(self, when, callback, args)
        self._seq += 1
        if len(self._heap) > 64 and self._live < len(self._heap) // 2:  # mostly cancelled
            self._heap = [entry for entry in self._heap if entry[2]._clock is not None]
            heapq.heapify(self._heap)
        heapq.heappush(self._heap, (when, self._seq, timer))
        self._live += 1
        if when <= self._now and self._loop is not None and not self._soon:
            self._soon = True
            self._loop.call_soon(self._fire_due)
        return timer

    # -- moving time ----------------------------------------------------------------------

    def advance_nowait(self, seconds: float) -> None:
        """Move time ``seconds`` forward and fire, in order, every timer due by then.

        The callbacks run here and now, each with ``now()`` reading its own deadline; timers
        they set that fall within the window fire too. Processes woken by them run only
        once the caller lets the loop turn: use ``await advance(seconds)`` to let them react
        between timers (a timer they set late in the window then fires within it).
        """
        target = self._target(seconds, "advance_nowait")
        self._check_loop()
        self._busy = True
        try:
            self._fire_until(target)
            self._now = max(self._now, target)
        finally:
            self._busy = False

    async def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, letting processes react to each timer that fires.

        First waits until the node is idle (so messages already sent are handled and the
        timers they set are set), then repeatedly moves to the next deadline within the
        window, fires every timer due then, and waits until idle again. Returns with
        ``now()`` at the end of the window and the node idle.
        """
        target = self._target(seconds, "advance")
        self._check_loop()
        self._busy = True
        try:
            await _settle()
            while True:
                when = self.next_deadline()
                if when is None or when > target:
                    break
                self._fire_until(when)
                await _settle()
            self._now = max(self._now, target)
            await _settle()
        finally:
            self._busy = False

    # -- introspection --------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the earliest pending timer fires, or None if there is none."""
        heap = self._heap
        while heap and heap[0][2]._clock is None:  # fired or cancelled
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    @property
    def pending_timers(self) -> int:
        """How many timers are set and have not fired or been cancelled."""
        return self._live

    def __repr__(self) -> str:
        return f"<VirtualClock now={self._now} pending_timers={self._live}>"

    # -- inside ---------------------------------------------------------------------------

    def _target(self, seconds: float, what: str) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            math.isfinite(seconds) and seconds >= 0
        ):
            raise ValueError(
                f"VirtualClock.{what}() needs a finite number of seconds >= 0, got {seconds!r}"
            )
        if self._busy or self._firing:
            raise RuntimeError(
                f"VirtualClock.{what}() was called while the clock is already being advanced "
                "(from a timer callback, or from another task during `await advance()`); "
                "advance it from one place, one step at a time"
            )
        return self._now + seconds

    def _check_loop(self) -> None:
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is not self._loop:
            raise RuntimeError(
                "advance the VirtualClock from the event loop of the runtime that uses it"
            )

    def _fire_due(self) -> None:
        # a loop callback, so never nested in _fire_until; harmless during `await advance()`
        self._soon = False
        self._fire_until(self._now)

    def _fire_until(self, target: float) -> None:
        self._firing = True
        try:
            while self._heap and self._heap[0][0] <= target:
                when, _, timer = heapq.heappop(self._heap)
                callback = timer._callback
                if callback is None:  # cancelled
                    continue
                args = timer._args
                timer._done()
                self._live -= 1
                if when > self._now:
                    self._now = when
                self._run(timer, callback, args)
        finally:
            self._firing = False

    def _run(
        self, timer: VirtualTimer, callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        try:
            timer._context.run(callback, *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop = self._loop
            if loop is None or loop.is_closed():
                raise
            loop.call_exception_handler({
                "message": f"Exception in a VirtualClock timer callback {callback!r}",
                "exception": exc,
            })


async def _settle() -> None:
    try:
        runtime = current_runtime()
    except NoRuntimeError:
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await wait_until_idle(runtime)
