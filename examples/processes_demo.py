"""The beamish process demo: cheap processes, messages, links, and a crash that stays put.

Run it with ``make run`` (or ``python examples/processes_demo.py``).
"""

from __future__ import annotations

import logging
import time

import beamish
from beamish import Actor, Crash, Down, Exit, receive, send, spawn


class Counter(Actor):
    """An actor: a process that costs no coroutine while it waits."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: object) -> None:
        match message:
            case "increment":
                self.count += 1
            case ("get", reply_to):
                send(reply_to, ("count", self.count))
            case "crash":
                raise RuntimeError("the counter was asked to crash")


async def worker(name: str) -> None:
    """A task-shaped process with a receive loop."""
    while True:
        match await receive():
            case ("work", n, reply_to):
                send(reply_to, ("done", name, n * n))
            case "stop":
                return


async def guardian(child_name: str, owner: beamish.Pid) -> None:
    """A hand-written supervisor in a few lines: trap exits, restart the crashed child, and
    tell the owner each time the child is up under its name."""
    beamish.trap_exit(True)
    child = beamish.spawn_link(worker, child_name)
    beamish.register(child_name, child)
    send(owner, ("up", child_name))
    while True:
        match await receive():
            case Exit(pid, Crash(exc)) if pid == child:
                print(f"   guardian: {child_name} crashed ({exc!r}); restarting it")
                child = beamish.spawn_link(worker, child_name)
                beamish.register(child_name, child)
                send(owner, ("up", child_name))
            case "stop":
                return


async def main() -> None:
    print("1. A hundred thousand processes")
    started = time.perf_counter()
    counters = []
    for _ in range(10):  # in chunks, letting the loop breathe: no step holds it long
        counters.extend(spawn(Counter()) for _ in range(10_000))
        await beamish.sleep(0)
    elapsed = time.perf_counter() - started
    memory = beamish.process_info(counters[0]).memory  # type: ignore[union-attr]
    print(f"   spawned {len(counters):,} actors in {elapsed:.2f}s (~{memory} bytes each)")
    for pid in counters:
        send(pid, "increment")
    send(counters[-1], ("get", beamish.self()))
    print(f"   the last one says: {await receive(('count', int), timeout=5)}")
    for pid in counters:
        beamish.exit(pid, "kill")

    print("2. A crash does not spread")
    a, b = spawn(Counter()), spawn(Counter())
    watch = beamish.monitor(a)
    send(a, "crash")
    down = await receive(Down, timeout=1)
    send(b, "increment")
    send(b, ("get", beamish.self()))
    print(f"   {a} died with {down.reason!r}; {b} carries on: {await receive(timeout=1)}")
    del watch

    print("3. Linked processes fall together, unless one traps exits")
    x = spawn(worker, "x")
    beamish.trap_exit(True)
    beamish.link(x)
    y = spawn(Counter())
    beamish.exit(y, "kill")  # unlinked: nothing happens to us
    beamish.exit(x, "boom")  # linked: we get an Exit message because we trap exits
    print(f"   we trapped: {await receive(Exit, timeout=1)!r}")

    print("4. A guardian restarts its crashed child")
    g = spawn(guardian, "squarer", beamish.self())
    await receive(("up", "squarer"), timeout=1)
    send("squarer", ("work", 7, beamish.self()))
    print(f"   {await receive(timeout=1)}")
    send("squarer", ("work", "seven", beamish.self()))  # "seven" * "seven" raises
    await receive(("up", "squarer"), timeout=1)  # restarted, and registered again
    send("squarer", ("work", 8, beamish.self()))
    print(f"   after the restart: {await receive(timeout=1)}")
    send(g, "stop")

    stats = beamish.statistics()
    print(
        f"5. Node statistics: {stats.spawned:,} spawned, {stats.exited:,} exited, "
        f"{stats.crashed} crashed (and logged), {stats.process_count} alive"
    )


class OneLine(logging.Formatter):
    """Crash reports carry a traceback; the demo shows their first line only."""

    def formatException(self, ei: object) -> str:
        return ""


if __name__ == "__main__":
    handler = logging.StreamHandler()
    handler.setFormatter(OneLine("   [log] %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    beamish.run(main)
