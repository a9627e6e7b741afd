"""The Channel behaviour: what one joined topic of a socket does (Phoenix.Channel).

A channel is what the user writes: callbacks and helpers. Each join runs in a process of its
own (the hidden channel server, ``_channel_server.py``), so a channel that crashes takes down
that topic only: its client gets ``phx_error``, and the socket and its other channels live on.

State lives in the socket's assigns: each callback receives the socket and returns the socket
the channel goes on with, inside the same result objects a GenServer returns (``Ok``,
``Reply``, ``NoReply``, ``Stop``) or Elixir's tuples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from beamish._errors import BeamishError
from beamish._otp.gen_server.server import NoReply
from beamish._runtime.api import send
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish._runtime.request import ReplyTo
from beamish.web import _fastlane
from beamish.web._clip import clip
from beamish.web._socket import SocketState
from beamish.web._wire import Push

__all__ = ["Channel", "ChannelError", "SocketRef", "reply_parts"]

_log = logging.getLogger("beamish.channel")


class ChannelError(BeamishError, ValueError):
    """A channel helper used against its rules (pushing before the join, a bad reply)."""


@mark_shared
class SocketRef:
    """Where a reply to one client message goes, from any process (``Channel.socket_ref``)."""

    __slots__ = ("join_ref", "ref", "serializer", "topic", "transport_pid")

    def __init__(
        self, transport_pid: Pid, serializer: Any, topic: str, ref: str, join_ref: str | None
    ) -> None:
        self.transport_pid = transport_pid
        self.serializer = serializer
        self.topic = topic
        self.ref = ref
        self.join_ref = join_ref

    def __repr__(self) -> str:
        return f"SocketRef({self.topic!r}, ref={self.ref!r}, join_ref={self.join_ref!r})"


class Channel:
    """A channel: the callbacks of one joined topic, and the helpers to talk to the client.

    Route topics to it from a ``Socket`` (``channels = {"room:*": RoomChannel}``)::

        class RoomChannel(Channel):
            intercept = ["new_msg"]

            def join(self, topic, payload, socket):
                if payload.get("token") != "secret":
                    return ("error", {"reason": "unauthorized"})
                return Ok(socket.assign(room=topic))

            def handle_in(self, event, payload, socket):
                match event:
                    case "new_msg":
                        self.broadcast(socket, "new_msg", {"body": payload["body"]})
                        return NoReply(socket)
                    case "ping":
                        return Reply(("ok", {"pong": True}), socket)

            def handle_out(self, event, payload, socket):
                self.push(socket, event, {**payload, "room": socket.assigns["room"]})
                return NoReply(socket)

    Callbacks and what they return (each may be ``async def``):

    - ``join(topic, payload, socket)``: ``Ok(socket)`` or ``("ok", socket)`` joins;
      ``("ok", reply, socket)`` joins and answers ``reply`` (a dict); ``("error", reply)``
      refuses with ``reply``. An exception, or anything else, refuses with
      ``{"reason": "join crashed"}`` and is logged. Required.
    - ``handle_in(event, payload, socket)``: a client message. ``NoReply(socket)``;
      ``Reply(reply, socket)`` answers the message, where ``reply`` is ``"ok"``,
      ``"error"``, ``("ok", payload)`` or ``("error", payload)``; ``Stop(reason, socket)``;
      ``Stop(reason, socket, reply=reply)`` answers, then stops. Tuples work too:
      ``("noreply", socket)``, ``("reply", reply, socket)``, ``("stop", reason, socket)``,
      ``("stop", reason, reply, socket)``. Left out: the channel crashes, naming the event.
    - ``handle_out(event, payload, socket)``: a broadcast of an event listed in
      ``intercept``, before it goes out; push it (changed or not) or not at all.
      ``NoReply(socket)`` or ``Stop(reason, socket)``. Left out: the broadcast is pushed.
    - ``handle_info(message, socket)``: any other message; as ``handle_out``. Left out: the
      message is logged as unexpected and the channel goes on.
    - ``handle_call(request, from_, socket)`` and ``handle_cast(request, socket)``: a
      channel is a GenServer, so ``GenServer.call(channel_pid, ...)`` works; they return as
      a GenServer's do. Left out: the channel crashes, naming the request.
    - ``terminate(reason, socket)``: runs when the channel stops (a leave, a ``Stop``, a
      crash in a callback, the connection closing). The default does nothing.

    A stop whose reason is ``"normal"``, ``"shutdown"`` or ``("shutdown", detail)`` is clean:
    the client gets ``phx_close``. Any other reason, or a crash, is an error: the client
    gets ``phx_error`` for this topic only.

    Helpers (static, so ``self.push(...)`` and ``Channel.push(...)`` both work): ``push``,
    ``reply``, ``broadcast``, ``broadcast_from``, ``socket_ref``.
    """

    intercept: ClassVar[Sequence[str]] = ()

    coalesce: ClassVar[Sequence[str]] = ()
    """Broadcast events of which a client that cannot keep up gets only the latest: while its
    connection is still writing earlier frames, a newer broadcast of the same event on this
    topic replaces the one waiting, instead of queueing behind it (a dashboard's state, a
    stream's segments). The client sees the gap (number the payloads to show it). Over a
    WebSocket; a LongPoll session queues them as any other frame."""

    vsn: ClassVar[Any] = None
    """The version of this code, told to ``code_change`` as the old one by an upgrade."""

    # -- callbacks --------------------------------------------------------------------------

    def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} must define join(self, topic, payload, socket) "
            "returning Ok(socket), ('ok', reply, socket) or ('error', reply)"
        )

    def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} on {clip(socket.topic)} got the event {clip(event)} but "
            "defines no handle_in(self, event, payload, socket)"
        )

    def handle_out(self, event: str, payload: Any, socket: SocketState) -> Any:
        Channel.push(socket, event, payload)
        return NoReply(socket)

    def handle_info(self, message: Any, socket: SocketState) -> Any:
        _log.warning(
            "%s on %s (%s) received an unexpected message in handle_info: %s",
            type(self).__qualname__, clip(socket.topic), socket.channel_pid, clip(message),
        )
        return NoReply(socket)

    def handle_call(self, request: Any, from_: ReplyTo, socket: SocketState) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} on {clip(socket.topic)} got the call {clip(request)} but "
            "defines no handle_call(self, request, from_, socket)"
        )

    def handle_cast(self, request: Any, socket: SocketState) -> Any:
        raise NotImplementedError(
            f"{type(self).__qualname__} on {clip(socket.topic)} got the cast {clip(request)} but "
            "defines no handle_cast(self, request, socket)"
        )

    def terminate(self, reason: Any, socket: SocketState) -> Any:
        return None

    def code_change(self, old_vsn: Any, socket: SocketState, extra: Any) -> SocketState:
        """Migrate a joined channel to the code an upgrade loaded: return the socket with its
        assigns as the new code wants them (default: unchanged)."""
        return socket

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def push(socket: SocketState, event: str, payload: Any) -> None:
        """Send ``event`` with ``payload`` (a dict, or bytes) to this channel's client."""
        transport = _joined(socket, "push")
        send(transport, Push(socket.serializer.encode(
            socket.join_ref, None, socket.topic, event, payload  # type: ignore[arg-type]
        )))

    @staticmethod
    def reply(socket_ref: SocketRef, reply: Any) -> None:
        """Answer a client message later, from any process (see ``socket_ref``).

        ``reply`` is ``"ok"``, ``"error"``, ``("ok", payload)`` or ``("error", payload)``.
        """
        if type(socket_ref) is not SocketRef:
            raise ChannelError(
                f"Channel.reply() takes the SocketRef that Channel.socket_ref(socket) returned, "
                f"got {socket_ref!r}"
            )
        status, payload = reply_parts(reply)
        send(socket_ref.transport_pid, Push(socket_ref.serializer.encode_reply(
            socket_ref.join_ref, socket_ref.ref, socket_ref.topic, status, payload
        )))

    @staticmethod
    def broadcast(socket: SocketState, event: str, payload: Any) -> None:
        """Send ``event`` to every client joined to this channel's topic, this one included."""
        _joined(socket, "broadcast")
        _fastlane.broadcast(socket.pubsub, socket.topic, event, payload)  # type: ignore[arg-type]

    @staticmethod
    def broadcast_from(socket: SocketState, event: str, payload: Any) -> None:
        """Like ``broadcast``, skipping this channel's own client."""
        _joined(socket, "broadcast_from")
        _fastlane.broadcast_from(
            socket.pubsub, socket.channel_pid, socket.topic, event, payload  # type: ignore[arg-type]
        )

    @staticmethod
    def socket_ref(socket: SocketState) -> SocketRef:
        """A reference to the client message being handled, for ``reply`` from elsewhere::

            def handle_in(self, event, payload, socket):
                ref = self.socket_ref(socket)
                spawn(work_then_reply, ref, payload)
                return NoReply(socket)

        Raises ``ChannelError`` outside ``handle_in`` (no message is being handled) or
        before the join.
        """
        _joined(socket, "socket_ref")
        if socket.ref is None:
            raise ChannelError(
                "socket_ref() needs the socket of a handle_in callback: only a client message "
                "has a ref to reply to"
            )
        return SocketRef(
            socket.transport_pid, socket.serializer, socket.topic,  # type: ignore[arg-type]
            socket.ref, socket.join_ref,
        )


def reply_parts(reply: Any) -> tuple[str, Any]:
    """``("ok", payload)`` -> ``("ok", payload)``; ``"ok"`` -> ``("ok", {})``."""
    if type(reply) is str:
        return reply, {}
    if type(reply) is tuple and len(reply) == 2 and type(reply[0]) is str:
        payload = reply[1]
        if type(payload) is dict or type(payload) is bytes:
            return reply[0], payload
    raise ChannelError(
        f"a channel reply is 'ok', 'error', ('ok', payload) or ('error', payload) with a dict "
        f"(or bytes) payload; got {clip(reply)}"
    )


def _joined(socket: SocketState, what: str) -> Pid:
    if not isinstance(socket, SocketState):
        raise ChannelError(f"{what}() takes the channel's socket, got {socket!r}")
    if not socket.joined or socket.transport_pid is None:
        raise ChannelError(
            f"{what}() needs a joined socket: it cannot be used before join() has returned. "
            "To push right after joining, send yourself a message in join "
            "(beamish.send(beamish.self(), 'after_join')) and push from handle_info."
        )
    return socket.transport_pid
