"""Pure pool logic: the queue of idle connections and waiting callers, and backoff.

No process here: plain classes and functions on plain data, tested without a scheduler
(``tests/data/test_queue.py``). The pool manager process is a thin shell around
``PoolQueue``; the connection processes use ``backoff`` and ``RestartHistory``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["OVERLOADED", "PoolQueue", "RestartHistory", "Waiter", "backoff"]

C = TypeVar("C", bound=Hashable)  # a connection (its process's pid, for the manager)
W = TypeVar("W")  # what the manager answers a waiter through


class _Overloaded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OVERLOADED"


OVERLOADED = _Overloaded()
"""What ``PoolQueue.checkout`` returns when the caller must be turned away at once."""


class Waiter(Generic[W]):
    """A caller waiting for a connection: its checkout ``ref``, whom to answer, since when."""

    __slots__ = ("ref", "since", "token")

    def __init__(self, ref: Any, token: W, since: float) -> None:
        self.ref = ref
        self.token = token
        self.since = since

    def __repr__(self) -> str:
        return f"Waiter({self.ref!r}, since={self.since})"


class PoolQueue(Generic[C, W]):
    """Idle connections (most recently returned first) and waiting callers (first come,
    first served).

    - ``checkout(ref, token, now)``: an idle connection, else ``None`` (the caller now
      waits), or ``OVERLOADED`` when ``max_waiting`` callers already wait;
    - ``checkin(conn, now)``: the waiter that gets ``conn`` now, or ``None`` (it is idle);
    - ``cancel(ref)``: the caller stopped waiting;
    - ``discard(conn)``: the connection left (its process exited, or is being checked);
    - ``stale(now, interval)``: take out the connections idle for ``interval`` or longer,
      oldest first, for a health check.

    ``is_waiting(token)`` says whether a waiter still waits (a caller whose own timeout
    fired may not have cancelled yet): those are skipped and dropped, never handed a
    connection.
    """

    __slots__ = ("_idle", "_waiting", "is_waiting", "max_waiting")

    def __init__(self, max_waiting: int, is_waiting: Callable[[W], bool]) -> None:
        self.max_waiting = max_waiting
        self.is_waiting = is_waiting
        self._idle: deque[tuple[C, float]] = deque()  # oldest on the left
        self._waiting: deque[Waiter[W]] = deque()

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def idle_connections(self) -> list[C]:
        return [conn for conn, _ in self._idle]

    def checkout(self, ref: Any, token: W, now: float) -> C | _Overloaded | None:
        if self._idle:
            return self._idle.pop()[0]
        if len(self._waiting) >= self.max_waiting:
            self._drop_gone()
            if len(self._waiting) >= self.max_waiting:
                return OVERLOADED
        self._waiting.append(Waiter(ref, token, now))
        return None

    def checkin(self, conn: C, now: float) -> Waiter[W] | None:
        waiting = self._waiting
        is_waiting = self.is_waiting
        while waiting:
            waiter = waiting.popleft()
            if is_waiting(waiter.token):
                return waiter
        self._idle.append((conn, now))
        return None

    def cancel(self, ref: Any) -> bool:
        for waiter in self._waiting:
            if waiter.ref == ref:
                self._waiting.remove(waiter)
                return True
        return False

    def discard(self, conn: C) -> bool:
        for entry in self._idle:
            if entry[0] == conn:
                self._idle.remove(entry)
                return True
        return False

    def stale(self, now: float, interval: float) -> list[C]:
        found = []
        idle = self._idle
        while idle and now - idle[0][1] >= interval:
            found.append(idle.popleft()[0])
        return found

    def _drop_gone(self) -> None:
        kept = [w for w in self._waiting if self.is_waiting(w.token)]
        if len(kept) != len(self._waiting):
            self._waiting = deque(kept)


def backoff(attempt: int, minimum: float, maximum: float, rand: float) -> float:
    """Seconds to wait before try number ``attempt`` (1 = the first retry).

    Exponential (``minimum``, twice that, four times...) up to ``maximum``, with jitter:
    ``rand`` in [0, 1) picks a point in the upper half of the step, so that connections that
    failed together do not all retry at the same instant.
    """
    if attempt <= 0:
        return 0.0
    step = min(maximum, minimum * 2.0 ** min(attempt - 1, 60))
    return step * (0.5 + rand / 2)


class RestartHistory:
    """How often one connection slot's process crashed lately, to back off its restarts.

    A connection that lived ``healthy_after`` seconds or more before it crashed starts a
    new history: its replacement connects at once. One that crashed sooner makes the next
    replacement wait ``backoff(crashes - 1, ...)``: a server that accepts connections and
    then drops them cannot make the pool's supervisor restart processes in a tight loop
    (and so reach its restart intensity and take the application down).
    """

    __slots__ = ("crashes", "healthy_after")

    def __init__(self, healthy_after: float) -> None:
        self.crashes = 0
        self.healthy_after = healthy_after

    def crashed(self, lived: float) -> None:
        self.crashes = 1 if lived >= self.healthy_after else self.crashes + 1

    def delay(self, minimum: float, maximum: float, rand: float) -> float:
        """How long the next process of the slot waits before it connects."""
        return backoff(self.crashes - 1, minimum, maximum, rand)
