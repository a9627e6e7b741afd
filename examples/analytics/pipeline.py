"""The dashboard's processes: where the events come from, where they are counted, and how
they reach the pages. ::

    Replica           on every node: the latest frame (for joins) and the latest checkpoint
    analytics.pipeline (rest_for_one), once per cluster (a Singleton)
    ├── Store         owns the table the counts live in, so that they outlive a counter
    ├── Counters      one Counter per metric and window (6 x 2), one_for_one
    ├── Source        makes the events, a tick every 20 ms, and sends each counter its batch
    └── Publisher     every `interval` seconds, reads the counts and broadcasts "state"

**Nothing counted is lost when a counter crashes.** A counter keeps its window in the
Store's table (a light ETS: the record outlives the counter's process), with the number of
the last batch it applied. The Source numbers each counter's batches and keeps those not yet
applied, in its own record in the table (it reads the counter's record: no message). A
counter that restarts, or that sees a batch whose number is not the next one, asks the
Source for what it missed (``replay``) before it goes on, and ignores a batch it has already
applied: each event is counted once. The Source keeps at most ``max_unapplied`` batches per
counter; past that (a counter down for longer), the oldest go and their events are counted
as ``lost``, in the page's figures and the log: never silently.

**Nothing a viewer saw is lost when the pipeline's node goes.** The pipeline runs once in
the cluster (``Singleton.spec``; on a node alone, on that node). With each frame the
Publisher broadcasts, first, a checkpoint of the whole table (every window, what each
counter applied, what the Source made and has not yet seen applied): about 24 KB on the wire
(23 to 24 KB measured; ``test_analytics`` keeps it under 32 KB), every ``interval``, to a
``Replica`` on every node. When the pipeline's node goes, another node's guard starts it,
and its Store starts from that node's latest checkpoint: the counts go on from at least the
last frame any viewer of a live node saw, ``made`` and ``counted`` still agree (the batches
in flight are replayed from the checkpoint), and what the dead node made after its last
checkpoint (at most ``interval`` of events) is gone with it, from both. The same holds when
the Store itself crashes: the rest of the tree restarts after it (``rest_for_one``) from the
checkpoint.

**Every viewer gets the latest state at a fixed rate.** The Publisher builds one frame
(every metric in both windows, about 4 KB) and broadcasts it; the channel coalesces it
(``coalesce = ["state"]``), so a slow viewer skips to the newest frame rather than queueing
frames. The frame carries ``seq`` (a viewer sees how many it skipped) and ``newest``, when
the newest event it counts happened (a viewer sees how fresh it is).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import beamish
from beamish import (
    CallError,
    Continue,
    GenServer,
    NoReply,
    Ok,
    Reply,
    Supervisor,
    SupervisorFlags,
)
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.web import Broadcast, broadcast

from .metrics import BY_NAME, METRICS, WINDOWS, Batch, EventSource, Window, window_summary

log = logging.getLogger("analytics")

TABLE = "analytics.store"
REPLICA = "analytics.replica"
PIPELINE = "analytics.pipeline"  # the singleton's name
SOURCE = "analytics.source"  # local, on the pipeline's node
TOPIC = "analytics:live"
CHECKPOINTS = "analytics.checkpoints"  # a PubSub topic no socket routes (no colon)
TICK = 0.02  # seconds between two ticks of the source
MAX_INCIDENT = 60.0  # seconds a simulated incident may last

Key = tuple[str, str]  # (metric, window)
KEYS: tuple[Key, ...] = tuple((m.name, w) for m in METRICS for w, _, _ in WINDOWS)


def counter_name(key: Key) -> str:
    return f"analytics.counter.{key[0]}.{key[1]}"


@dataclass(slots=True)
class Counted:
    """A counter's record in the Store's table: its window, and what it has applied."""

    window: Window
    applied: int = 0  # the number of the last batch applied
    counted: int = 0  # events counted since the node started
    newest: float = 0.0  # when the newest counted event happened


@dataclass(slots=True)
class Made:
    """The Source's record: what it has made and numbered."""

    numbered: dict[Key, int] = field(default_factory=lambda: dict.fromkeys(KEYS, 0))
    made: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BY_NAME, 0))
    lost: int = 0  # events dropped from a full replay buffer (counted, never silent)
    incident_until: float = 0.0  # a simulated incident lasts until then (wall clock)
    # per counter, the batches sent and not yet applied: (number, batch), oldest first
    unapplied: dict[Key, deque[tuple[int, Batch]]] = field(
        default_factory=lambda: {key: deque() for key in KEYS})
    seq: int = 0  # the number of the Publisher's last frame


def checkpoint(data: dict[Any, Any]) -> tuple[Any, ...]:
    """The table as immutable plain data (what crosses to the other nodes' replicas)."""
    counters = tuple((key, r.window.snapshot(), r.applied, r.counted, r.newest)
                     for key in KEYS if (r := data.get(key)) is not None)
    made: Made | None = data.get("source")
    if made is None:
        return (counters, None)
    unapplied = tuple((key, tuple((n, (b.count, b.total, b.values, b.newest)) for n, b in q))
                      for key, q in made.unapplied.items() if q)
    return (counters, (tuple(made.numbered.items()), tuple(made.made.items()), made.lost,
                       made.incident_until, made.seq, unapplied))


def restore(data: dict[Any, Any], saved: tuple[Any, ...]) -> None:
    """Fill an empty table from a ``checkpoint``."""
    counters, source = saved
    for key, window, applied, counted, newest in counters:
        data[tuple(key)] = Counted(Window.restore(window), applied, counted, newest)
    if source is not None:
        numbered, made, lost, incident_until, seq, unapplied = source
        record = Made(lost=lost, incident_until=incident_until, seq=seq)
        record.numbered.update((tuple(k), n) for k, n in numbered)
        record.made.update(made)
        for key, batches in unapplied:
            record.unapplied[tuple(key)].extend(
                (n, Batch(c, t, tuple(v), w)) for n, (c, t, v, w) in batches)
        data["source"] = record


def store() -> dict[Any, Any]:
    """The Store's table (the counters' records, the Source's, the latest frame)."""
    table = beamish.find_table(TABLE)
    if table is None:
        raise RuntimeError("the analytics store is not running")
    data: dict[Any, Any] = table.data
    return data


# -- the processes ---------------------------------------------------------------------------


class Store(GenServer):
    """Owns the table; does nothing else, so it has nothing to crash on. It starts from this
    node's latest checkpoint, if its Replica has one."""

    def init(self, _: Any) -> Ok:
        data: dict[Any, Any] = {}
        replica = beamish.find_table(REPLICA)
        saved = replica.data.get("checkpoint") if replica is not None else None
        if saved is not None:
            restore(data, saved)
            log.info("the pipeline starts from a checkpoint (frame %d)", data["source"].seq
                     if "source" in data else 0)
        beamish.new_table(TABLE, data)
        return Ok(None)


class Replica(GenServer):
    """On every node: keeps the latest frame (what a viewer who joins here starts from) and
    the latest checkpoint of the pipeline's table (what its successor here would start
    from), both as the Publisher broadcast them."""

    def init(self, pubsub: str) -> Ok:
        data: dict[str, Any] = {}  # the table's, which the state holds too
        beamish.new_table(REPLICA, data)
        PubSub.subscribe(pubsub, CHECKPOINTS)
        PubSub.subscribe(pubsub, TOPIC)
        return Ok(data)

    def handle_info(self, message: Any, data: dict[str, Any]) -> NoReply:
        match message:
            case ("checkpoint", str(node), tuple(saved)):
                holder = Singleton.whereis(PIPELINE)
                if holder is None or holder.node == node:  # not from a conflict's loser
                    data["checkpoint"] = saved
            case Broadcast(_, "state", dict(frame)):
                data["frame"] = frame
        return NoReply(data)


class Counter(GenServer):
    """One metric over one window (see the module)."""

    @classmethod
    async def start_for(cls, key: Key) -> beamish.Pid:
        return await cls.start_link(key, name=counter_name(key))

    def init(self, key: Key) -> Ok:
        data = store()
        if key not in data:
            _, width, size = next(w for w in WINDOWS if w[0] == key[1])
            histogram = BY_NAME[key[0]].kind == "distribution"
            data[key] = Counted(Window(width, size, histogram=histogram))
        return Ok(key, Continue("catch_up"))  # batches sent while it was down

    def handle_info(self, message: Any, key: Key) -> NoReply:
        # A plain def: the common batch is applied at once, with no task; only a gap in the
        # numbers awaits the source, in handle_continue.
        match message:
            case ("batch", int(number), Batch() as batch):
                record: Counted = store()[key]
                if number == record.applied + 1:
                    _apply(record, number, batch)
                elif number > record.applied + 1:
                    return NoReply(key, Continue(("catch_up", number, batch)))
                # else: applied already (a replay crossed it)
        return NoReply(key)

    async def handle_continue(self, term: Any, key: Key) -> NoReply:
        record: Counted = store()[key]
        await self._catch_up(key, record)
        match term:
            case ("catch_up", int(number), Batch() as batch) if number == record.applied + 1:
                _apply(record, number, batch)
        return NoReply(key)

    async def _catch_up(self, key: Key, record: Counted) -> None:
        try:
            missed: list[tuple[int, Batch]] = await GenServer.call(
                SOURCE, ("replay", key, record.applied)
            )
        except CallError:  # no source (starting, or restarting): the next batch's gap asks again
            return
        for number, batch in missed:
            if number > record.applied:
                if number > record.applied + 1:  # dropped by a full buffer: lost, counted
                    log.warning("counter %s: batches %d to %d are lost", key,
                                record.applied + 1, number - 1)
                _apply(record, number, batch)


def _apply(record: Counted, number: int, batch: Batch) -> None:
    record.window.add(batch.newest, batch.count, batch.total, batch.values)
    record.applied = number
    record.counted += batch.count
    record.newest = max(record.newest, batch.newest)


class Source(GenServer):
    """Makes ``rate`` events a second and sends each counter its batches (see the module)."""

    def init(self, arg: tuple[float, int]) -> Ok:
        rate, max_unapplied = arg
        data = store()
        made = data.setdefault("source", Made())
        events = EventSource(rate)
        events.tick(time.time())
        beamish.send_after(beamish.self(), "tick", TICK)
        return Ok((events, made, made.unapplied, max_unapplied))

    def handle_info(self, message: Any, state: Any) -> NoReply:
        if message != "tick":
            return NoReply(state)
        events, made, unapplied, max_unapplied = state
        beamish.send_after(beamish.self(), "tick", TICK)
        data = store()
        now = time.time()
        events.incident = now < made.incident_until
        for metric, batch in events.tick(now).items():
            made.made[metric] += batch.count
            for window, _, _ in WINDOWS:
                key = (metric, window)
                number = made.numbered[key] = made.numbered[key] + 1
                waiting = unapplied[key]
                applied = data[key].applied if key in data else 0
                while waiting and waiting[0][0] <= applied:
                    waiting.popleft()
                waiting.append((number, batch))
                if len(waiting) > max_unapplied:
                    dropped = waiting.popleft()[1].count
                    if window == WINDOWS[0][0]:  # count each event once, not per window
                        made.lost += dropped
                    log.warning("counter %s is behind by %d batches: the oldest is dropped",
                                key, max_unapplied)
                pid = beamish.whereis(counter_name(key))
                if pid is not None:  # a counter being restarted catches up when it is back
                    beamish.send(pid, ("batch", number, batch))
        return NoReply(state)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        events, made, unapplied, _ = state
        match request:
            case ("replay", key, applied):
                return Reply([entry for entry in unapplied[key] if entry[0] > applied], state)
            case ("rate", float() | int() as rate) if 0 <= rate <= 1_000_000:
                events.rate = float(rate)
                return Reply(events.rate, state)
            case "rate":
                return Reply(events.rate, state)
            case "stats":
                frame = build_frame(0)
                return Reply({k: frame[k] for k in ("made", "counted", "lost", "newest")},
                             state)
            case ("incident", float() | int() as seconds) if 0 < seconds <= MAX_INCIDENT:
                made.incident_until = time.time() + seconds
                log.warning("an incident is simulated for %g s: a third of the events are "
                            "errors", seconds)
                return Reply("ok", state)
        return Reply(("error", f"the source does not understand {request!r}"), state)


class Publisher(GenServer):
    """Broadcasts the state every ``interval`` seconds; keeps the latest frame for joins."""

    def init(self, arg: tuple[str, float]) -> Ok:
        pubsub, interval = arg
        beamish.send_after(beamish.self(), "publish", interval)
        return Ok((pubsub, interval))

    def handle_info(self, message: Any, state: tuple[str, float]) -> NoReply:
        pubsub, interval = state
        if message == "publish":
            beamish.send_after(beamish.self(), "publish", interval)
            data = store()
            made: Made = data["source"]
            made.seq += 1  # frames number on across restarts and nodes: in the checkpoint
            frame = build_frame(made.seq)
            data["frame"] = frame
            # the checkpoint first: a node that has a frame has its counts (one sender,
            # one order)
            PubSub.broadcast(pubsub, CHECKPOINTS, ("checkpoint", beamish.node(),
                                                   checkpoint(data)))
            broadcast(pubsub, TOPIC, "state", frame)
        return NoReply(state)


def build_frame(seq: int, now: float | None = None,
                data: dict[Any, Any] | None = None) -> dict[str, Any]:
    """Every metric in every window, as the page draws them (JSON-ready)."""
    now = time.time() if now is None else now
    data = store() if data is None else data
    metrics: dict[str, Any] = {}
    newest = 0.0
    for metric in METRICS:
        windows = {}
        for window, _, _ in WINDOWS:
            record: Counted | None = data.get((metric.name, window))
            if record is None:  # its counter is starting
                continue
            windows[window] = window_summary(metric, record.window, now)
            newest = max(newest, record.newest)
        metrics[metric.name] = windows
    made: Made | None = data.get("source")
    first = WINDOWS[0][0]
    counted = {m.name: data[(m.name, first)].counted for m in METRICS if (m.name, first) in data}
    return {
        "seq": seq, "at": round(now * 1000), "newest": round(newest * 1000),
        "incident": bool(made and now < made.incident_until),
        "metrics": metrics,
        "made": dict(made.made) if made else {}, "counted": counted,
        "lost": made.lost if made else 0,
    }


def latest_frame() -> dict[str, Any]:
    """The frame the Publisher sent last (what a viewer who joins now starts from), as this
    node's Replica has it; on the pipeline's node before its first frame, the counts now."""
    for table in (REPLICA, TABLE):
        found = beamish.find_table(table)
        frame: dict[str, Any] | None = found.data.get("frame") if found is not None else None
        if frame is not None:
            return frame
    return build_frame(0, data={} if beamish.find_table(TABLE) is None else None)


def _source() -> Any:
    """The Source, on whichever node the pipeline runs (here, for a pipeline run alone)."""
    return Singleton.beside(PIPELINE, SOURCE)


async def simulate_incident(seconds: float) -> None:
    """For ``seconds`` (at most ``MAX_INCIDENT``), a third of the events are errors."""
    answer = await GenServer.call(_source(), ("incident", seconds))
    if answer != "ok":
        raise ValueError(f"an incident lasts 0 to {MAX_INCIDENT} seconds, not {seconds!r}")


async def set_rate(rate: float) -> float:
    """Change how many events a second the source makes (0 to 1,000,000)."""
    result: float = await GenServer.call(_source(), ("rate", rate))
    return result


async def stats() -> dict[str, Any]:
    """What was made and counted per metric, events lost, the newest counted (from the
    pipeline's node)."""
    result: dict[str, Any] = await GenServer.call(_source(), "stats")
    return result


class Counters(Supervisor):
    def init(self, _: Any) -> SupervisorFlags:
        children = [
            {"id": counter_name(key), "start": (Counter.start_for, (key,))} for key in KEYS
        ]
        flags: SupervisorFlags = Supervisor.init(
            children, strategy="one_for_one", max_restarts=1000, max_seconds=10
        )
        return flags


class Pipeline(Supervisor):
    """The tree above. ``(Pipeline, (pubsub, rate, interval, max_unapplied))``."""

    def init(self, arg: tuple[str, float, float, int]) -> SupervisorFlags:
        pubsub, rate, interval, max_unapplied = arg
        children = [
            {"id": "store", "start": (Store.start_link, (None,))},
            {"id": "counters", "start": (Counters.start_link, (None,)), "type": "supervisor"},
            {"id": "source", "start": (_start_source, (rate, max_unapplied))},
            {"id": "publisher", "start": (Publisher.start_link, ((pubsub, interval),))},
        ]
        flags: SupervisorFlags = Supervisor.init(
            children, strategy="rest_for_one", max_restarts=100, max_seconds=10
        )
        return flags


async def _start_source(rate: float, max_unapplied: int) -> beamish.Pid:
    return await Source.start_link((rate, max_unapplied), name=SOURCE)
