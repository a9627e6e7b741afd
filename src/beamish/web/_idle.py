"""Watching many connections for silence with one timer.

A WebSocket connection's process closes it after ``timeout`` seconds without a frame from
the client (Phoenix's ``timeout``, cowboy's ``idle_timeout``). A timer of its own per
connection (``send_after``, re-armed each time it fires) would hold a timer handle, a ref,
an entry in the runtime's timer table and the process's set of timers: some 600 bytes for
each of 10,000 idle connections. An ``IdleTicker`` watches every connection of one runtime
that has the same ``timeout`` with one timer instead: each ``timeout / 4`` seconds (15 s at
the most) it sends its ``message`` to each process it watches, which compares its own time
of the last frame and closes a connection that has been quiet for ``timeout``. A quiet
connection is thus closed between ``timeout`` and 1.25 x ``timeout`` after its last frame,
and each watched connection costs one entry in a set. The ticker only sends messages: each
process decides for itself, from its own state (the WebSocket's process also gives back its
mailbox then, as Phoenix's ``hibernate_after`` of 15 s does).

``watch(runtime, pid, timeout, message)`` starts watching; ``unwatch`` stops (a process that
has exited is dropped at the next tick anyway). The ticker's timer runs only while it
watches something.
"""

from __future__ import annotations

import weakref
from typing import Any

from beamish._runtime.pid import Pid

__all__ = ["MAX_PERIOD", "IdleTicker", "unwatch", "watch"]

_TICKS_PER_TIMEOUT = 4
_MIN_PERIOD = 0.01
MAX_PERIOD = 15.0  # seconds: each watched process hears from the ticker at least this often

_tickers: weakref.WeakKeyDictionary[Any, dict[tuple[float, Any], IdleTicker]] = (
    weakref.WeakKeyDictionary()
)


class IdleTicker:
    """Sends ``message`` to every watched pid each ``timeout / 4`` seconds, 15 s at the most
    (module doc)."""

    __slots__ = ("_handle", "_runtime", "message", "period", "pids", "timeout")

    def __init__(self, runtime: Any, timeout: float, message: Any) -> None:
        # weakly: the table of tickers is keyed weakly by runtime, and a value that held its
        # key would keep every runtime (a test's, say) alive for good
        self._runtime = weakref.ref(runtime)
        self.timeout = timeout
        self.period = min(max(timeout / _TICKS_PER_TIMEOUT, _MIN_PERIOD), MAX_PERIOD)
        self.message = message
        self.pids: set[Pid] = set()
        self._handle: Any = None

    def __repr__(self) -> str:
        return f"<IdleTicker every {self.period:g}s, watching {len(self.pids)}>"

    @property
    def runtime(self) -> Any:
        return self._runtime()

    def add(self, pid: Pid) -> None:
        self.pids.add(pid)
        if self._handle is None:
            self._handle = self.runtime.clock.call_later(self.period, self._tick)

    def _tick(self) -> None:
        self._handle = None
        runtime = self._runtime()
        pids = self.pids
        if runtime is None:  # gone: nothing to watch for
            pids.clear()
            return
        deliver = runtime._deliver
        message = self.message
        gone = []
        for pid in pids:
            proc = pid._proc
            if proc is None:
                gone.append(pid)
            else:
                deliver(proc, message)  # queued: nothing runs until the scheduler's tick
        for pid in gone:
            pids.discard(pid)
        if pids and runtime.running:
            self._handle = runtime.clock.call_later(self.period, self._tick)


def watch(runtime: Any, pid: Pid, timeout: float, message: Any) -> None:
    """Send ``message`` to ``pid`` every ``timeout / 4`` seconds (15 s at the most), on
    ``runtime``'s clock, with every other pid watched with the same timeout and message."""
    by_key = _tickers.get(runtime)
    if by_key is None:
        by_key = _tickers[runtime] = {}
    key = (timeout, message)
    ticker = by_key.get(key)
    if ticker is None:
        ticker = by_key[key] = IdleTicker(runtime, timeout, message)
    ticker.add(pid)


def unwatch(runtime: Any, pid: Pid, timeout: float, message: Any) -> None:
    """Stop watching ``pid`` (nothing if it is not watched)."""
    by_key = _tickers.get(runtime)
    ticker = by_key.get((timeout, message)) if by_key is not None else None
    if ticker is not None:
        ticker.pids.discard(pid)
