"""Server-Sent Events: a read-only live stream of PubSub topics, resumable after a drop.

The live-stream use case for clients that only read (a ticker, a feed, a dashboard): a plain
``GET`` answered with ``text/event-stream``, which every browser reads with ``EventSource``
and which reconnects by itself, sending the ``Last-Event-ID`` it saw last.

How it works. The parts live in modules of their own: the options and the rule for topics
(``_sse_config``), the numbering, ids and resume decisions (``_sse_log``, pure), the hub
process that follows topics and hands out events (``_sse_hub``), and the bounded queue of
one connection (``_sse_outbox``). This module is the public face and the connection.

A connection is a process (the request's own, when the router serves it). It first asks
the stream's rule about every topic the request names: each must match the ``allow`` list
and pass the ``authorize`` callback, whichever the stream has, or the answer is a 403
naming the rule; a client cannot add a topic of its own. Then it attaches to the hub, which
answers what to write first (the events the client missed, or a ``beamish:gap`` event, and
the stream's position), and from then on takes the live events its outbox collects.

It writes through the ASGI ``send`` without waiting for it (``write_now``): when the client
is slow, the write finishes in a task and the process keeps taking messages, so it always
knows where it stands. It ends when its client goes away (a watcher process reads the ASGI
``receive`` channel for the disconnect), when its outbox overflows (logged once, naming the
stream and its topics: the queue is dropped and the response ended), or when the hub goes
(its client reconnects and learns of the gap). Comments keep an idle connection open
through proxies.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from beamish._errors import CallError
from beamish._otp.gen_server.server import GenServer
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._runtime.api import (
    current_runtime,
    demonitor,
    exit,
    monitor,
    send,
    spawn_link,
    unlink,
    whereis,
)
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Down
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.receive import receive
from beamish.pubsub import PubSub
from beamish.web._request import flight_of
from beamish.web._sse_config import StreamConfig, parse_options, show
from beamish.web._sse_hub import EventStreamInfo, Hub, Publish, encode_data, hub_name
from beamish.web._sse_log import check_event_name
from beamish.web._sse_outbox import Outbox
from beamish.web._writer import write_now

__all__ = ["EventStream"]

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

_log = logging.getLogger("beamish.sse")
_CHUNK = 65_536  # bytes of queued events written at once
_WAKE = "beamish.sse.wake"
_DISCONNECTED = "beamish.sse.disconnected"
_SHOWN_TOPICS = 5


class EventStream:
    """A Server-Sent Events stream of PubSub topics, resumable from ``Last-Event-ID``.

    Start it in the application's tree, mount its app on a route::

        children = [
            (PubSub, {"name": "app"}),
            (EventStream, {"name": "news", "pubsub": "app", "allow": ["sports", "weather"]}),
        ]
        router.mount("/events", EventStream.app("news"), timeout=None)  # GET /events?topic=sports
        EventStream.publish("news", "sports", {"score": "2-1"}, event="goal")

    Options (a dict): ``name`` and ``pubsub`` (required). Which topics it serves (at least
    one of the two; a topic must pass each that is given): ``allow``, topic names and
    patterns ending in ``*`` (``"room:*"``); ``authorize``, ``fn(request, topic) -> bool``
    (``async def`` too; ``request`` is a Starlette ``Request``). ``topics``,
    ``fn(request) -> list[str]`` choosing a request's topics (default: its ``topic`` query
    parameters). Limits, each with its default: ``buffer_size`` (1,000 events kept for
    clients that come back), ``keepalive`` (15 s between comments on an idle connection),
    ``linger`` (30 s a topic stays followed after its last connection), ``max_topics`` (16
    per request), ``max_queue_events`` (10,000) and ``max_queue_bytes`` (1 MiB) waiting to
    be written to one connection before it is closed.
    """

    @staticmethod
    def child_spec(options: dict[str, Any]) -> ChildSpec:
        config = parse_options(options)
        return ChildSpec(
            id=("EventStream", config.name), start=(_start_hub, (config,)),
            modules=(EventStream,),
        )

    @staticmethod
    def publish(stream: str, topic: str, data: Any, *, event: str | None = None) -> None:
        """Publish ``data`` (bytes, str, or anything orjson encodes) to ``topic``."""
        if type(topic) is not str:
            raise TypeError(f"a topic is a str, got {topic!r}")
        problem = check_event_name(event)
        if problem is not None:
            raise ValueError(f"cannot publish an event named {event!r}: {problem}")
        config = _config(stream)
        PubSub.broadcast(config.pubsub, topic, Publish(topic, event, encode_data(data)))

    @staticmethod
    async def info(stream: str) -> EventStreamInfo:
        """A snapshot of the stream: its epoch and position, the topics it follows, its
        connections and what each has waiting."""
        _config(stream)
        info: EventStreamInfo = await GenServer.call(hub_name(stream), "info")
        return info

    @staticmethod
    def app(stream: str) -> Callable[[Scope, Receive, Send], Any]:
        """The ASGI app that serves the stream (mount it on a route, with ``timeout=None``)."""

        async def serve(scope: Scope, receive_: Receive, send_: Send) -> None:
            await _serve(stream, scope, receive_, send_)

        return serve


def _streams() -> dict[str, StreamConfig]:
    streams: dict[str, StreamConfig] = current_runtime().extensions.setdefault(
        "beamish.web.sse", {}
    )
    return streams


def _config(stream: str) -> StreamConfig:
    config = _streams().get(stream)
    if config is None:
        raise LookupError(
            f"no EventStream named {stream!r} is running; put (EventStream, {{'name': "
            f"{stream!r}, 'pubsub': ..., 'allow': [...]}}) in the application's supervision "
            "tree"
        )
    return config


async def _start_hub(config: StreamConfig) -> Pid:
    pid: Pid = await Hub.start_link(config, name=hub_name(config.name))
    _streams()[config.name] = config
    return pid


# -- a request --------------------------------------------------------------------------------


async def _serve(stream: str, scope: Scope, receive_: Receive, send_: Send) -> None:
    if scope["type"] != "http" or scope.get("method", "GET") != "GET":
        await _plain(send_, 405, "a Server-Sent Events stream is read with GET",
                     [(b"allow", b"GET")])
        return
    config = _config(stream)
    if flight_of(scope) is None:  # not served by an endpoint: be a process of its own anyway
        async with current_runtime().as_process():
            await _handle(config, scope, receive_, send_)
        return
    await _handle(config, scope, receive_, send_)


async def _handle(config: StreamConfig, scope: Scope, receive_: Receive, send_: Send) -> None:
    request = Request(scope)
    topics, refusal = await _admit(config, request)
    if refusal is not None:
        await _plain(send_, *refusal)
        return
    me = _self()
    hub = whereis(hub_name(config.name))
    if hub is None:
        await _restarting(config, send_)
        return
    hub_ref = monitor(hub)
    outbox = Outbox(
        functools.partial(send, me, _WAKE),
        max_events=config.max_queue_events, max_bytes=config.max_queue_bytes,
    )
    try:
        resume = await GenServer.call(hub, ("attach", topics, _last_event_id(scope), outbox))
    except CallError:  # the hub went down meanwhile
        demonitor(hub_ref, flush=True)
        await _restarting(config, send_)
        return
    await send_({
        "type": "http.response.start", "status": 200,
        "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ],
    })
    await _Connection(config, topics, scope, send_, me, outbox, hub_ref).run(
        resume.encode(), receive_
    )


async def _admit(
    config: StreamConfig, request: Request
) -> tuple[tuple[str, ...], tuple[int, str] | None]:
    """The request's topics, or the refusal (status, text) that names what was wrong."""
    if config.topics is not None:
        chosen = config.topics(request)
        if inspect.isawaitable(chosen):
            chosen = await chosen
        chosen = list(chosen)
        for topic in chosen:
            if type(topic) is not str:
                raise TypeError(
                    f"the topics function of the event stream {config.name!r} must give str "
                    f"topics, gave {topic!r}"
                )
    else:
        chosen = request.query_params.getlist("topic")
    topics = tuple(dict.fromkeys(chosen))
    if not topics:
        return (), (400, "name at least one topic: ?topic=...")
    if len(topics) > config.max_topics:
        return (), (400, f"this request names {len(topics)} topics; a request may name at most "
                         f"{config.max_topics} (the stream's max_topics)")
    if "" in topics:
        return (), (400, "a topic is a non-empty name; got an empty ?topic=")
    for topic in topics:
        if config.allow is not None and not config.allow.matches(topic):
            why = "it does not match the stream's allow list"
        elif config.authorize is not None and not await _authorized(
            config.name, config.authorize, request, topic
        ):
            why = "the stream's authorize callback said no"
        else:
            continue
        _log.debug("event stream %r refused topic %s: %s", config.name, show(topic), why)
        return (), (403, f"the event stream {config.name!r} does not serve topic {show(topic)} "
                         f"to this request: {why} (to be served, {config.rule})")
    return topics, None


async def _authorized(
    stream: str, authorize: Callable[[Request, str], Any], request: Request, topic: str
) -> bool:
    answer = authorize(request, topic)
    if inspect.isawaitable(answer):
        answer = await answer
    if type(answer) is not bool:
        raise TypeError(
            f"the authorize callback of the event stream {stream!r} must answer True or "
            f"False, got {answer!r} for topic {show(topic)}"
        )
    return answer


def _last_event_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            text: str = value.decode("latin-1").strip()
            return text
    return None


async def _restarting(config: StreamConfig, send_: Send) -> None:
    await _plain(send_, 503, f"the event stream {config.name!r} is not running (it may be "
                             "restarting); try again", [(b"retry-after", b"1")])


async def _plain(
    send_: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_({"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or ())]})
    await send_({"type": "http.response.body", "body": text.encode() + b"\n"})


# -- a connection -----------------------------------------------------------------------------


@mark_shared
class _Written:
    """A write that had to wait has finished (``error`` None) or failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Connection:
    """The stream of one client, in the request's process (see the module's docstring)."""

    __slots__ = (
        "config", "hub_ref", "in_flight", "me", "outbox", "pending", "scope", "send_", "topics",
    )

    def __init__(
        self, config: StreamConfig, topics: tuple[str, ...], scope: Scope, send_: Send,
        me: Pid, outbox: Outbox, hub_ref: Ref,
    ) -> None:
        self.config = config
        self.topics = topics
        self.scope = scope
        self.send_ = send_
        self.me = me
        self.outbox = outbox
        self.hub_ref = hub_ref
        self.pending: Any = None  # the task finishing a write that had to wait
        self.in_flight = (0, 0)  # (events, bytes) of the outbox in that write

    async def run(self, opening: bytes, receive_: Receive) -> None:
        watcher = spawn_link(_watch_disconnect, receive_, self.me)
        try:
            if opening:
                self._write(opening, 0)
            await self._loop()
        finally:
            unlink(watcher)  # so that its end does not end this process
            exit(watcher, "kill")
            demonitor(self.hub_ref)
            self._cancel()
            self.outbox.close()

    async def _loop(self) -> None:
        outbox = self.outbox
        keepalive = self.config.keepalive
        while True:
            if outbox.overflow is not None:
                self._report_overflow(*outbox.overflow)
                await self._end()
                return
            if self.pending is None:
                chunk = outbox.take(_CHUNK)
                if chunk is not None:
                    self._write(*chunk)
                    continue
                outbox.waiting = True
            message = await receive(timeout=keepalive, default=None)
            if message is None:  # quiet for keepalive seconds
                if self.pending is None:
                    self._write(b": keepalive\n\n", 0)
            elif type(message) is _Written:
                self._written(message)
                if message.error is not None:
                    return  # the client is gone
            elif message == _DISCONNECTED:
                return
            elif type(message) is Down and message.ref == self.hub_ref:
                await self._end()  # the client comes back and is told of the gap
                return

    def _write(self, data: bytes, events: int) -> None:
        pending = write_now(
            self.send_, {"type": "http.response.body", "body": data, "more_body": True}
        )
        if pending is None:
            if events:
                self.outbox.written(events, len(data))
            return
        self.pending = pending
        self.in_flight = (events, len(data) if events else 0)
        pending.add_done_callback(self._write_done)

    def _write_done(self, task: Any) -> None:
        # A loop callback, outside the process: tell the process, as a message.
        send(self.me, _Written(None if task.cancelled() else task.exception()))

    def _written(self, message: _Written) -> None:
        self.pending = None
        events, nbytes = self.in_flight
        self.in_flight = (0, 0)
        if events:
            self.outbox.written(events, nbytes)

    def _cancel(self) -> None:
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.remove_done_callback(self._write_done)
            pending.cancel()

    async def _end(self) -> None:
        """End the response; what still waits to be written is dropped (the client gets it
        back by resuming). A client that does not take the end within ``keepalive`` seconds
        is left to the server, which closes the connection."""
        self._cancel()
        self.outbox.close()
        final = write_now(self.send_, {"type": "http.response.body", "body": b""})
        if final is None:
            return
        self.pending = final
        final.add_done_callback(self._write_done)
        message = await receive(_Written, _DISCONNECTED, timeout=self.config.keepalive,
                                default=None)
        if type(message) is _Written:
            self.pending = None

    def _report_overflow(self, events: int, nbytes: int) -> None:
        client = self.scope.get("client") or ("?", 0)
        shown = ", ".join(show(topic) for topic in self.topics[:_SHOWN_TOPICS])
        if len(self.topics) > _SHOWN_TOPICS:
            shown += f" and {len(self.topics) - _SHOWN_TOPICS} more"
        _log.warning(
            "event stream %r: closing the stream of %s:%s (topics %s) in %r: its client does "
            "not read fast enough; %d events, %d bytes were waiting to be written (the "
            "limits are max_queue_events=%d, max_queue_bytes=%d)",
            self.config.name, client[0], client[1], shown, self.me, events, nbytes,
            self.config.max_queue_events, self.config.max_queue_bytes,
        )


async def _watch_disconnect(receive_: Receive, owner: Pid) -> None:
    """Tell the stream's process when its client goes away (a request body is consumed)."""
    while True:
        message = await receive_()
        if message.get("type") == "http.disconnect":
            send(owner, _DISCONNECTED)
            return
