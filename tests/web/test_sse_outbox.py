"""One connection's queue: bounded by count and bytes, woken once, dropped whole (pure)."""

from __future__ import annotations

from beamish.web._sse_log import SSEEvent
from beamish.web._sse_outbox import Outbox

EPOCH = "0123456789abcdef"


def event(seq, size=10):
    return SSEEvent(EPOCH, seq, "t", None, b"x" * size)


def outbox(max_events=100, max_bytes=10_000):
    wakes = []
    return Outbox(lambda: wakes.append(1), max_events=max_events, max_bytes=max_bytes), wakes


def test_a_waiting_connection_is_woken_once_not_per_event():
    box, wakes = outbox()
    assert box.offer(event(1))
    assert wakes == []  # not waiting: it will look by itself
    box.waiting = True
    for i in range(2, 50):
        assert box.offer(event(i))
    assert wakes == [1]
    assert box.events == 49 and box.bytes == sum(len(event(i).wire) for i in range(1, 50))


def test_take_coalesces_whole_events_up_to_a_limit_and_they_count_until_written():
    box, _ = outbox()
    for i in range(1, 6):
        box.offer(event(i))
    size = len(event(1).wire)
    chunk, count = box.take(size * 2 + 1)
    assert count == 2 and chunk == event(1).wire + event(2).wire
    assert box.events == 5  # still counted: being written
    box.written(count, len(chunk))
    assert box.events == 3 and box.bytes == 3 * size
    big = event(9, size=5000)
    box.offer(big)
    chunks = [box.take(size * 10) for _ in range(2)]
    assert chunks[0] == (event(3).wire + event(4).wire + event(5).wire, 3)
    assert chunks[1] == (big.wire, 1)  # alone, even past the limit
    assert box.take(100) is None


def test_an_offer_past_the_count_drops_everything_and_refuses_more():
    box, wakes = outbox(max_events=3)
    for i in range(1, 4):
        assert box.offer(event(i))
    assert not box.offer(event(4))
    assert box.overflow == (3, 3 * len(event(1).wire))
    assert box.closed and box.events == 0 and box.bytes == 0 and box.take(100) is None
    assert wakes == [1]  # woken to end the stream, waiting or not
    assert not box.offer(event(5)) and wakes == [1]
    assert box.peak_events == 3


def test_an_offer_past_the_bytes_overflows_and_the_chunk_in_flight_counts():
    size = len(event(1).wire)
    box, _ = outbox(max_bytes=3 * size)
    box.offer(event(1))
    box.offer(event(2))
    chunk, count = box.take(10_000)  # being written: it still takes room
    box.offer(event(3))
    assert not box.offer(event(4))
    assert box.overflow == (3, 3 * size)
    box.written(count, len(chunk))  # a write that ends after the drop changes nothing
    assert box.events == 0 and box.bytes == 0 and box.peak_bytes == 3 * size
