"""The in-flight table the sweeper walks, pure: ticks, deadlines, kills, watches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from beamish.web._inflight import InFlight, ticks_for


@dataclass(eq=False)
class Req:
    born: int
    deadline: int = 0
    stopping: int = 0
    watched: bool = False


def start(table: InFlight, key: int, timeout_ticks: int = 0) -> Req:
    entry = Req(table.now, table.now + timeout_ticks if timeout_ticks else 0)
    table.add(key, entry)
    return entry


def test_ticks_for_is_never_early():
    assert ticks_for(0.3, 0.1) == 4
    assert ticks_for(0.25, 0.1) == 4
    assert ticks_for(0.0, 0.1) == 1
    with pytest.raises(ValueError, match=">= 0"):
        ticks_for(-1, 0.1)


def test_inflight_stops_a_request_at_its_deadline_then_kills_it():
    table: InFlight[Req] = InFlight()
    req = start(table, 1, timeout_ticks=3)
    for _ in range(2):
        found = table.sweep(None)
        assert not found.stop
    found = table.sweep(None)  # tick 3: born at 0, deadline 3
    assert found.stop == [req] and req.stopping == 3
    found = table.sweep(None)
    assert found.kill == [req] and not found.stop
    table.remove(1)
    assert len(table) == 0


def test_inflight_young_requests_cost_nothing_to_sweep():
    table: InFlight[Req] = InFlight()
    table.sweep(None)
    table.sweep(None)
    old = start(table, 1)
    table.sweep(None)
    young = [start(table, k) for k in range(2, 1000)]
    table.sweep(None)  # tick 4: only the request born at 2 has lived a full tick
    assert list(table.old.values()) == [old]
    assert len(table.young) == len(young)


def test_inflight_remove_finds_young_and_old():
    table: InFlight[Req] = InFlight()
    a = start(table, 1)
    for _ in range(3):
        table.sweep(None)
    b = start(table, 2)
    assert table.remove(1) is a
    assert table.remove(2) is b
    assert table.remove(3) is None


def test_inflight_watches_long_requests_once_they_are_old_enough():
    table: InFlight[Req] = InFlight()
    req = start(table, 1)
    seen = [bool(table.sweep(watch_after=5).watch) for _ in range(6)]
    assert seen == [False, False, False, False, True, True]  # until it is watched
    req.watched = True
    assert not table.sweep(watch_after=5).watch


def test_inflight_requests_without_deadline_are_never_stopped():
    table: InFlight[Req] = InFlight()
    start(table, 1)
    for _ in range(100):
        found = table.sweep(None)
        assert not found.stop and not found.kill


def test_inflight_entries_oldest_first():
    table: InFlight[Req] = InFlight()
    a = start(table, 1)
    for _ in range(3):
        table.sweep(None)
    b = start(table, 2)
    assert table.entries() == [a, b]
