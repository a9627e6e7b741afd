"""The hub of one event stream: it follows topics, numbers their events, hands them out.

How it works. A stream has one hub, a GenServer registered as ``beamish.sse:<name>``. It
subscribes to a PubSub topic only while it *follows* it: the exact topics of the stream's
``allow`` list from its start to its end, any other topic while a connection wants it and
``linger`` seconds more (so a client that reconnects at once resumes without a gap). Each
event published there (``EventStream.publish``, or a channel ``Broadcast``) is numbered by
the stream's ``EventLog`` and offered to the ``Outbox`` of every connection of its topic;
a full outbox is dropped by its connection, never waited for.

A connection *attaches* with one call, which in a single step follows its topics, records
its outbox and answers what to write first (``EventLog.resume``), so no event can fall
between the replay and the live ones. The hub monitors each connection, and when one ends,
however it ends, releases its topics: the last connection of a topic starts its linger,
after which the hub unsubscribes. Nothing a client does leaves a subscription behind.

A hub that restarts starts a new epoch: its connections, which monitor it, end their
streams, and their clients come back with ids of the old epoch and are told of the gap.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import cancel_timer, demonitor, monitor, send_after
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Down
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.records import register_wire_type
from beamish.pubsub import PubSub
from beamish.web._messages import Broadcast
from beamish.web._sse_config import StreamConfig, show
from beamish.web._sse_log import EventLog, Resume, check_event_name
from beamish.web._sse_outbox import Outbox

__all__ = ["EventStreamInfo", "Hub", "Publish", "SSEConnection", "encode_data", "hub_name"]

_log = logging.getLogger("beamish.sse")
_RELEASE = "beamish.sse.release"


def hub_name(stream: str) -> str:
    return f"beamish.sse:{stream}"


def encode_data(data: Any) -> bytes:
    """An event's data: bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return orjson.dumps(data)


@mark_shared
class Publish:
    """What ``EventStream.publish`` broadcasts on a topic: an event for the streams only."""

    __slots__ = ("data", "event", "topic")
    __match_args__ = ("topic", "event", "data")

    def __init__(self, topic: str, event: str | None, data: bytes) -> None:
        self.topic = topic
        self.event = event
        self.data = data


register_wire_type(Publish, "beamish.web.sse.Publish")  # events cross nodes


@dataclass(frozen=True, slots=True)
class SSEConnection:
    """One connection of a stream: its topics and what it has waiting to be written
    (``peak_*``: the most it ever had; each stays within the stream's limits)."""

    pid: Pid
    topics: tuple[str, ...]
    queued_events: int
    queued_bytes: int
    peak_events: int
    peak_bytes: int


@dataclass(frozen=True, slots=True)
class EventStreamInfo:
    """A snapshot of a running stream (``await EventStream.info(name)``).

    ``position`` is the id of its latest number; ``topics`` those it follows now.
    """

    name: str
    epoch: str
    position: str
    buffered: int
    topics: tuple[str, ...]
    connections: tuple[SSEConnection, ...]


@dataclass(slots=True)
class _Topic:
    outboxes: dict[Pid, Outbox]
    permanent: bool
    release: Ref | None = None  # the linger timer, while no connection wants it
    token: int = 0


@dataclass(slots=True)
class _Connection:
    topics: tuple[str, ...]
    outbox: Outbox
    ref: Ref


class Hub(GenServer):
    """A stream's numbering, buffer and subscriptions (hidden; see the module's docstring)."""

    __slots__ = ("config", "connections", "log", "releases", "topics")

    def init(self, config: StreamConfig) -> Ok:
        self.config = config
        self.log = EventLog(secrets.token_hex(8), config.buffer_size)
        self.topics: dict[str, _Topic] = {}
        self.connections: dict[Pid, _Connection] = {}
        self.releases = 0
        if config.allow is not None:
            for topic in sorted(config.allow.exact):
                self._follow(topic, permanent=True)
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        match request:
            case ("attach", tuple(topics), last_event_id, Outbox() as outbox):
                return Reply(self._attach(from_.pid, topics, last_event_id, outbox), state)
            case "info":
                return Reply(self._info(), state)
        reply: Reply = super().handle_call(request, from_, state)
        return reply

    def handle_info(self, message: Any, state: Any) -> NoReply:
        kind = type(message)
        if kind is Publish:
            self._emit(message.topic, message.event, message.data)
        elif kind is Broadcast:
            problem = check_event_name(message.event)
            if problem is None:
                self._emit(message.topic, message.event, encode_data(message.payload))
            else:
                _log.warning(
                    "event stream %r: a broadcast on %s named %s is not streamed: %s",
                    self.config.name, show(message.topic), show(str(message.event)), problem,
                )
        elif kind is Down:
            self._detach(message)
        elif kind is tuple and len(message) == 3 and message[0] == _RELEASE:
            self._release(message[1], message[2])
        else:
            return super().handle_info(message, state)  # type: ignore[no-any-return]
        return NoReply(state)

    # -- connections ----------------------------------------------------------------------

    def _attach(
        self, pid: Pid, topics: tuple[str, ...], last_event_id: str | None, outbox: Outbox
    ) -> Resume:
        old = self.connections.pop(pid, None)
        if old is not None:  # attached again: the new topics replace the old
            demonitor(old.ref, flush=True)
            self._drop(pid, old)
        for topic in topics:
            self._follow(topic).outboxes[pid] = outbox
        self.connections[pid] = _Connection(topics, outbox, monitor(pid))
        return self.log.resume(last_event_id, topics)

    def _detach(self, down: Down) -> None:
        connection = self.connections.get(down.pid)
        if connection is None or connection.ref != down.ref:
            return
        del self.connections[down.pid]
        self._drop(down.pid, connection)

    def _drop(self, pid: Pid, connection: _Connection) -> None:
        connection.outbox.close()
        for topic in connection.topics:
            entry = self.topics.get(topic)
            if entry is None:
                continue
            entry.outboxes.pop(pid, None)
            if not entry.outboxes and not entry.permanent:
                if self.config.linger == 0:
                    self._unfollow(topic)
                else:
                    self.releases += 1
                    entry.token = self.releases
                    entry.release = send_after(
                        self.pid, (_RELEASE, topic, entry.token), self.config.linger
                    )

    # -- topics ---------------------------------------------------------------------------

    def _follow(self, topic: str, *, permanent: bool = False) -> _Topic:
        entry = self.topics.get(topic)
        if entry is not None:
            if entry.release is not None:
                cancel_timer(entry.release)
                entry.release = None
                entry.token = 0
            return entry
        PubSub.subscribe(self.config.pubsub, topic)
        self.log.follow(topic, from_start=permanent)
        entry = self.topics[topic] = _Topic({}, permanent)
        return entry

    def _release(self, topic: str, token: int) -> None:
        entry = self.topics.get(topic)
        if entry is not None and not entry.outboxes and entry.token == token:
            self._unfollow(topic)

    def _unfollow(self, topic: str) -> None:
        del self.topics[topic]
        PubSub.unsubscribe(self.config.pubsub, topic)
        self.log.unfollow(topic)

    # -- events ---------------------------------------------------------------------------

    def _emit(self, topic: str, event: str | None, data: bytes) -> None:
        numbered = self.log.append(topic, event, data)
        if numbered is None:  # published before the hub let go of the topic: not followed
            return
        for outbox in self.topics[topic].outboxes.values():
            outbox.offer(numbered)

    def _info(self) -> EventStreamInfo:
        return EventStreamInfo(
            name=self.config.name, epoch=self.log.epoch, position=self.log.position,
            buffered=self.log.buffered(), topics=tuple(sorted(self.topics)),
            connections=tuple(
                SSEConnection(
                    pid, c.topics, c.outbox.events, c.outbox.bytes, c.outbox.peak_events,
                    c.outbox.peak_bytes,
                )
                for pid, c in self.connections.items()
                if not c.outbox.closed  # an ended stream takes no more events: not listed
            ),
        )
