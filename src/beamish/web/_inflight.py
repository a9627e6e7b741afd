"""The requests in flight, swept for deadlines and for long-running ones: pure, no clock.

Time is counted in *ticks*. The endpoint's sweeper advances the table by one tick every
``tick`` seconds (0.1 by default); a request records the tick it started at and the tick it
expires at. Starting a request therefore reads an int and stores the request in a dict: no
timer and no clock call per request.

Two dicts. ``young`` holds every request, in start order. A sweep moves those that have
lived at least one full tick to ``old``, stopping at the first younger one, so a sweep
costs the requests that grew old, not all those in flight. ``old`` is walked whole at each
sweep, but holds only requests that outlived a tick: slow handlers and streams.

A sweep answers three lists: requests past their deadline to ask to stop, requests asked at
an earlier sweep that are still there (to kill), and requests that have run for
``watch_after`` ticks without a disconnect watch (to watch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

__all__ = ["Entry", "InFlight", "Sweep", "ticks_for"]


class Entry(Protocol):
    """What the table needs of a request."""

    born: int  # the tick it started at
    deadline: int  # the tick at which it expires (0: never)
    stopping: int  # 0 while running; else the tick at which it was asked to stop
    watched: bool  # a disconnect watch runs for it


E = TypeVar("E", bound=Entry)


def ticks_for(seconds: float, tick: float) -> int:
    """Ticks to wait so that at least ``seconds`` have passed, whenever in a tick one starts.

    A request born during tick ``b`` has lived at least ``(t - b - 1) * tick`` seconds at
    tick ``t``; so it expires at ``b + ceil(seconds / tick) + 1``: never early, and at most
    two ticks late.
    """
    if seconds < 0:
        raise ValueError(f"a timeout must be >= 0 seconds, got {seconds!r}")
    return math.ceil(round(seconds / tick, 9)) + 1


@dataclass(slots=True)
class Sweep(Generic[E]):
    """What one sweep found: to stop (past deadline), to kill (still there), to watch."""

    stop: list[E] = field(default_factory=list)
    kill: list[E] = field(default_factory=list)
    watch: list[E] = field(default_factory=list)


class InFlight(Generic[E]):
    """The requests in flight, by key, for the sweeper."""

    __slots__ = ("now", "old", "young")

    def __init__(self) -> None:
        self.now = 0
        self.young: dict[int, E] = {}
        self.old: dict[int, E] = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def add(self, key: int, entry: E) -> None:
        self.young[key] = entry

    def remove(self, key: int) -> E | None:
        entry = self.young.pop(key, None)
        if entry is None:
            entry = self.old.pop(key, None)
        return entry

    def entries(self) -> list[E]:
        """Every request in flight, oldest first."""
        return [*self.old.values(), *self.young.values()]

    def sweep(self, watch_after: int | None) -> Sweep[E]:
        """Advance one tick and say what to do; ``watch_after`` in ticks (None: never)."""
        now = self.now = self.now + 1
        young, old = self.young, self.old
        grown = now - 2  # born at or before it: lived at least one full tick
        moving: list[int] = []
        for key, entry in young.items():
            if entry.born > grown:
                break
            moving.append(key)
        for key in moving:
            old[key] = young.pop(key)
        found: Sweep[E] = Sweep()
        for entry in old.values():
            if entry.stopping:
                if entry.stopping < now:
                    found.kill.append(entry)
            elif entry.deadline and entry.deadline <= now:
                entry.stopping = now
                found.stop.append(entry)
            elif (
                watch_after is not None and not entry.watched
                and now - entry.born >= watch_after
            ):
                found.watch.append(entry)
        return found
