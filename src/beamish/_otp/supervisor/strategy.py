"""Pure supervisor logic: restart decisions, strategies and restart intensity.

No process here: plain functions on plain data, tested without a scheduler.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from beamish._runtime.messages import is_clean_exit

__all__ = ["STRATEGIES", "Intensity", "affected", "should_restart"]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")


def should_restart(restart: str, reason: Any) -> bool:
    """Whether a child with restart type ``restart`` that exited with ``reason`` restarts."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not is_clean_exit(reason)
    return False


def affected(strategy: str, ids: Sequence[Any], failed: Any) -> list[Any]:
    """The children (in start order) that a failure of ``failed`` restarts."""
    if strategy == "one_for_one":
        return [failed]
    if strategy == "one_for_all":
        return list(ids)
    if strategy == "rest_for_one":
        index = list(ids).index(failed)
        return list(ids[index:])
    raise ValueError(f"unknown strategy {strategy!r}")


class Intensity:
    """At most ``max_restarts`` restarts within any ``max_seconds`` window.

    ``add(now)`` records a restart and returns False once the limit is exceeded.
    Restarts older than the window are forgotten (the window slides).
    """

    __slots__ = ("_times", "max_restarts", "max_seconds")

    def __init__(self, max_restarts: int, max_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        times = self._times
        times.append(now)
        while times and now - times[0] > self.max_seconds:  # OTP keeps now - t <= period
            times.popleft()
        return len(times) <= self.max_restarts

    def __len__(self) -> int:
        return len(self._times)
