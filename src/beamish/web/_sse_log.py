"""The numbered history of one event stream: ids, followed topics, the buffer (pure).

How it works. An ``EventLog`` numbers the events of the topics it *follows* with one
sequence, and keeps the last ``capacity`` of them. An event's id is ``<epoch>-<seq>``: the
epoch is drawn anew each time a stream's hub starts (16 random hex digits, so it differs
across restarts of the hub and of the OS process), so an id from an earlier run is
recognised as such instead of being read as a position in this one.

``resume(last_event_id, topics)`` decides what a client coming back with ``Last-Event-ID``
gets: the buffered events of its topics after that id, or, when that would not be the whole
truth, a *gap*: ``event: beamish:gap`` with the reason, after which the client reads live
events and should reload what it shows. The reasons:

- ``"malformed"``: the id is not one this stream issues (an old numeric id, garbage);
- ``"restarted"``: the id carries another epoch: it is from an earlier run of the stream;
- ``"ahead"``: the id is past the stream's counter (never issued);
- ``"expired"``: an event of the client's topics after that id has left the buffer;
- ``"not_followed"``: the stream stopped following one of the topics for a while after
  that id (no connection wanted it), so what was published then was never numbered.

To tell the last two apart from a clean resume, the log remembers, per followed topic, the
sequence at which it started following it (``follow`` advances the sequence by one, so an
id handed out before that is always older) and the sequence of its latest event that left
the buffer.

Every opening ends on the stream's current position: a line ``id: <epoch>-<seq>`` with no
data sets the browser's ``lastEventId`` without firing an event, so a client that drops
before its first event still resumes from where it started.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from beamish._runtime.isolation import mark_shared

__all__ = ["GAP_EVENT", "EventLog", "Resume", "SSEEvent", "check_event_name", "parse_id"]

GAP_EVENT = "beamish:gap"
"""The name of the event that tells a client it missed events."""

_ID = re.compile(r"([0-9a-f]{16})-(0|[1-9][0-9]{0,18})\Z")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_SHOWN = 100  # characters of a client's id echoed back in a gap event


@mark_shared
class SSEEvent:
    """One numbered event of a stream, with its ``text/event-stream`` bytes made once."""

    __slots__ = ("data", "event", "id", "seq", "topic", "wire")

    def __init__(self, epoch: str, seq: int, topic: str, event: str | None, data: bytes) -> None:
        self.id = f"{epoch}-{seq}"
        self.seq = seq
        self.topic = topic
        self.event = event
        self.data = data
        head = f"id: {self.id}\n" + (f"event: {event}\n" if event else "")
        # Every line break the format knows (CR LF, CR, LF) starts a new data line, so data
        # can never add a field of its own; the client joins the lines back with LF.
        lines = b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK.split(data))
        self.wire = head.encode() + lines + b"\n"

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format."""
        return self.wire

    def __repr__(self) -> str:
        return f"SSEEvent({self.id!r}, {self.topic!r}, {self.event!r}, {len(self.data)} bytes)"


def check_event_name(event: str | None) -> str | None:
    """What is wrong with ``event`` as an event name, or None when it is fine."""
    if event is None:
        return None
    if type(event) is not str:
        return f"an event name is a str, got {type(event).__name__}"
    if "\r" in event or "\n" in event:
        return "an event name is one line (a line break would start another field)"
    if event.startswith("beamish:"):
        return "event names starting with 'beamish:' are the stream's own (beamish:gap)"
    return None


def parse_id(text: str) -> tuple[str, int] | None:
    """``(epoch, seq)`` of an id this module makes, or None."""
    found = _ID.match(text)
    return None if found is None else (found.group(1), int(found.group(2)))


@dataclass(frozen=True, slots=True)
class Resume:
    """What a connection writes first: buffered events, or a gap; then its position."""

    position: str
    events: tuple[SSEEvent, ...] = ()
    gap: str | None = None
    last_event_id: str | None = None

    def encode(self) -> bytes:
        if self.gap is not None:
            data = orjson.dumps({"reason": self.gap, "last_event_id": self.last_event_id})
            return f"id: {self.position}\nevent: {GAP_EVENT}\n".encode() + b"data: " + data + (
                b"\n\n"
            )
        last = self.events[-1].id if self.events else self.last_event_id
        opening = b"".join(event.wire for event in self.events)
        if last != self.position:
            opening += f"id: {self.position}\n\n".encode()
        return opening


class EventLog:
    """The numbering, the followed topics and the buffer of one stream run (see above)."""

    __slots__ = ("_buffer", "_capacity", "_evicted", "_since", "epoch", "sequence")

    def __init__(self, epoch: str, capacity: int) -> None:
        if not re.fullmatch(r"[0-9a-f]{16}", epoch):
            raise ValueError(f"an epoch is 16 lowercase hex digits, got {epoch!r}")
        self.epoch = epoch
        self.sequence = 0
        self._capacity = capacity
        self._buffer: deque[SSEEvent] = deque()
        self._since: dict[str, int] = {}
        self._evicted: dict[str, int] = {}

    @property
    def position(self) -> str:
        """The id of the stream's present: everything up to it has been numbered."""
        return f"{self.epoch}-{self.sequence}"

    def buffered(self) -> int:
        return len(self._buffer)

    def follows(self, topic: str) -> bool:
        return topic in self._since

    def followed(self) -> list[str]:
        return list(self._since)

    def follow(self, topic: str, *, from_start: bool = False) -> None:
        """Number ``topic``'s events from now on. Ids handed out before cannot resume it,
        unless ``from_start`` (followed since the run began, before any id was issued)."""
        if topic in self._since:
            return
        if from_start and self.sequence == 0:
            self._since[topic] = 0
            return
        self.sequence += 1
        self._since[topic] = self.sequence

    def unfollow(self, topic: str) -> None:
        self._since.pop(topic, None)
        self._evicted.pop(topic, None)

    def append(self, topic: str, event: str | None, data: bytes) -> SSEEvent | None:
        """Number and keep an event of ``topic``; None when the topic is not followed."""
        if topic not in self._since:
            return None
        self.sequence += 1
        numbered = SSEEvent(self.epoch, self.sequence, topic, event, data)
        buffer = self._buffer
        buffer.append(numbered)
        while len(buffer) > self._capacity:
            old = buffer.popleft()
            if old.topic in self._since:
                self._evicted[old.topic] = old.seq
        return numbered

    def resume(self, last_event_id: str | None, topics: Iterable[str]) -> Resume:
        """What a client of ``topics`` that last saw ``last_event_id`` (None: a new client)
        is owed; every topic must be followed."""
        position = self.position
        if last_event_id is None:
            return Resume(position)
        shown = last_event_id[:_SHOWN]
        parsed = parse_id(last_event_id)
        if parsed is None:
            return Resume(position, gap="malformed", last_event_id=shown)
        epoch, seq = parsed
        if epoch != self.epoch:
            return Resume(position, gap="restarted", last_event_id=shown)
        if seq > self.sequence:
            return Resume(position, gap="ahead", last_event_id=shown)
        wanted = set(topics)
        for topic in wanted:
            if self._since[topic] > seq:
                return Resume(position, gap="not_followed", last_event_id=shown)
            if self._evicted.get(topic, 0) > seq:
                return Resume(position, gap="expired", last_event_id=shown)
        missed: list[SSEEvent] = []
        for numbered in reversed(self._buffer):
            if numbered.seq <= seq:
                break
            if numbered.topic in wanted:
                missed.append(numbered)
        missed.reverse()
        return Resume(position, tuple(missed), last_event_id=shown)
