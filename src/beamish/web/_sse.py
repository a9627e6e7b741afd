"""Server-Sent Events: a read-only live stream of PubSub topics, resumable after a drop.

The live-stream use case for clients that only read (a ticker, a feed, a dashboard): a plain
``GET`` answered with ``text/event-stream``, which every browser reads with ``EventSource``
and which reconnects by itself, sending the ``Last-Event-ID`` it saw last.

How it works. A stream has one *hub* process. It subscribes to each PubSub topic a client
asks for, numbers every event it receives there with one sequence (the ``id:`` field), keeps
the last ``buffer_size`` events in a ring buffer, and relays each, numbered, to the
connections of its topic. Each connection is a process of its own (the request's process
when the router serves it): it subscribes to the relay first, then asks the hub to attach
its topics and hand over the buffered events after its ``Last-Event-ID``, writes those, then
the live ones, skipping any id it already wrote — so nothing falls between replay and live.
A client away longer than the buffer covers gets what the buffer still holds, after a
``: gap`` comment. Comments keep an idle connection open through proxies. A client that goes
away ends its process; a slow client fills only its own mailbox, never a publisher's.

Events reach a stream from ``EventStream.publish(stream, topic, data, event=...)``, and from
channel broadcasts on the same PubSub (``Broadcast(topic, event, payload)``), so a chat
room's messages can be followed read-only over SSE.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from beamish._errors import NotInProcessError
from beamish._otp.child_spec import ChildSpec
from beamish._otp.gen_server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import current_runtime, exit, send, spawn_link
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_immutable
from beamish._runtime.messages import Exit
from beamish._runtime.pid import Pid
from beamish._runtime.receive import receive
from beamish.pubsub import PubSub
from beamish.web._messages import Broadcast

__all__ = ["EventStream", "SSEEvent"]

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
_OPTIONS = ("name", "pubsub", "buffer_size", "keepalive", "topics")


@mark_immutable
class SSEEvent:
    """One numbered event, as the hub relays it to the connections of its topic."""

    __slots__ = ("data", "event", "id", "topic")

    def __init__(self, id: int, topic: str, event: str | None, data: bytes) -> None:
        self.id = id
        self.topic = topic
        self.event = event
        self.data = data

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format."""
        head = f"id: {self.id}\n" + (f"event: {self.event}\n" if self.event else "")
        lines = b"".join(b"data: " + line + b"\n" for line in self.data.split(b"\n"))
        return head.encode() + lines + b"\n"


@mark_immutable
class _Publish:
    __slots__ = ("data", "event", "topic")

    def __init__(self, topic: str, event: str | None, data: bytes) -> None:
        self.topic = topic
        self.event = event
        self.data = data


def _encode_data(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return orjson.dumps(data)


def _relay(stream: str, topic: str) -> str:
    return f"beamish.sse:{stream}:{topic}"


class _Hub(GenServer):
    """A stream's numbering, buffer and topic subscriptions (hidden)."""

    __slots__ = ("buffer", "config", "sequence", "topics")

    def init(self, config: dict[str, Any]) -> Ok:
        self.config = config
        self.sequence = 0
        self.buffer: deque[SSEEvent] = deque(maxlen=config["buffer_size"])
        self.topics: set[str] = set()
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        match request:
            case ("attach", topics, last_id):
                for topic in topics:
                    if topic not in self.topics:
                        PubSub.subscribe(self.config["pubsub"], topic)
                        self.topics.add(topic)
                wanted = set(topics)
                events = tuple(e for e in self.buffer if e.id > last_id and e.topic in wanted)
                oldest = self.buffer[0].id if self.buffer else self.sequence + 1
                gap = 0 < last_id < oldest - 1
                return Reply((events, gap), state)
        reply: Reply = super().handle_call(request, from_, state)
        return reply

    def handle_info(self, message: Any, state: Any) -> NoReply:
        kind = type(message)
        if kind is _Publish:
            self._emit(message.topic, message.event, message.data)
        elif kind is Broadcast:
            self._emit(message.topic, message.event, _encode_data(message.payload))
        else:
            return super().handle_info(message, state)  # type: ignore[no-any-return]
        return NoReply(state)

    def _emit(self, topic: str, event: str | None, data: bytes) -> None:
        self.sequence += 1
        numbered = SSEEvent(self.sequence, topic, event, data)
        self.buffer.append(numbered)
        PubSub.local_broadcast(self.config["pubsub"], _relay(self.config["name"], topic),
                               numbered)


class EventStream:
    """A Server-Sent Events stream of PubSub topics, resumable from ``Last-Event-ID``.

    Start it in the application's tree, mount its app on a route::

        children = [(PubSub, {"name": "app"}), (EventStream, {"name": "news", "pubsub": "app"})]
        router.mount("/events", EventStream.app("news"))      # GET /events?topic=sports
        EventStream.publish("news", "sports", {"score": "2-1"}, event="goal")

    Options (a dict): ``name`` and ``pubsub`` (required); ``buffer_size``, the events kept
    for clients that reconnect (default 1,000); ``keepalive``, seconds between comments on
    an idle connection (default 15); ``topics``, ``fn(scope) -> list[str]`` choosing a
    request's topics (default: its ``topic`` query parameters).
    """

    @staticmethod
    def child_spec(options: dict[str, Any]) -> ChildSpec:
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown EventStream option(s) {', '.join(sorted(unknown))}; the options are "
                f"{', '.join(_OPTIONS)}"
            )
        if "name" not in options or "pubsub" not in options:
            raise TypeError("an EventStream needs a name and the pubsub its topics live on")
        config = {
            "name": options["name"], "pubsub": options["pubsub"],
            "buffer_size": int(options.get("buffer_size", 1000)),
            "keepalive": float(options.get("keepalive", 15.0)),
            "topics": options.get("topics"),
        }
        return ChildSpec(
            id=("EventStream", config["name"]), start=(_start_hub, (config,)),
            modules=(EventStream,),
        )

    @staticmethod
    def publish(stream: str, topic: str, data: Any, *, event: str | None = None) -> None:
        """Publish ``data`` (bytes, str, or anything orjson encodes) to ``topic``."""
        PubSub.broadcast(_config(stream)["pubsub"], topic,
                         _Publish(topic, event, _encode_data(data)))

    @staticmethod
    def app(stream: str) -> Callable[[Scope, Receive, Send], Any]:
        """The ASGI app that serves the stream (mount it on a route)."""

        async def serve(scope: Scope, receive_: Receive, send_: Send) -> None:
            await _serve(stream, scope, receive_, send_)

        return serve


def _streams() -> dict[str, dict[str, Any]]:
    streams: dict[str, dict[str, Any]] = current_runtime().extensions.setdefault(
        "beamish.web.sse", {}
    )
    return streams


def _config(stream: str) -> dict[str, Any]:
    config = _streams().get(stream)
    if config is None:
        raise LookupError(
            f"no EventStream named {stream!r} is running; put (EventStream, {{'name': "
            f"{stream!r}, 'pubsub': ...}}) in the application's supervision tree"
        )
    return config


async def _start_hub(config: dict[str, Any]) -> Pid:
    pid = await _Hub.start_link(config, name=f"beamish.sse:{config['name']}")
    _streams()[config["name"]] = config
    return pid


def _topics(config: dict[str, Any], scope: Scope) -> list[str]:
    chooser = config["topics"]
    if chooser is not None:
        return list(chooser(scope))
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("topic", [])


def _last_event_id(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"last-event-id":
            with contextlib.suppress(ValueError):
                return max(int(value), 0)
    return 0


async def _serve(stream: str, scope: Scope, receive_: Receive, send_: Send) -> None:
    if scope["type"] != "http" or scope.get("method", "GET") != "GET":
        await _plain(send_, 405, b"a Server-Sent Events stream is read with GET\n")
        return
    config = _config(stream)
    topics = _topics(config, scope)
    if not topics:
        await _plain(send_, 400, b"name at least one topic: ?topic=...\n")
        return
    try:
        _self()
    except NotInProcessError:  # not served through the router: be a process anyway
        async with current_runtime().as_process():
            await _stream(config, topics, scope, receive_, send_)
        return
    await _stream(config, topics, scope, receive_, send_)


async def _stream(
    config: dict[str, Any], topics: list[str], scope: Scope, receive_: Receive, send_: Send
) -> None:
    for topic in topics:  # subscribe before asking for the replay: nothing falls between
        PubSub.subscribe(config["pubsub"], _relay(config["name"], topic))
    events, gap = await GenServer.call(
        f"beamish.sse:{config['name']}", ("attach", topics, _last_event_id(scope))
    )
    await send_({
        "type": "http.response.start", "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ],
    })
    written = _last_event_id(scope)
    if gap:
        await _body(send_, b": gap\n\n")
    for event in events:
        await _body(send_, event.encode())
        written = event.id
    watcher = spawn_link(_watch_disconnect, receive_, _self())
    try:
        while True:
            message = await receive(timeout=config["keepalive"], default=None)
            if message is None:
                await _body(send_, b": keepalive\n\n")
            elif type(message) is SSEEvent:
                if message.id > written:
                    written = message.id
                    await _body(send_, message.encode())
            elif message == "disconnected" or type(message) is Exit:
                return
    finally:
        exit(watcher, "kill")


async def _watch_disconnect(receive_: Receive, owner: Pid) -> None:
    """Tell the stream's process when its client goes away (a request body is consumed)."""
    while True:
        message = await receive_()
        if message.get("type") == "http.disconnect":
            send(owner, "disconnected")
            return


async def _body(send_: Send, chunk: bytes) -> None:
    await send_({"type": "http.response.body", "body": chunk, "more_body": True})


async def _plain(send_: Send, status: int, text: bytes) -> None:
    await send_({"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send_({"type": "http.response.body", "body": text})
