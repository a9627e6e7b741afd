"""Broadcasting to channels: encode once, deliver to each connection's process (Phoenix's
fastlane).

How it works. A joined channel subscribes to its topic with ``Fastlane`` metadata: its
transport's pid, the transport's serializer and the events the channel intercepts. A
broadcast goes through PubSub with the ``fastlane`` dispatcher, which walks the subscribers
once and encodes the broadcast once per serializer (in practice once), into one ``Push``
whose WebSocket frame is built then too (``Push.framed()``, ``_ws_protocol.py``): the same
bytes for every connection. Each transport is sent that ``Push``, as Phoenix's fastlane
sends the encoded message to the transport pid, and writes it from its own process, in
order with everything else it writes: on beamish's WebSocket protocol the frame's bytes go
straight to the connection's transport, elsewhere through the ASGI ``send``. No process
writes into another's connection; the channel processes are not woken at all: only a
channel that intercepts the event gets the ``Broadcast`` itself, to run ``handle_out``.
Subscribers without fastlane metadata (a plain ``PubSub.subscribe``, a test process) get
the ``Broadcast`` too.

A ``Broadcast`` sent through PubSub with the default dispatcher (Presence's diffs) reaches the
channel processes instead; each pushes it to its client (after ``handle_out`` if it
intercepts the event). Both paths give the client the same frame.
"""

from __future__ import annotations

from typing import Any

from beamish._runtime.api import send
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish.pubsub import PubSub
from beamish.web._messages import Broadcast
from beamish.web._serializer import SerializerError
from beamish.web._wire import Push

__all__ = ["Fastlane", "broadcast", "broadcast_from", "fastlane", "local_broadcast"]


@mark_shared
class Fastlane:
    """A channel's subscription metadata: where to deliver a broadcast, unless intercepted."""

    __slots__ = ("intercepts", "serializer", "transport_pid")

    def __init__(self, transport_pid: Pid, serializer: Any, intercepts: frozenset[str]) -> None:
        self.transport_pid = transport_pid
        self.serializer = serializer
        self.intercepts = intercepts

    def __copy__(self) -> Fastlane:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Fastlane:
        return self

    def __repr__(self) -> str:
        return f"Fastlane({self.transport_pid!r}, {self.serializer!r}, {set(self.intercepts)!r})"


def fastlane(entries: list[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    """The PubSub dispatcher of channel broadcasts (see the module's docstring)."""
    if type(message) is not Broadcast:
        for pid, _ in entries:
            if pid != from_pid:
                send(pid, message)
        return
    event = message.event
    serializer: Any = None
    push: Any = None
    pushes: dict[Any, Push] | None = None
    fast = Fastlane
    for pid, meta in entries:
        if type(meta) is fast and event not in meta.intercepts:
            if from_pid is not None and pid == from_pid:
                continue
            if meta.serializer is not serializer:
                if push is not None:
                    if pushes is None:
                        pushes = {}
                    pushes[serializer] = push
                serializer = meta.serializer
                found = pushes.get(serializer) if pushes is not None else None
                if found is None:
                    found = Push(serializer.encode_broadcast(message.topic, event,
                                                             message.payload),
                                 (message.topic, event))
                    if type(found.data) is str or type(found.data) is bytes:
                        found.framed()  # built once, here, before any process shares it
                push = found
            send(meta.transport_pid, push)
        elif from_pid is None or pid != from_pid:
            send(pid, message)


PubSub.register_dispatcher("beamish.web.fastlane", fastlane)  # so broadcasts cross nodes


def broadcast(pubsub: str, topic: str, event: str, payload: Any) -> None:
    """Broadcast ``event`` with ``payload`` to every channel joined to ``topic``, on every
    node (Phoenix's ``Endpoint.broadcast``). ``payload`` is a dict, or bytes for a binary
    frame."""
    PubSub.broadcast(pubsub, topic, _broadcast(topic, event, payload), fastlane)


def broadcast_from(pubsub: str, from_pid: Pid, topic: str, event: str, payload: Any) -> None:
    """Like ``broadcast``, skipping the channel process ``from_pid``."""
    PubSub.broadcast_from(pubsub, from_pid, topic, _broadcast(topic, event, payload), fastlane)


def local_broadcast(pubsub: str, topic: str, event: str, payload: Any) -> None:
    """Like ``broadcast``, to the channels on this node only."""
    PubSub.local_broadcast(pubsub, topic, _broadcast(topic, event, payload), fastlane)


def _broadcast(topic: str, event: str, payload: Any) -> Broadcast:
    if type(topic) is not str or type(event) is not str:
        raise TypeError(
            f"a broadcast's topic and event are strings, got {topic!r} and {event!r}"
        )
    if type(payload) is not dict and type(payload) is not bytes:
        raise SerializerError(
            f"a broadcast payload must be a dict (or bytes, for a binary frame), got "
            f"{payload!r} ({type(payload).__name__})"
        )
    return Broadcast(topic, event, payload)
