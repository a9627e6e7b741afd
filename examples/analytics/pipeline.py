"""The dashboard's processes: where the events come from, where they are counted, and how
they reach the pages. ::

    analytics.pipeline (rest_for_one)
    ├── Store         owns the table the counts live in, so that they outlive a counter
    ├── Counters      one Counter per metric and window (6 x 2), one_for_one
    ├── Source        makes the events, a tick every 20 ms, and sends each counter its batch
    └── Publisher     every `interval` seconds, reads the counts and broadcasts "state"

**Nothing counted is lost when a counter crashes.** A counter keeps its window in the
Store's table (a light ETS: the record outlives the counter's process), with the number of
the last batch it applied. The Source numbers each counter's batches and keeps those not yet
applied (it reads the counter's record: no message). A counter that restarts, or that sees
a batch whose number is not the next one, asks the Source for what it missed (``replay``)
before it goes on, and ignores a batch it has already applied: each event is counted once.
The Source keeps at most ``max_unapplied`` batches per counter; past that (a counter down
for longer), the oldest go and their events are counted as ``lost``, in the page's figures
and the log: never silently. The Store itself only holds the table; if it goes, the rest
of the tree restarts after it with empty windows (``rest_for_one``).

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
from beamish.web import broadcast

from .metrics import BY_NAME, METRICS, WINDOWS, Batch, EventSource, Window, window_summary

log = logging.getLogger("analytics")

TABLE = "analytics.store"
SOURCE = "analytics.source"
TOPIC = "analytics:live"
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


def store() -> dict[Any, Any]:
    """The Store's table (the counters' records, the Source's, the latest frame)."""
    table = beamish.find_table(TABLE)
    if table is None:
        raise RuntimeError("the analytics store is not running")
    data: dict[Any, Any] = table.data
    return data


# -- the processes ---------------------------------------------------------------------------


class Store(GenServer):
    """Owns the table; does nothing else, so it has nothing to crash on."""

    def init(self, _: Any) -> Ok:
        beamish.new_table(TABLE, {})
        return Ok(None)


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
        unapplied: dict[Key, deque[tuple[int, Batch]]] = {key: deque() for key in KEYS}
        events = EventSource(rate)
        events.tick(time.time())
        beamish.send_after(beamish.self(), "tick", TICK)
        return Ok((events, made, unapplied, max_unapplied))

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
        return Ok((pubsub, interval, 0))

    def handle_info(self, message: Any, state: tuple[str, float, int]) -> NoReply:
        pubsub, interval, seq = state
        if message == "publish":
            beamish.send_after(beamish.self(), "publish", interval)
            frame = build_frame(seq + 1)
            store()["frame"] = frame
            broadcast(pubsub, TOPIC, "state", frame)
            return NoReply((pubsub, interval, seq + 1))
        return NoReply(state)


def build_frame(seq: int, now: float | None = None) -> dict[str, Any]:
    """Every metric in every window, as the page draws them (JSON-ready)."""
    now = time.time() if now is None else now
    data = store()
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
    """The frame the Publisher sent last (what a viewer who joins now starts from)."""
    frame: dict[str, Any] | None = store().get("frame")
    return frame if frame is not None else build_frame(0)


async def simulate_incident(seconds: float) -> None:
    """For ``seconds`` (at most ``MAX_INCIDENT``), a third of the events are errors."""
    answer = await GenServer.call(SOURCE, ("incident", seconds))
    if answer != "ok":
        raise ValueError(f"an incident lasts 0 to {MAX_INCIDENT} seconds, not {seconds!r}")


async def set_rate(rate: float) -> float:
    """Change how many events a second the source makes (0 to 1,000,000)."""
    result: float = await GenServer.call(SOURCE, ("rate", rate))
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
