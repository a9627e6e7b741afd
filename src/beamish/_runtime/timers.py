"""Timers: ``send_after``, ``cancel_timer``, ``read_timer``.

A timer sends its message when it fires, through the ordinary send path. A timer aimed at a
pid is cancelled when that process exits (as on the BEAM); one aimed at a name resolves the
name when it fires, and is dropped if nobody holds it then. The message is isolated when the
timer is set, so later changes by the sender do not show.
"""

from __future__ import annotations

from typing import Any

from beamish._runtime.clock import Clock, TimerHandle
from beamish._runtime.isolation import isolate
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Process

__all__ = ["Timers"]


class Timers:
    """The timer table of the Runtime (a mixin)."""

    _timers: dict[Ref, tuple[TimerHandle, Any, Any, float]]
    _names: dict[str, Process]
    clock: Clock

    def make_ref(self) -> Ref:
        raise NotImplementedError  # provided by Runtime

    def _deliver(self, proc: Process, message: Any) -> None:
        raise NotImplementedError  # provided by Signals

    def send_after(self, dest: Pid | str, message: Any, seconds: float) -> Ref:
        """Send ``message`` to ``dest`` after ``seconds``; returns the timer's ref."""
        if type(dest) is not Pid and type(dest) is not str:
            raise TypeError(
                f"send_after() needs a Pid or a registered name (str) as destination, "
                f"got {dest!r}"
            )
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"send_after() needs a delay in seconds >= 0, got {seconds!r}")
        ref = self.make_ref()
        deadline = self.clock.now() + seconds
        handle = self.clock.call_later(seconds, self._fire_timer, ref)
        self._timers[ref] = (handle, dest, isolate(message), deadline)
        if type(dest) is Pid:
            proc = dest._proc
            if proc is not None:
                if proc.timers is None:
                    proc.timers = set()
                proc.timers.add(ref)
        return ref

    def _fire_timer(self, ref: Ref) -> None:
        entry = self._timers.pop(ref, None)
        if entry is None:
            return
        _, dest, message, _ = entry
        proc = dest._proc if type(dest) is Pid else self._names.get(dest)
        if proc is not None and proc.pid._proc is not None:
            if proc.timers:
                proc.timers.discard(ref)
            self._deliver(proc, message)

    def cancel_timer(self, ref: Ref) -> float | None:
        """Cancel a timer; returns the seconds it had left, or None if it already fired."""
        entry = self._timers.pop(ref, None)
        if entry is None:
            return None
        handle, dest, _, deadline = entry
        handle.cancel()
        if type(dest) is Pid:
            proc = dest._proc
            if proc is not None and proc.timers:
                proc.timers.discard(ref)
        return max(0.0, deadline - self.clock.now())

    def read_timer(self, ref: Ref) -> float | None:
        """The seconds a timer has left, or None if it fired or was cancelled."""
        entry = self._timers.get(ref)
        if entry is None:
            return None
        return max(0.0, entry[3] - self.clock.now())
