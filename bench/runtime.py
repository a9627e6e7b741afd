"""Runtime benchmarks: beamish's two process shapes against naive asyncio and Pykka.

Usage::

    .venv/bin/python bench/runtime.py              # full run, plain-text table
    .venv/bin/python bench/runtime.py --markdown   # the same, as Markdown
    .venv/bin/python bench/runtime.py --quick      # scaled-down smoke run (under a minute)

Every measurement runs in a fresh subprocess of this script, so memory figures start from a
clean interpreter and a crash stays contained. Throughput workloads run several times (each
in its own subprocess) and the median is reported.

Implementations:

- beamish (actor): ``spawn(SomeActor())``, a callback per message, no coroutine while idle;
- beamish (task): ``spawn(async_fn)`` with an ``await receive()`` loop;
- naive asyncio: one ``asyncio.Task`` and one ``asyncio.Queue`` per actor, on uvloop, with
  CPython's default garbage-collector settings (the queue is the actor's address);
- Pykka: ``pykka.ThreadingActor``, one OS thread per actor, messages sent with ``tell``;
  it runs scaled-down sizes (``FULL`` below), and rates are compared per second;
- the BEAM: OTP's ``erl`` on the same workloads (``bench/erlang/local_bench.erl``), on one
  scheduler (``+S 1``, the anchor every row is also compared with) and on every core.

Workloads:

- spawn idle: spawn N processes that each wait for a message; time until all are waiting,
  and bytes per process (resident set growth, and in a separate run tracemalloc's count);
- ping-pong: two processes exchange N round trips; also, for the actor shape, the same with
  the per-item tuple check of the isolation policy skipped, to price that check;
- fan-in: S senders each send M messages to one receiver;
- ring: R processes in a ring pass one token around L laps.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pykka
import uvloop
from _beam import SCHEDULERS, beam_run, beam_version
from _report import cpu_model, load_average
from _report import report as report_table

import beamish
from beamish import Actor, Pid, receive, send, spawn

DESCRIPTION = "Runtime benchmarks: beamish's process shapes against naive asyncio and Pykka."
Result = dict[str, float]

# -- shared helpers -----------------------------------------------------------------------


def rss_bytes() -> int:
    """The resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


class MemoryProbe:
    """Memory grown since the probe was made: resident set size, or tracemalloc's count."""

    def __init__(self, traced: bool) -> None:
        self.traced = traced
        gc.collect()
        if traced:
            tracemalloc.start()
        self.base = self._now()

    def _now(self) -> int:
        return tracemalloc.get_traced_memory()[0] if self.traced else rss_bytes()

    def grown(self) -> int:
        gc.collect()
        grown = self._now() - self.base
        if self.traced:
            tracemalloc.stop()
        return grown


@beamish.mark_shared  # shared on purpose: spawn would otherwise copy it per process
class Started:
    """A count that idle processes bump once when they first run (shared on purpose: it
    is benchmark scaffolding, not a message)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    async def reached(self, n: int) -> None:
        """Let the loop run until ``n`` processes have started."""
        while self.count < n:
            await asyncio.sleep(0)


def spawn_result(n: int, seconds: float, grown: int) -> Result:
    return {"seconds": seconds, "bytes_per_process": grown / n}


# -- beamish, actor shape -----------------------------------------------------------------


def run_beamish(main: Callable[..., Coroutine[Any, Any, Result]], *args: Any) -> Result:
    result: Result = beamish.run(main, *args, long_schedule=None)
    return result


def kill_others() -> None:
    """Kill every process but the caller (keeps the runtime's shutdown short)."""
    me = beamish.self()
    for pid in beamish.processes():
        if pid != me:
            beamish.exit(pid, "kill")


class IdleActor(Actor):
    __slots__ = ()

    def handle(self, message: Any) -> None:
        return None


class PongActor(Actor):
    __slots__ = ()

    def handle(self, message: tuple[str, Pid]) -> None:
        send(message[1], ("pong", self.pid))


class PingActor(Actor):
    __slots__ = ("notify", "other", "remaining")

    def __init__(self, other: Pid, round_trips: int, notify: Pid) -> None:
        self.other = other
        self.remaining = round_trips
        self.notify = notify

    def handle(self, message: tuple[str, Pid]) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            send(self.notify, "done")
        else:
            send(self.other, ("ping", self.pid))


class FanInReceiver(Actor):
    __slots__ = ("notify", "remaining")

    def __init__(self, total: int, notify: Pid) -> None:
        self.remaining = total
        self.notify = notify

    def handle(self, message: tuple[str, int]) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            send(self.notify, "done")


class FanInSender(Actor):
    __slots__ = ("count", "target")

    def __init__(self, target: Pid, count: int) -> None:
        self.target = target
        self.count = count

    def handle(self, message: str) -> None:
        target = self.target
        for i in range(self.count):
            send(target, ("data", i))


class RingNode(Actor):
    __slots__ = ("next", "notify")

    def __init__(self, next_pid: Pid | None, notify: Pid) -> None:
        self.next = next_pid
        self.notify = notify

    def handle(self, message: tuple[str, Any]) -> None:
        kind, value = message
        if kind == "link":
            self.next = value
        elif value == 0:
            send(self.notify, "done")
        else:
            assert self.next is not None  # the last node is linked before the token comes
            send(self.next, ("token", value - 1))


async def spawn_actor_main(n: int, traced: bool) -> Result:
    probe = MemoryProbe(traced)
    start = time.perf_counter()
    for _ in range(n):
        spawn(IdleActor())
    seconds = time.perf_counter() - start
    grown = probe.grown()
    kill_others()
    return spawn_result(n, seconds, grown)


async def ping_pong_actor_main(round_trips: int) -> Result:
    ponger = spawn(PongActor())
    pinger = spawn(PingActor(ponger, round_trips, beamish.self()))
    start = time.perf_counter()
    send(ponger, ("ping", pinger))
    await receive()
    seconds = time.perf_counter() - start
    kill_others()
    return {"rate": round_trips / seconds}


async def fan_in_actor_main(senders: int, messages: int) -> Result:
    total = senders * messages
    receiver = spawn(FanInReceiver(total, beamish.self()))
    pids = [spawn(FanInSender(receiver, messages)) for _ in range(senders)]
    start = time.perf_counter()
    for pid in pids:
        send(pid, "go")
    await receive()
    seconds = time.perf_counter() - start
    kill_others()
    return {"rate": total / seconds}


async def ring_actor_main(size: int, laps: int) -> Result:
    me = beamish.self()
    start = time.perf_counter()
    last = first = spawn(RingNode(None, me))
    for _ in range(size - 1):
        first = spawn(RingNode(first, me))
    send(last, ("link", first))
    built = time.perf_counter()
    hops = size * laps
    send(first, ("token", hops - 1))
    await receive()
    seconds = time.perf_counter() - built
    kill_others()
    return {"rate": hops / seconds, "build_seconds": built - start}


def spawn_actor(n: int, traced: int) -> Result:
    return run_beamish(spawn_actor_main, n, bool(traced))


def spawn_actor_default_gc(n: int, traced: int) -> Result:
    """The same spawn with CPython's default collector thresholds (``gc_threshold=None``):
    what the runtime's own thresholds are worth."""
    result: Result = beamish.run(
        spawn_actor_main, n, bool(traced), long_schedule=None, gc_threshold=None
    )
    return result


def ping_pong_actor(round_trips: int) -> Result:
    return run_beamish(ping_pong_actor_main, round_trips)


def ping_pong_actor_unchecked(round_trips: int) -> Result:
    """Ping-pong with ``tuple`` declared atomic, so ``send`` skips the per-item check.

    Only for pricing the check: it would let mutable contents through uncopied.
    """
    from beamish._runtime import api

    api._ATOMIC.add(tuple)
    return ping_pong_actor(round_trips)


def fan_in_actor(senders: int, messages: int) -> Result:
    return run_beamish(fan_in_actor_main, senders, messages)


def ring_actor(size: int, laps: int) -> Result:
    return run_beamish(ring_actor_main, size, laps)


# -- beamish, task shape ------------------------------------------------------------------


async def idle_task(started: Started) -> None:
    started.count += 1
    await receive()


async def pong_task() -> None:
    me = beamish.self()
    while True:
        message = await receive()
        send(message[1], ("pong", me))


async def fan_in_sender_task(target: Pid, count: int) -> None:
    await receive()
    for i in range(count):
        send(target, ("data", i))


async def ring_node_task(next_pid: Pid | None, notify: Pid) -> None:
    if next_pid is None:
        _, next_pid = await receive()
    while True:
        _, remaining = await receive()
        if remaining == 0:
            send(notify, "done")
        else:
            send(next_pid, ("token", remaining - 1))


async def spawn_task_main(n: int, traced: bool) -> Result:
    started = Started()
    probe = MemoryProbe(traced)
    start = time.perf_counter()
    for _ in range(n):
        spawn(idle_task, started)
    await started.reached(n)
    seconds = time.perf_counter() - start
    grown = probe.grown()
    kill_others()
    return spawn_result(n, seconds, grown)


async def ping_pong_task_main(round_trips: int) -> Result:
    me = beamish.self()
    ponger = spawn(pong_task)
    await beamish.sleep(0)  # let the ponger start
    start = time.perf_counter()
    for _ in range(round_trips):
        send(ponger, ("ping", me))
        await receive()
    seconds = time.perf_counter() - start
    kill_others()
    return {"rate": round_trips / seconds}


async def fan_in_task_main(senders: int, messages: int) -> Result:
    me = beamish.self()
    total = senders * messages
    pids = [spawn(fan_in_sender_task, me, messages) for _ in range(senders)]
    await beamish.sleep(0)  # let the senders start and wait for "go"
    start = time.perf_counter()
    for pid in pids:
        send(pid, "go")
    for _ in range(total):
        await receive()
    seconds = time.perf_counter() - start
    kill_others()
    return {"rate": total / seconds}


async def ring_task_main(size: int, laps: int) -> Result:
    me = beamish.self()
    start = time.perf_counter()
    last = first = spawn(ring_node_task, None, me)
    for _ in range(size - 1):
        first = spawn(ring_node_task, first, me)
    send(last, ("link", first))
    await beamish.sleep(0)  # let every node start
    built = time.perf_counter()
    hops = size * laps
    send(first, ("token", hops - 1))
    await receive()
    seconds = time.perf_counter() - built
    kill_others()
    return {"rate": hops / seconds, "build_seconds": built - start}


def spawn_task(n: int, traced: int) -> Result:
    return run_beamish(spawn_task_main, n, bool(traced))


def ping_pong_task(round_trips: int) -> Result:
    return run_beamish(ping_pong_task_main, round_trips)


def fan_in_task(senders: int, messages: int) -> Result:
    return run_beamish(fan_in_task_main, senders, messages)


def ring_task(size: int, laps: int) -> Result:
    return run_beamish(ring_task_main, size, laps)


# -- naive asyncio: one Task and one Queue per actor ----------------------------------------

Inbox = asyncio.Queue[Any]


class NaiveActors:
    """Starts naive actors and keeps their tasks referenced (as asyncio requires)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, body: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> Inbox:
        inbox: Inbox = asyncio.Queue()
        self.tasks.append(asyncio.create_task(body(inbox, *args)))
        return inbox

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def run_naive(main: Callable[..., Coroutine[Any, Any, Result]], *args: Any) -> Result:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main(*args))


async def idle_naive(inbox: Inbox, started: Started) -> None:
    started.count += 1
    await inbox.get()


async def pong_naive(inbox: Inbox) -> None:
    while True:
        _, reply_to = await inbox.get()
        reply_to.put_nowait(("pong", inbox))


async def fan_in_sender_naive(inbox: Inbox, target: Inbox, count: int) -> None:
    await inbox.get()
    for i in range(count):
        target.put_nowait(("data", i))


async def ring_node_naive(inbox: Inbox, next_inbox: Inbox | None, notify: Inbox) -> None:
    if next_inbox is None:
        _, next_inbox = await inbox.get()
    while True:
        _, remaining = await inbox.get()
        if remaining == 0:
            notify.put_nowait("done")
        else:
            next_inbox.put_nowait(("token", remaining - 1))


async def spawn_naive_main(n: int, traced: bool) -> Result:
    actors = NaiveActors()
    started = Started()
    probe = MemoryProbe(traced)
    start = time.perf_counter()
    for _ in range(n):
        actors.spawn(idle_naive, started)
    await started.reached(n)
    seconds = time.perf_counter() - start
    grown = probe.grown()
    await actors.stop()
    return spawn_result(n, seconds, grown)


async def ping_pong_naive_main(round_trips: int) -> Result:
    actors = NaiveActors()
    ponger = actors.spawn(pong_naive)
    inbox: Inbox = asyncio.Queue()
    await asyncio.sleep(0)
    start = time.perf_counter()
    for _ in range(round_trips):
        ponger.put_nowait(("ping", inbox))
        await inbox.get()
    seconds = time.perf_counter() - start
    await actors.stop()
    return {"rate": round_trips / seconds}


async def fan_in_naive_main(senders: int, messages: int) -> Result:
    actors = NaiveActors()
    inbox: Inbox = asyncio.Queue()
    total = senders * messages
    inboxes = [actors.spawn(fan_in_sender_naive, inbox, messages) for _ in range(senders)]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for sender in inboxes:
        sender.put_nowait("go")
    for _ in range(total):
        await inbox.get()
    seconds = time.perf_counter() - start
    await actors.stop()
    return {"rate": total / seconds}


async def ring_naive_main(size: int, laps: int) -> Result:
    actors = NaiveActors()
    inbox: Inbox = asyncio.Queue()
    start = time.perf_counter()
    last = first = actors.spawn(ring_node_naive, None, inbox)
    for _ in range(size - 1):
        first = actors.spawn(ring_node_naive, first, inbox)
    last.put_nowait(("link", first))
    await asyncio.sleep(0)
    built = time.perf_counter()
    hops = size * laps
    first.put_nowait(("token", hops - 1))
    await inbox.get()
    seconds = time.perf_counter() - built
    await actors.stop()
    return {"rate": hops / seconds, "build_seconds": built - start}


def spawn_naive(n: int, traced: int) -> Result:
    return run_naive(spawn_naive_main, n, bool(traced))


def ping_pong_naive(round_trips: int) -> Result:
    return run_naive(ping_pong_naive_main, round_trips)


def fan_in_naive(senders: int, messages: int) -> Result:
    return run_naive(fan_in_naive_main, senders, messages)


def ring_naive(size: int, laps: int) -> Result:
    return run_naive(ring_naive_main, size, laps)


# -- Pykka: one thread per actor, tell both ways --------------------------------------------

PykkaRef = pykka.ActorRef[Any]


class PykkaActor(pykka.ThreadingActor):
    use_daemon_thread = True  # a stuck run cannot keep the subprocess alive


class PykkaIdle(PykkaActor):
    def on_receive(self, message: Any) -> None:
        return None


class PykkaPonger(PykkaActor):
    def on_receive(self, message: tuple[str, PykkaRef]) -> None:
        message[1].tell(("pong", self.actor_ref))


class PykkaPinger(PykkaActor):
    def __init__(self, other: PykkaRef, round_trips: int, done: threading.Event) -> None:
        super().__init__()
        self.other = other
        self.remaining = round_trips
        self.done = done

    def on_receive(self, message: tuple[str, PykkaRef]) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()
        else:
            self.other.tell(("ping", self.actor_ref))


class PykkaFanInReceiver(PykkaActor):
    def __init__(self, total: int, done: threading.Event) -> None:
        super().__init__()
        self.remaining = total
        self.done = done

    def on_receive(self, message: tuple[str, int]) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()


class PykkaFanInSender(PykkaActor):
    def __init__(self, target: PykkaRef, count: int) -> None:
        super().__init__()
        self.target = target
        self.count = count

    def on_receive(self, message: str) -> None:
        for i in range(self.count):
            self.target.tell(("data", i))


class PykkaRingNode(PykkaActor):
    def __init__(self, next_ref: PykkaRef | None, done: threading.Event) -> None:
        super().__init__()
        self.next = next_ref
        self.done = done

    def on_receive(self, message: tuple[str, Any]) -> None:
        kind, value = message
        if kind == "link":
            self.next = value
        elif value == 0:
            self.done.set()
        else:
            assert self.next is not None
            self.next.tell(("token", value - 1))


def spawn_pykka(n: int, traced: int) -> Result:
    probe = MemoryProbe(bool(traced))
    start = time.perf_counter()
    refs = [PykkaIdle.start() for _ in range(n)]
    seconds = time.perf_counter() - start
    grown = probe.grown()
    pykka.ActorRegistry.stop_all()
    del refs
    return spawn_result(n, seconds, grown)


def ping_pong_pykka(round_trips: int) -> Result:
    done = threading.Event()
    ponger = PykkaPonger.start()
    pinger = PykkaPinger.start(ponger, round_trips, done)
    start = time.perf_counter()
    ponger.tell(("ping", pinger))
    done.wait()
    seconds = time.perf_counter() - start
    pykka.ActorRegistry.stop_all()
    return {"rate": round_trips / seconds}


def fan_in_pykka(senders: int, messages: int) -> Result:
    done = threading.Event()
    total = senders * messages
    receiver = PykkaFanInReceiver.start(total, done)
    refs = [PykkaFanInSender.start(receiver, messages) for _ in range(senders)]
    start = time.perf_counter()
    for ref in refs:
        ref.tell("go")
    done.wait()
    seconds = time.perf_counter() - start
    pykka.ActorRegistry.stop_all()
    return {"rate": total / seconds}


def ring_pykka(size: int, laps: int) -> Result:
    done = threading.Event()
    start = time.perf_counter()
    last = first = PykkaRingNode.start(None, done)
    for _ in range(size - 1):
        first = PykkaRingNode.start(first, done)
    last.tell(("link", first))
    built = time.perf_counter()
    hops = size * laps
    first.tell(("token", hops - 1))
    done.wait()
    seconds = time.perf_counter() - built
    pykka.ActorRegistry.stop_all()
    return {"rate": hops / seconds, "build_seconds": built - start}


# -- the registry of measurements, and the subprocess side ----------------------------------

# -- the BEAM ---------------------------------------------------------------------------------


def beam_workload(workload: str, schedulers: int, **params: int) -> Result:
    """The same workload on OTP's ``erl`` (``bench/erlang/local_bench.erl``)."""
    if workload == "spawn":
        args = ["spawn", str(params["n"])]
    elif workload == "ping-pong":
        args = ["pingpong", str(params["round_trips"])]
    elif workload == "fan-in":
        args = ["fanin", str(params["senders"]), str(params["messages"])]
    else:
        args = ["ring", str(params["size"]), str(params["laps"])]
    found = beam_run(args, schedulers)
    found.pop("count", None)
    return found


BENCHES: dict[tuple[str, str], Callable[..., Result]] = {
    ("spawn", "actor"): spawn_actor,
    ("spawn", "task"): spawn_task,
    ("spawn", "asyncio"): spawn_naive,
    ("spawn", "pykka"): spawn_pykka,
    ("spawn-default-gc", "actor"): spawn_actor_default_gc,
    ("ping-pong", "actor"): ping_pong_actor,
    ("ping-pong", "task"): ping_pong_task,
    ("ping-pong", "asyncio"): ping_pong_naive,
    ("ping-pong", "pykka"): ping_pong_pykka,
    ("ping-pong-unchecked", "actor"): ping_pong_actor_unchecked,
    ("fan-in", "actor"): fan_in_actor,
    ("fan-in", "task"): fan_in_task,
    ("fan-in", "asyncio"): fan_in_naive,
    ("fan-in", "pykka"): fan_in_pykka,
    ("ring", "actor"): ring_actor,
    ("ring", "task"): ring_task,
    ("ring", "asyncio"): ring_naive,
    ("ring", "pykka"): ring_pykka,
    **{(workload, f"beam{s}"): functools.partial(beam_workload, workload, s)
       for workload in ("spawn", "ping-pong", "fan-in", "ring") for s in SCHEDULERS},
}


@dataclass(frozen=True)
class Job:
    workload: str
    impl: str
    params: dict[str, int]

    @property
    def label(self) -> str:
        traced = " (tracemalloc)" if self.params.get("traced") else ""
        return f"{self.workload}{traced} / {IMPLS[self.impl]}"

    def encode(self) -> str:
        return json.dumps({"workload": self.workload, "impl": self.impl, "params": self.params})

    @classmethod
    def decode(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(data["workload"], data["impl"], data["params"])


def child_main(encoded: str) -> None:
    """Run one measurement and print its result as one JSON line."""
    job = Job.decode(encoded)
    result = BENCHES[job.workload, job.impl](**job.params)
    print(json.dumps(result), flush=True)


CHILD_TIMEOUT = 600.0


def run_job(job: Job) -> Result | str:
    """Run ``job`` in a fresh interpreter; its result, or an error message."""
    command = [sys.executable, os.path.abspath(__file__), "--child", job.encode()]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"timed out after {CHILD_TIMEOUT:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return lines[-1]
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- scales ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How big each workload is; ``threads`` fields are the scaled-down Pykka sizes."""

    repeats: int
    spawn: int
    spawn_threads: int
    round_trips: int
    round_trips_threads: int
    senders: int
    messages: int
    senders_threads: int
    messages_threads: int
    ring: int
    laps: int
    ring_threads: int
    laps_threads: int

    def params(self, workload: str, impl: str) -> dict[str, int]:
        threads = impl == "pykka"
        if workload.startswith("spawn"):
            return {"n": self.spawn_threads if threads else self.spawn, "traced": 0}
        if workload.startswith("ping-pong"):
            return {"round_trips": self.round_trips_threads if threads else self.round_trips}
        if workload == "fan-in":
            if threads:
                return {"senders": self.senders_threads, "messages": self.messages_threads}
            return {"senders": self.senders, "messages": self.messages}
        if workload == "ring":
            if threads:
                return {"size": self.ring_threads, "laps": self.laps_threads}
            return {"size": self.ring, "laps": self.laps}
        raise ValueError(f"unknown workload {workload!r}")


FULL = Scale(
    repeats=3,
    spawn=1_000_000,
    spawn_threads=10_000,
    round_trips=1_000_000,
    round_trips_threads=200_000,
    senders=1_000,
    messages=1_000,
    senders_threads=1_000,
    messages_threads=100,
    ring=10_000,
    laps=100,
    ring_threads=10_000,
    laps_threads=10,
)
QUICK = Scale(
    repeats=1,
    spawn=100_000,
    spawn_threads=1_000,
    round_trips=100_000,
    round_trips_threads=10_000,
    senders=100,
    messages=1_000,
    senders_threads=100,
    messages_threads=100,
    ring=1_000,
    laps=100,
    ring_threads=1_000,
    laps_threads=10,
)

IMPLS = {
    "actor": "beamish (actor)",
    "task": "beamish (task)",
    "asyncio": "naive asyncio",
    "pykka": "Pykka (threads)",
    **{f"beam{s}": f"BEAM (erl +S {s})" for s in SCHEDULERS},
}
BEAM1 = f"beam{SCHEDULERS[0]}"  # the anchor: one scheduler, as one beamish node has one core
WORKLOADS = ("spawn", "ping-pong", "fan-in", "ring")

# -- targets (from the issue) ---------------------------------------------------------------

SPAWN_SECONDS_PER_MILLION = 3.0
ACTOR_BYTES = 1_000
TASK_BYTES = 3_000
PING_PONG_RATE = 400_000
PING_PONG_VS_NAIVE = 2.0
PING_PONG_VS_PYKKA = 20.0
FAN_IN_RATE = 3_000_000
ISOLATION_COST = 0.15


def verdict(ok: bool, text: str) -> str:
    return f"{text}: {'met' if ok else 'NOT met'}"


# -- measuring ------------------------------------------------------------------------------

Measured = dict[str, Result | str]  # by implementation: the median figures, or an error


def make_job(scale: Scale, workload: str, impl: str, *, traced: bool = False) -> Job:
    params = scale.params(workload, impl)
    if traced:
        params["traced"] = 1
    return Job(workload, impl, params)


def median(results: list[Result]) -> Result:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def measure_jobs(jobs: list[Job], repeats: int) -> list[Result | str]:
    """Each job's median figures over ``repeats`` runs, or its first error.

    The runs go in rounds, every job once per round, so that slow drift on a shared machine
    spreads evenly over the jobs instead of favouring whichever ran first.
    """
    runs: list[list[Result]] = [[] for _ in jobs]
    errors: list[str | None] = [None] * len(jobs)
    for round_no in range(1, repeats + 1):
        for i, job in enumerate(jobs):
            if errors[i] is not None:
                continue
            began = time.perf_counter()
            outcome = run_job(job)
            took = time.perf_counter() - began
            note = f" failed: {outcome}" if isinstance(outcome, str) else ""
            print(
                f"  {job.label}, run {round_no}/{repeats}: {took:.1f} s{note}",
                file=sys.stderr,
                flush=True,
            )
            if isinstance(outcome, str):
                errors[i] = outcome
            else:
                runs[i].append(outcome)
    return [
        error if error is not None else median(results)
        for error, results in zip(errors, runs, strict=True)
    ]


def measure(workload: str, scale: Scale, *, traced: bool = False) -> Measured:
    """Run ``workload`` on every implementation (a tracemalloc count: once, it does not
    vary between runs)."""
    impls = [i for i in IMPLS if not (traced and i.startswith("beam"))]  # no tracemalloc there
    jobs = [make_job(scale, workload, impl, traced=traced) for impl in impls]
    outcomes = measure_jobs(jobs, 1 if traced else scale.repeats)
    return dict(zip(impls, outcomes, strict=True))


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    workload: str
    impl: str
    scale: str
    result: str
    ratio: str = ""
    target: str = ""
    beam: str = ""  # this row's figure / the BEAM's on one scheduler


@dataclass(frozen=True)
class Figure:
    """How one line of the table reads a workload's results.

    ``value`` is the scale-independent figure (a rate, seconds or bytes per process) that
    ratios compare; ``target`` gives the target cell from (implementation, value, the
    actor's value).
    """

    label: str
    value: Callable[[Result, dict[str, int]], float]
    text: Callable[[Result, dict[str, int]], str]
    target: Callable[[str, float, float | None], str] = lambda impl, value, base: ""


def describe(workload: str, params: dict[str, int]) -> str:
    if workload == "spawn":
        return f"{params['n']:,} processes"
    if workload.startswith("ping-pong"):
        return f"{params['round_trips']:,} round trips"
    if workload == "fan-in":
        return f"{params['senders']:,} senders x {params['messages']:,} msgs"
    return f"{params['size']:,} nodes x {params['laps']:,} laps"


def figure_rows(figure: Figure, workload: str, measured: Measured, scale: Scale) -> list[Row]:
    """One row per implementation, with ratios against the actor's figure."""
    base: float | None = None
    actor = measured.get("actor")
    if isinstance(actor, dict):
        base = figure.value(actor, scale.params(workload, "actor"))
    beam: float | None = None
    anchor = measured.get(BEAM1)
    if isinstance(anchor, dict):
        beam = figure.value(anchor, scale.params(workload, BEAM1))
    rows = []
    for impl, outcome in measured.items():
        params = scale.params(workload, impl)
        row = Row(figure.label, IMPLS[impl], describe(workload, params), "")
        if isinstance(outcome, str):
            row.result = f"failed: {outcome}"
        else:
            value = figure.value(outcome, params)
            row.result = figure.text(outcome, params)
            row.ratio = f"{value / base:.2f}x" if base else ""
            row.beam = f"{value / beam:.2f}x" if beam else ""
            row.target = figure.target(impl, value, base)
        rows.append(row)
    return rows


def spawn_target(impl: str, seconds_each: float, base: float | None) -> str:
    if impl != "actor":
        return ""
    ok = seconds_each * 1_000_000 <= SPAWN_SECONDS_PER_MILLION
    return verdict(ok, f"1M in <= {SPAWN_SECONDS_PER_MILLION:.0f} s")


def memory_target(impl: str, per_process: float, base: float | None) -> str:
    limit = {"actor": ACTOR_BYTES, "task": TASK_BYTES}.get(impl)
    return verdict(per_process <= limit, f"<= {limit:,} bytes") if limit else ""


def ping_pong_target(impl: str, rate: float, base: float | None) -> str:
    if impl == "actor":
        return verdict(rate >= PING_PONG_RATE, f">= {PING_PONG_RATE:,}/s")
    factor = {"asyncio": PING_PONG_VS_NAIVE, "pykka": PING_PONG_VS_PYKKA}.get(impl)
    if factor is None or base is None:
        return ""
    return verdict(base / rate >= factor, f"actor >= {factor:.0f}x this ({base / rate:.1f}x)")


def fan_in_target(impl: str, rate: float, base: float | None) -> str:
    return verdict(rate >= FAN_IN_RATE, f">= {FAN_IN_RATE:,}/s") if impl == "actor" else ""


def seconds_each(result: Result, params: dict[str, int]) -> float:
    return result["seconds"] / params["n"]


def spawn_text(result: Result, params: dict[str, int]) -> str:
    return f"{result['seconds']:.2f} s ({seconds_each(result, params) * 1e6:.2f} us each)"


def bytes_each(result: Result, params: dict[str, int]) -> float:
    return result["bytes_per_process"]


def rate(result: Result, params: dict[str, int]) -> float:
    return result["rate"]


def rate_text(unit: str) -> Callable[[Result, dict[str, int]], str]:
    def text(result: Result, params: dict[str, int]) -> str:
        built = result.get("build_seconds")
        build = f" (ring built in {built * 1e3:,.0f} ms)" if built is not None else ""
        return f"{result['rate']:,.0f} {unit}{build}"

    return text


SPAWN_TIME = Figure("spawn idle: time", seconds_each, spawn_text, spawn_target)
SPAWN_RSS = Figure(
    "spawn idle: memory (RSS)",
    bytes_each,
    lambda r, p: f"{bytes_each(r, p):,.0f} bytes/process",
    memory_target,
)
SPAWN_TRACED = Figure(
    "spawn idle: memory (tracemalloc)",
    bytes_each,
    lambda r, p: f"{bytes_each(r, p):,.0f} bytes/process",
    memory_target,
)
PING_PONG = Figure("ping-pong", rate, rate_text("round trips/s"), ping_pong_target)
FAN_IN = Figure("fan-in", rate, rate_text("msgs/s"), fan_in_target)
RING = Figure("ring", rate, rate_text("hops/s"))


def spawn_section(scale: Scale) -> list[Row]:
    timed = measure("spawn", scale)
    traced = measure("spawn", scale, traced=True)
    (default_gc,) = measure_jobs([make_job(scale, "spawn-default-gc", "actor")], scale.repeats)
    params = scale.params("spawn", "actor")
    gc_row = Row(
        "spawn idle: time, CPython's default GC thresholds",
        IMPLS["actor"],
        describe("spawn", params),
        "",
    )
    actor = timed.get("actor")
    if isinstance(default_gc, str):
        gc_row.result = f"failed: {default_gc}"
    else:
        gc_row.result = spawn_text(default_gc, params)
        if isinstance(actor, dict):
            gc_row.ratio = f"{default_gc['seconds'] / actor['seconds']:.2f}x"
    return [
        *figure_rows(SPAWN_TIME, "spawn", timed, scale),
        gc_row,
        *figure_rows(SPAWN_RSS, "spawn", timed, scale),
        *figure_rows(SPAWN_TRACED, "spawn", traced, scale),
    ]


def ping_pong_section(scale: Scale) -> list[Row]:
    # The unchecked variant runs right after the checked one in each round, so that the
    # pair sees the same machine conditions.
    impls = [i for i in ("actor", "unchecked", "task", "asyncio", "pykka",
                         *(f"beam{s}" for s in SCHEDULERS)) if i in IMPLS or i == "unchecked"]
    jobs = [
        make_job(scale, "ping-pong-unchecked", "actor")
        if impl == "unchecked"
        else make_job(scale, "ping-pong", impl)
        for impl in impls
    ]
    outcomes = dict(zip(impls, measure_jobs(jobs, scale.repeats), strict=True))
    unchecked = outcomes.pop("unchecked")
    rows = figure_rows(PING_PONG, "ping-pong", outcomes, scale)
    checked = outcomes["actor"]
    params = scale.params("ping-pong", "actor")
    actor, size = IMPLS["actor"], describe("ping-pong", params)
    skipped = Row("ping-pong, tuple check skipped", actor, size, "")
    cost = Row("isolation cost (tuple check)", actor, size, "")
    if isinstance(checked, str) or isinstance(unchecked, str):
        failure = checked if isinstance(checked, str) else unchecked
        skipped.result = cost.result = f"failed: {failure}"
    else:
        skipped.result = rate_text("round trips/s")(unchecked, params)
        skipped.ratio = f"{unchecked['rate'] / checked['rate']:.2f}x"
        share = 1 - checked["rate"] / unchecked["rate"]
        cost.result = f"{share:.1%} of round-trip throughput"
        cost.target = verdict(share <= ISOLATION_COST, f"<= {ISOLATION_COST:.0%}")
    return [*rows, skipped, cost]


def fan_in_section(scale: Scale) -> list[Row]:
    return figure_rows(FAN_IN, "fan-in", measure("fan-in", scale), scale)


def ring_section(scale: Scale) -> list[Row]:
    return figure_rows(RING, "ring", measure("ring", scale), scale)


SECTIONS: dict[str, Callable[[Scale], list[Row]]] = {
    "spawn": spawn_section,
    "ping-pong": ping_pong_section,
    "fan-in": fan_in_section,
    "ring": ring_section,
}


def columns(scale: Scale) -> tuple[str, ...]:
    runs = "1 run" if scale.repeats == 1 else f"median of {scale.repeats} runs"
    return (
        "workload",
        "implementation",
        "scale",
        f"result ({runs})",
        "vs beamish (actor)",
        f"vs BEAM (erl +S {SCHEDULERS[0]})",
        "target",
    )


def cells(row: Row) -> tuple[str, ...]:
    return (row.workload, row.impl, row.scale, row.result, row.ratio, row.beam, row.target)


def ram_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return 0.0


def send_kind() -> str:
    """Which ``send`` the measured subprocesses use: they inherit this environment."""
    from beamish._runtime import api, scheduler

    if api.send is api._send_py:
        return ("pure-Python send and dispatch: BEAMISH_PURE_PYTHON is set or the C extension "
                "is not built")
    if scheduler._dispatch is scheduler._dispatch_py:
        return "C send from beamish._runtime._speedups, the tick's dispatch in Python"
    return "C send and the tick's dispatch from beamish._runtime._speedups"


def header_lines(scale: Scale, load_before: str) -> list[str]:
    version = importlib.metadata.version
    runs = "one run" if scale.repeats == 1 else f"the median of {scale.repeats} runs"
    return [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {ram_gib():.1f} GiB RAM",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"uvloop {version('uvloop')}, pykka {version('pykka')}, beamish {version('beamish')} "
        f"({send_kind()}); the BEAM: {beam_version()}",
        f"Each result is {runs}, each run in a fresh subprocess "
        "(tracemalloc figures: one run, as they do not vary)",
        "vs beamish (actor): this row's figure / the actor's, per second or per process, "
        "so scaled-down rows compare fairly (above 1x is faster for rates, bigger for "
        "times and bytes); vs BEAM: the same against the BEAM on one scheduler, in this run",
        "The BEAM's memory per process is erlang:memory(processes) grown per process; "
        "beamish's and the others' is the resident set grown per process",
    ]


def report(scale: Scale, rows: list[Row], markdown: bool, load_before: str) -> str:
    return report_table(header_lines(scale, load_before), columns(scale),
                        [cells(row) for row in rows], markdown)


# -- entry point ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--only", action="append", choices=WORKLOADS, help="run only this workload (repeatable)"
    )
    parser.add_argument("--beamish-only", action="store_true",
                        help="measure beamish's shapes only, no peer (bench/ab.py uses it)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args.child)
        return
    scale = QUICK if args.quick else FULL
    if args.beamish_only:
        for impl in [i for i in IMPLS if i not in ("actor", "task")]:
            del IMPLS[impl]
    began, load_before = time.perf_counter(), load_average()
    rows: list[Row] = []
    for workload in args.only or WORKLOADS:
        rows += SECTIONS[workload](scale)
    print(f"total: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    print(report(scale, rows, args.markdown, load_before))


if __name__ == "__main__":
    main()
