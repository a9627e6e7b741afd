"""The channel server: the hidden process behind each joined topic of a socket.

How it works. A transport starts one ``ChannelServer`` (a GenServer, so calls, casts,
``get_state`` and tracing work on it) per ``phx_join``, with the transport as its parent,
given ``(channel_class, socket, payload)``.
``init`` traps exits, monitors the transport and runs the channel's ``join``. On success it
subscribes to the topic with ``Fastlane`` metadata (broadcasts then go straight to the
transport) and pushes the join's ``phx_reply`` itself, before anything else it sends; on
``("error", reply)`` it pushes the error reply and ignores the start, so no process remains.
A join that raises or returns something else is logged, and the transport answers
``{"reason": "join crashed"}``.

The GenServer's state is the channel's ``SocketState``. The server routes:

- ``Inbound`` (a client frame the transport forwarded, counted against the connection's
  backlog): the count is given back, then ``phx_leave`` answers ok and stops with
  ``("shutdown", "left")``; anything else goes to ``handle_in``, whose reply is encoded
  here and pushed to the transport. Once the connection is gone (its backlog is closed),
  what is left of them is dropped without running ``handle_in``: nobody would read the
  answers, and the channel stops at the transport's ``Down`` behind them. (The test
  helpers send a bare ``Message``, handled the same way, uncounted.)
- ``Broadcast`` on the channel's own topic: ``handle_out`` if the event is intercepted, else
  pushed as it is (the fastlane writes the others without waking the channel); a
  ``Broadcast`` on any other topic the channel subscribed to goes to ``handle_info``, as in
  Phoenix, where the channel filters or transforms it;
- the transport's ``Down``: stop with ``("shutdown", "closed")`` (or the transport's reason
  if it was not a clean one);
- calls, casts and any other message: the channel's ``handle_call``, ``handle_cast`` and
  ``handle_info``.

Stopping: ``terminate`` runs the channel's ``terminate``; after a clean stop it tells the
transport with ``SocketClose``, which writes ``phx_close`` (and unlinks it: the test helpers
link a channel to the test process, which a clean stop must not end). After a crash (or a kill) it
says nothing: the transport's monitor fires and the client gets ``phx_error``.

Reports name the user's code, not this module: the GenServer's crash report is headed
``Channel RoomChannel <0.13.0> on 'room:lobby' (UserSocket 'user_socket:1', event
'new_msg') terminating``, the channel's class, its topic, its socket and what it was
handling (``_who``, which the GenServer asks for the words that name a server).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from beamish._otp.gen_server.server import Cast, GenServer, Ignore, NoReply, Ok, Reply, Stop
from beamish._runtime.api import monitor, send, trap_exit, unlink
from beamish._runtime.events import event
from beamish._runtime.messages import Down, is_clean_exit
from beamish._runtime.request import ReplyTo, Request
from beamish.pubsub import PubSub
from beamish.web._channel import Channel, ChannelError, reply_parts
from beamish.web._clip import clip, clip_text
from beamish.web._fastlane import Fastlane
from beamish.web._messages import Broadcast
from beamish.web._serializer import Message
from beamish.web._socket import SocketState
from beamish.web._wire import Inbound, Push, SocketClose

__all__ = ["JOIN_CRASHED", "ChannelServer"]

_log = logging.getLogger("beamish.channel")
_NO_REPLY = inspect.signature(Stop).parameters["reply"].default
JOIN_CRASHED = {"reason": "join crashed"}
_CLOSED = ("shutdown", "closed")
_LEFT = ("shutdown", "left")
JOINED = event("beamish", "channel", "join")
HANDLED_IN = event("beamish", "channel", "handle_in")
HANDLED_OUT = event("beamish", "channel", "handle_out")


class ChannelServer(GenServer):
    """One joined channel's process. Started by a transport (or the test helpers) with
    ``ChannelServer.start((channel_class, socket, payload))``; see the module docstring."""

    __slots__ = ("_began", "_channel", "_intercepts", "_lane", "_transport_ref")

    _intercepts: frozenset[str]

    display_name = "Channel"

    def _who(self) -> str:
        # The GenServer's words for this server in reports: the user's channel, its topic,
        # its socket, and what it was handling (the GenServer's last message and state).
        pid = getattr(self, "pid", None)
        socket = getattr(self, "_state", None)
        if type(socket) is not SocketState:
            return repr(pid)
        about = [_socket_words(socket), _doing(getattr(self, "_last", None)) or ""]
        details = ", ".join(part for part in about if part)
        who = f"{_name(socket)} {pid!r} on {clip(socket.topic)}"
        return f"{who} ({details})" if details else who

    # -- upgrades -----------------------------------------------------------------------------

    def _upgrade_class(self) -> type:
        return type(self._channel)

    def _upgrade(self, old_vsn: Any, extra: Any) -> Callable[[], None] | None:
        socket, intercepts = self._state, self._intercepts
        new = self._channel.code_change(old_vsn, socket, extra)
        if type(new) is not SocketState:
            raise TypeError(f"{_name(socket)}.code_change must return the socket, got "
                            f"{clip(repr(new))}")
        self._state = new
        self._intercepts = frozenset(type(self._channel).intercept)
        lane = getattr(self, "_lane", None)  # the subscription's: broadcasts read it
        if lane is not None:
            lane.intercepts = self._intercepts

        def undo() -> None:
            self._state, self._intercepts = socket, intercepts
            if lane is not None:
                lane.intercepts = intercepts

        return undo

    # -- joining ------------------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        channel_cls, socket, payload = arg
        trap_exit(True)
        socket = socket.replace(channel_pid=self.pid, channel=channel_cls)
        self._channel: Channel = channel_cls()
        self._intercepts = frozenset(channel_cls.intercept)
        self._transport_ref = monitor(socket.transport_pid)
        self._began = time.monotonic() if JOINED.handlers else 0.0
        try:
            result = self._channel.join(socket.topic, payload, socket)
        except Exception as exc:
            return self._join_crashed(socket, exc)
        if inspect.isawaitable(result):
            return self._join_async(result, socket)
        return self._joined(result, socket)

    async def _join_async(self, awaitable: Awaitable[Any], socket: SocketState) -> Any:
        try:
            result = await awaitable
        except Exception as exc:
            return self._join_crashed(socket, exc)
        return self._joined(result, socket)

    def _join_crashed(self, socket: SocketState, exc: Exception) -> Stop:
        _log.error(
            "%s crashed joining %s%s: %s: %s", _name(socket), clip(socket.topic),
            _of(socket), type(exc).__name__, clip_text(exc),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self._told_join(socket, "crashed")
        return Stop(("join_crashed", socket.topic))

    def _joined(self, result: Any, socket: SocketState) -> Any:
        reply: Any = {}
        match result:
            case Ok(SocketState() as joined, None) | ("ok", SocketState() as joined):
                pass
            case ("ok", dict() as reply, SocketState() as joined):
                pass
            case ("error", dict() as reply):
                _reply(socket, socket.ref, "error", reply)
                self._told_join(socket, "error")
                return Ignore()
            case _:
                _log.error(
                    "%s.join(%s, ...) returned %s%s; it must return Ok(socket), ('ok', socket), "
                    "('ok', reply, socket) or ('error', reply), with a dict reply",
                    _name(socket), clip(socket.topic), clip(result), _of(socket),
                )
                self._told_join(socket, "crashed")
                return Stop(("join_crashed", socket.topic))
        joined = joined.replace(joined=True, ref=None, channel_pid=self.pid)
        self._lane = Fastlane(
            joined.transport_pid, joined.serializer, self._intercepts,  # type: ignore[arg-type]
        )
        PubSub.subscribe(joined.pubsub, joined.topic, self._lane)  # type: ignore[arg-type]
        _reply(joined, socket.ref, "ok", reply)
        self._told_join(joined, "ok")
        return Ok(joined)

    def _told_join(self, socket: SocketState, result: str) -> None:
        if JOINED.handlers and self._began:
            JOINED.emit({"duration": time.monotonic() - self._began},
                        _about(socket, result=result))

    # -- messages -----------------------------------------------------------------------------

    def handle_info(self, message: Any, socket: SocketState) -> Any:
        kind = type(message)
        if kind is Inbound:
            share = message.share
            if share.backlog.closed:
                return NoReply(socket)  # the client is gone: dropped
            share.take(message.size)
            return self._handle_in(message.message, socket)
        if kind is Message:
            return self._handle_in(message, socket)
        if kind is Broadcast and message.topic == socket.topic:
            if message.event in self._intercepts:
                if HANDLED_OUT.handlers:
                    return self._timed_out(message, socket)
                return self._channel.handle_out(message.event, message.payload, socket)
            Channel.push(socket, message.event, message.payload)
            return NoReply(socket)
        if kind is Down and message.ref == self._transport_ref:
            reason = message.reason
            return Stop(_CLOSED if reason == "normal" else reason, socket)
        return self._channel.handle_info(message, socket)

    def handle_call(self, request: Any, from_: ReplyTo, socket: SocketState) -> Any:
        return self._channel.handle_call(request, from_, socket)

    def handle_cast(self, request: Any, socket: SocketState) -> Any:
        return self._channel.handle_cast(request, socket)

    def _handle_in(self, message: Message, socket: SocketState) -> Any:
        if message.join_ref != socket.join_ref and message.join_ref is not None:
            return NoReply(socket)  # for an earlier join of this topic: outdated
        if message.event == "phx_leave":
            _reply(socket, message.ref, "ok", {})
            return Stop(_LEFT, socket)
        began = time.monotonic() if HANDLED_IN.handlers else 0.0
        result = self._channel.handle_in(
            message.event, message.payload, socket.replace(ref=message.ref)
        )
        if inspect.isawaitable(result):
            return self._finish_in(result, began, message, socket)
        if began and HANDLED_IN.handlers:
            HANDLED_IN.emit({"duration": time.monotonic() - began},
                            _about(socket, event=message.event))
        return self._in_result(result, message.ref)

    async def _finish_in(self, awaitable: Awaitable[Any], began: float, message: Message,
                         socket: SocketState) -> Any:
        result = await awaitable
        if began and HANDLED_IN.handlers:
            HANDLED_IN.emit({"duration": time.monotonic() - began},
                            _about(socket, event=message.event))
        return self._in_result(result, message.ref)

    def _timed_out(self, message: Broadcast, socket: SocketState) -> Any:
        began = time.monotonic()
        result = self._channel.handle_out(message.event, message.payload, socket)
        if inspect.isawaitable(result):
            return self._finish_out(result, began, message, socket)
        if HANDLED_OUT.handlers:
            HANDLED_OUT.emit({"duration": time.monotonic() - began},
                             _about(socket, event=message.event))
        return result

    async def _finish_out(self, awaitable: Awaitable[Any], began: float, message: Broadcast,
                          socket: SocketState) -> Any:
        result = await awaitable
        if HANDLED_OUT.handlers:
            HANDLED_OUT.emit({"duration": time.monotonic() - began},
                             _about(socket, event=message.event))
        return result

    def _in_result(self, result: Any, ref: str | None) -> Any:
        match result:
            case NoReply(SocketState() as socket, after):
                return NoReply(socket.replace(ref=None), after)
            case ("noreply", SocketState() as socket):
                return NoReply(socket.replace(ref=None))
            case Reply(answer, SocketState() as socket, after):
                status, payload = reply_parts(answer)
                _reply(socket, ref, status, payload)
                return NoReply(socket.replace(ref=None), after)
            case ("reply", answer, SocketState() as socket):
                status, payload = reply_parts(answer)
                _reply(socket, ref, status, payload)
                return NoReply(socket.replace(ref=None))
            case Stop(reason, SocketState() as socket):
                if result.reply is not _NO_REPLY:
                    status, payload = reply_parts(result.reply)
                    _reply(socket, ref, status, payload)
                return Stop(reason, socket.replace(ref=None))
            case ("stop", reason, SocketState() as socket):
                return Stop(reason, socket.replace(ref=None))
            case ("stop", reason, answer, SocketState() as socket):
                status, payload = reply_parts(answer)
                _reply(socket, ref, status, payload)
                return Stop(reason, socket.replace(ref=None))
        raise ChannelError(
            f"handle_in must return NoReply(socket), Reply(reply, socket), Stop(reason, "
            f"socket[, reply=reply]) or the tuples ('noreply', socket), ('reply', reply, "
            f"socket), ('stop', reason[, reply], socket); got {clip(result)}"
        )

    # -- stopping -----------------------------------------------------------------------------

    def terminate(self, reason: Any, socket: SocketState) -> Any:
        result = self._channel.terminate(reason, socket)
        if inspect.isawaitable(result):
            return self._terminated_async(result, reason, socket)
        _closed(reason, socket)
        return None

    async def _terminated_async(
        self, awaitable: Awaitable[Any], reason: Any, socket: SocketState
    ) -> None:
        await awaitable
        _closed(reason, socket)


def _closed(reason: Any, socket: SocketState) -> None:
    if is_clean_exit(reason) and socket.joined and socket.transport_pid is not None:
        # A channel joined by the test helpers is linked to the test process, its transport
        # there: a clean stop is no failure of the test. (A real transport is not linked.)
        unlink(socket.transport_pid)
        send(socket.transport_pid, SocketClose(
            socket.channel_pid, socket.topic, socket.join_ref  # type: ignore[arg-type]
        ))


def _reply(socket: SocketState, ref: str | None, status: str, payload: Any) -> None:
    send(socket.transport_pid, Push(socket.serializer.encode_reply(  # type: ignore[arg-type]
        socket.join_ref, ref, socket.topic, status, payload  # type: ignore[arg-type]
    )))


def _doing(message: Any) -> str | None:
    """What a channel was handling, for a report: ``event 'new_msg'``, ``a call``..."""
    kind = type(message)
    if kind is Inbound:
        message = message.message
        kind = Message
    if kind is Message:
        return f"event {clip(message.event)}"
    if kind is Broadcast:
        return f"broadcast {clip(message.event)} on {clip(message.topic)}"
    if kind is Request:
        return "a call"
    if kind is Cast:
        return "a cast"
    if message is None:
        return None
    return "a message in handle_info"


def _of(socket: SocketState) -> str:
    """`` (UserSocket 'user_socket:1')``: the socket a channel belongs to, for a log line."""
    about = _socket_words(socket)
    return f" ({about})" if about else ""


def _socket_words(socket: SocketState) -> str:
    about = [socket.handler.__qualname__] if socket.handler is not None else []
    if socket.id is not None:
        about.append(clip(socket.id))
    return " ".join(about)


def _name(socket: SocketState) -> str:
    return socket.channel.__qualname__ if socket.channel is not None else "channel"


def _about(socket: SocketState, **more: Any) -> dict[str, Any]:
    """The metadata of a channel's telemetry events."""
    channel = socket.channel
    handler = socket.handler
    return {
        "topic": socket.topic, "channel": getattr(channel, "__qualname__", None),
        "socket": getattr(handler, "__qualname__", None), "transport": socket.transport,
        "pid": socket.channel_pid, "transport_pid": socket.transport_pid, **more,
    }
