"""The pool's pure core: the queue of idle connections and waiters, backoff, restart history."""

from __future__ import annotations

import pytest

from beamish.data._queue import OVERLOADED, PoolQueue, RestartHistory, backoff


class Token:
    def __init__(self) -> None:
        self.active = True


def queue(max_waiting: int = 10) -> PoolQueue:
    return PoolQueue(max_waiting, lambda token: token.active)


def test_checkout_takes_the_most_recently_returned_connection():
    q = queue()
    assert q.checkin("a", 0.0) is None
    assert q.checkin("b", 1.0) is None
    assert q.idle == 2
    assert q.checkout(1, Token(), 2.0) == "b"
    assert q.checkout(2, Token(), 2.0) == "a"
    assert q.idle == 0


def test_waiters_are_served_first_come_first_served():
    q = queue()
    first, second = Token(), Token()
    assert q.checkout("r1", first, 0.0) is None
    assert q.checkout("r2", second, 1.0) is None
    assert q.waiting == 2
    got = q.checkin("conn", 2.0)
    assert (got.ref, got.token, got.since) == ("r1", first, 0.0)
    assert q.checkin("conn", 3.0).token is second
    assert q.checkin("conn", 4.0) is None and q.idle == 1


def test_a_waiter_that_stopped_waiting_is_skipped():
    q = queue()
    gone, live = Token(), Token()
    q.checkout("r1", gone, 0.0)
    q.checkout("r2", live, 0.0)
    gone.active = False
    assert q.checkin("conn", 1.0).token is live
    assert q.waiting == 0


def test_cancel_removes_a_waiter():
    q = queue()
    q.checkout("r1", Token(), 0.0)
    assert q.cancel("r1") is True
    assert q.cancel("r1") is False
    assert q.checkin("conn", 1.0) is None


def test_a_full_queue_sheds_load_at_once():
    q = queue(max_waiting=2)
    tokens = [Token(), Token()]
    assert q.checkout("r1", tokens[0], 0.0) is None
    assert q.checkout("r2", tokens[1], 0.0) is None
    assert q.checkout("r3", Token(), 0.0) is OVERLOADED
    tokens[0].active = False  # one gave up: its place is free again
    assert q.checkout("r4", Token(), 0.0) is None
    assert q.waiting == 2


def test_max_waiting_zero_never_queues():
    q = queue(max_waiting=0)
    assert q.checkout("r", Token(), 0.0) is OVERLOADED
    q.checkin("conn", 0.0)
    assert q.checkout("r", Token(), 0.0) == "conn"


def test_discard_and_stale():
    q = queue()
    for i, name in enumerate("abc"):
        q.checkin(name, float(i))
    assert q.discard("b") is True and q.discard("b") is False
    assert q.stale(now=2.5, interval=2.0) == ["a"]  # idle 2.5 s; c only 0.5 s
    assert q.idle_connections() == ["c"]
    assert q.stale(now=10.0, interval=2.0) == ["c"]
    assert q.idle == 0


@pytest.mark.parametrize(("attempt", "low", "high"), [
    (0, 0.0, 0.0), (1, 0.05, 0.1), (2, 0.1, 0.2), (3, 0.2, 0.4), (10, 1.0, 2.0), (500, 1.0, 2.0),
])
def test_backoff_is_exponential_capped_and_jittered(attempt, low, high):
    assert backoff(attempt, 0.1, 2.0, 0.0) == pytest.approx(low)
    assert backoff(attempt, 0.1, 2.0, 0.999999) == pytest.approx(high, rel=1e-5)


def test_restart_history_backs_off_only_a_crash_loop():
    history = RestartHistory(healthy_after=5.0)
    history.crashed(lived=60.0)  # a connection that lived: its replacement connects at once
    assert history.delay(0.1, 2.0, 0.0) == 0.0
    history.crashed(lived=0.2)  # and then crashed quickly again: wait
    assert history.delay(0.1, 2.0, 0.0) == pytest.approx(0.05)
    history.crashed(lived=0.2)
    assert history.delay(0.1, 2.0, 0.0) == pytest.approx(0.1)
    history.crashed(lived=30.0)
    assert history.delay(0.1, 2.0, 0.0) == 0.0
