"""Registry benchmarks: the read paths PubSub relies on, by registry kind and partitions.

Usage::

    .venv/bin/python bench/registry.py            # 10,000 entries under one key
    .venv/bin/python bench/registry.py --quick    # 1,000 entries, fewer rounds

For each kind (``"duplicate"``, partitioned by owner pid as in Elixir, and
``("duplicate", "key")``) and 1 or 8 partitions, N actor processes each register once under
one hot key (and under a key of their own), then the script times, in the calling process:

- ``lookup`` of the hot key (N entries) and of a cold key (1 entry);
- ``dispatch`` of the hot key with a callback that does nothing (the registry's own cost)
  and with one that sends a message to every entry (a broadcast; sending dominates);
- ``register`` + ``unregister`` of one key by the caller.

Figures are the best of several rounds, in microseconds per call.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import beamish
from beamish import Actor, Registry, send


class Subscriber(Actor):
    def __init__(self, registry: str, index: int) -> None:
        self.registry = registry
        self.index = index

    def started(self) -> None:
        Registry.register(self.registry, "hot", None)
        Registry.register(self.registry, ("cold", self.index), None)

    def handle(self, message: Any) -> None:
        pass


def best_of(rounds: int, calls: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def measure(keys: Any, partitions: int, n: int, rounds: int) -> dict[str, float]:
    name = f"bench{partitions}{keys!r}"
    registry = await Registry.start_link(keys=keys, name=name, partitions=partitions)
    subscribers = [beamish.spawn(Subscriber(name, i)) for i in range(n)]
    while Registry.count(name) < 2 * n:
        await beamish.sleep(0.001)
    assert len(Registry.lookup(name, "hot")) == n

    def noop(entries: list[Any]) -> None:
        pass

    def broadcast(entries: list[Any]) -> None:
        for pid, _ in entries:
            send(pid, "event")

    def register_unregister() -> None:
        Registry.register(name, "mine", None)
        Registry.unregister(name, "mine")

    calls = max(1, 200_000 // n)
    results = {
        "lookup hot": best_of(rounds, calls, lambda: Registry.lookup(name, "hot")),
        "lookup cold": best_of(rounds, 20_000, lambda: Registry.lookup(name, ("cold", 7))),
        "dispatch hot (no-op fn)": best_of(
            rounds, calls, lambda: Registry.dispatch(name, "hot", noop)
        ),
        "dispatch cold (no-op fn)": best_of(
            rounds, 20_000, lambda: Registry.dispatch(name, ("cold", 7), noop)
        ),
        "register+unregister": best_of(rounds, 20_000, register_unregister),
    }
    broadcasts = []
    for _ in range(rounds):
        start = time.perf_counter()
        Registry.dispatch(name, "hot", broadcast)
        broadcasts.append(time.perf_counter() - start)
        await beamish.sleep(0.05)  # let the subscribers drain their mailboxes
    results["dispatch hot (send to each)"] = min(broadcasts) * 1e6
    for pid in subscribers:
        beamish.exit(pid, "kill")
    beamish.unlink(registry)
    beamish.exit(registry, "shutdown")
    await beamish.wait_exit(registry)
    return results


async def main(n: int, rounds: int) -> None:
    configs = [
        ("duplicate", 1),
        ("duplicate", 8),
        (("duplicate", "key"), 1),
        (("duplicate", "key"), 8),
    ]
    table = {}
    for keys, partitions in configs:
        table[(keys, partitions)] = await measure(keys, partitions, n, rounds)
    rows = list(next(iter(table.values())))
    header = f"{'µs per call, N = ' + format(n, ','):32}" + "".join(
        f"{str(k) + ' x' + str(p):>26}" for k, p in configs
    )
    print(f"Python {sys.version.split()[0]}")
    print(header)
    for row in rows:
        print(f"{row:32}" + "".join(f"{table[c][row]:>26.2f}" for c in configs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 entries, 3 rounds")
    args = parser.parse_args()
    beamish.run(main, 1_000 if args.quick else 10_000, 3 if args.quick else 7, long_schedule=None)
