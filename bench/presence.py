"""Presence and Tracker benchmarks: what tracking, reading and diffing cost.

Usage::

    .venv/bin/python bench/presence.py            # 1,000 presences on one topic
    .venv/bin/python bench/presence.py --quick    # 200, fewer rounds

On one node, with a Presence on a PubSub, the script measures, in the calling process:

- ``track`` + ``untrack`` of one presence (a call to the tracker's shard each, and the
  diff handed to the broadcaster);
- ``Tracker.list`` and ``Presence.list`` (grouped as ``presence_state``) of a topic with N
  presences, and ``get_by_key`` of one key among them: reads with no message;
- a diff broadcast on a topic where N channel-like processes are tracked and subscribed:
  from ``track`` until all N subscribers hold the ``presence_diff``;
- N users joining a topic one after the other (each join is broadcast to everyone there
  already: N²/2 deliveries), and the memory one tracked presence takes;
- the pure CRDT: merging a delta of N joins into another replica, and an extract of N.

Figures are the best of several rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import beamish
from beamish import Actor
from beamish.pubsub import PubSub, Tracker
from beamish.pubsub._tracker_state import TrackerState
from beamish.web import Presence


class BenchPresence(Presence, pubsub="bench"):
    pass


try:  # the Channels' dispatcher: encode a broadcast once, send the frame to each transport
    from beamish.web._fastlane import Fastlane, fastlane
    from beamish.web._serializer import V2_JSON

    class FastPresence(Presence, pubsub="bench", dispatcher=fastlane):
        pass
except ImportError:  # pragma: no cover - before the Channels module
    fastlane = None


class Member(Actor):
    """A channel-like process: subscribed to the topic, counting the diffs it gets."""

    def __init__(self, topic: str, counter: list[Any], as_channel: bool = False) -> None:
        self.topic = topic
        self.counter = counter  # [deliveries, target, future] shared with the bench
        self.as_channel = as_channel

    def started(self) -> None:
        if self.as_channel:  # subscribed as a joined channel is: it is its own "transport"
            PubSub.subscribe("bench", self.topic, Fastlane(self.pid, V2_JSON, frozenset()))
        else:
            PubSub.subscribe("bench", self.topic)

    def handle(self, message: Any) -> None:
        counter = self.counter
        counter[0] += 1
        if counter[0] == counter[1] and not counter[2].done():
            counter[2].set_result(None)


def best_of(rounds: int, calls: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def best_of_async(rounds: int, calls: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def wait_for(counter: list[Any], target: int) -> None:
    counter[1] = target
    if counter[0] < target:
        await counter[2]


def reset(counter: list[Any]) -> None:
    counter[0] = 0
    counter[2] = asyncio.get_running_loop().create_future()


async def main(n: int, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    await PubSub.start_link("bench")
    await BenchPresence.start_link()
    name = BenchPresence.tracker_name
    me = beamish.self()

    async def track_untrack() -> None:
        await Tracker.track(name, me, "quiet", "k", {"status": "online"})
        await Tracker.untrack(name, me, "quiet", "k")

    results["track + untrack (one presence), µs"] = await best_of_async(rounds, 500, track_untrack)

    counter: list[Any] = [0, 0, None]
    reset(counter)
    members = [beamish.spawn(Member("room", counter)) for _ in range(n)]
    gc.collect()
    start = time.perf_counter()
    for i, pid in enumerate(members):  # each join reaches everyone subscribed
        await BenchPresence.track(pid, "room", f"user{i}", {"status": "online", "i": i})
    await wait_for(counter, n * n)
    results[f"{n} users join one by one, all diffs delivered, ms"] = (
        time.perf_counter() - start
    ) * 1e3

    results[f"Tracker.list of {n}, µs"] = best_of(rounds, 20, lambda: Tracker.list(name, "room"))
    results[f"Presence.list of {n} (presence_state), µs"] = best_of(
        rounds, 20, lambda: BenchPresence.list("room")
    )
    results[f"get_by_key among {n}, µs"] = best_of(
        rounds, 2000, lambda: BenchPresence.get_by_key("room", "user7")
    )

    async def one_diff() -> None:
        reset(counter)
        await BenchPresence.track(me, "room", "visitor", {"status": "online"})
        await wait_for(counter, n)
        reset(counter)
        await BenchPresence.untrack(me, "room", "visitor")
        await wait_for(counter, n)

    per_two = await best_of_async(rounds, 20, one_diff)
    results[f"one diff to {n} subscribers, track to last delivery, µs"] = per_two / 2

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, pid in enumerate(members):
        await BenchPresence.track(pid, "memory", f"user{i}", {"status": "online", "i": i})
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    results["memory per tracked presence (tracker state), bytes"] = (after - before) / n

    a, b = TrackerState("a"), TrackerState("b")
    for i in range(n):
        a.join(f"p{i}", "room", f"user{i}", {"status": "online", "phx_ref": str(i)})
    delta = a.take_delta()
    assert delta is not None
    start = time.perf_counter()
    b.merge(delta)
    results[f"CRDT: merge a delta of {n} joins, µs"] = (time.perf_counter() - start) * 1e6
    results[f"CRDT: extract of {n}, µs"] = best_of(rounds, 5, a.extract)
    a.leave("p0", "room", "user0")
    small = a.take_delta()
    assert small is not None
    results[f"CRDT: merge a delta of 1 leave (peer holds {n}), µs"] = best_of(
        rounds, 1, lambda: b.merge(small)
    )

    for pid in members:
        beamish.exit(pid, "kill")
    if fastlane is not None:
        await FastPresence.start_link()
        reset(counter)
        channels = [beamish.spawn(Member("fast", counter, True)) for _ in range(n)]
        start = time.perf_counter()
        for i, pid in enumerate(channels):
            await FastPresence.track(pid, "fast", f"user{i}", {"status": "online", "i": i})
        await wait_for(counter, n * n)
        results[f"fastlane: {n} users join one by one, all delivered, ms"] = (
            time.perf_counter() - start
        ) * 1e3

        async def fast_diff() -> None:
            reset(counter)
            await FastPresence.track(me, "fast", "visitor", {"status": "online"})
            await wait_for(counter, n)
            reset(counter)
            await FastPresence.untrack(me, "fast", "visitor")
            await wait_for(counter, n)

        per_two = await best_of_async(rounds, 20, fast_diff)
        results[f"fastlane: one diff to {n} channels, track to last delivery, µs"] = per_two / 2
        for pid in channels:
            beamish.exit(pid, "kill")
    return results


def run(n: int, rounds: int) -> dict[str, float]:
    result: dict[str, float] = beamish.run(main, n, rounds, long_schedule=None)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 presences, fewer rounds")
    options = parser.parse_args()
    n, rounds = (200, 2) if options.quick else (1000, 5)
    print(f"Presence on one node, {n} presences on one topic (Python {sys.version.split()[0]})")
    for label, value in run(n, rounds).items():
        print(f"  {label:<62} {value:>12,.1f}")
