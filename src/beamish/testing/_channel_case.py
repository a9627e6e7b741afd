"""Channel test helpers: join a channel in-process and assert on what it sends, no network.

How it works. The test process plays the transport: ``channel_socket`` makes a socket whose
``transport_pid`` is the test process and whose serializer does not encode (``TestSerializer``),
so every push, reply and fastlane broadcast a channel makes arrives in the test's mailbox as
a ``Push`` carrying a decoded ``Message``, just as a JavaScript client would read it.
``join`` starts the real channel server (the one a WebSocket connection starts) with the
test process as its transport and parent; ``push`` sends it a client message.
``subscribe_and_join`` also subscribes the test process to the topic, so that
``assert_broadcast`` sees what is broadcast there. The channels monitor the test process,
so they stop when the test ends.

As in Phoenix.ChannelTest, a joined channel is linked to the test process: a channel that
crashes (``handle_in`` returning nothing, say) ends the test with the channel's error, where
the test would otherwise wait for a reply that never comes. Unlike Phoenix, a channel that
stops cleanly (a leave, ``close``, a ``Stop`` with a shutdown reason) unlinks before it goes,
so those do not end the test (the channel server unlinks its transport on a clean stop;
a real transport is never linked, so it changes nothing there). ``close(socket, timeout)``
kills a channel that has not stopped within ``timeout``, as Phoenix's ``close/2``.

When an assertion fails, it says what it looked for and lists what did arrive of that kind
(the broadcasts, the pushes or the replies), never the helper's own predicate.

As in Phoenix.ChannelTest::

    socket = channel_socket(UserSocket, "user:1", {"user_id": 1}, pubsub="chat")
    reply, socket = await subscribe_and_join(socket, "room:lobby", {"token": "t"})
    ref = push(socket, "new_msg", {"body": "hi"})
    await assert_reply(ref, "ok")
    await assert_broadcast("new_msg", {"body": "hi"})
    await assert_push("new_msg", {"body": "hi"})
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from typing import Any

from beamish._errors import BeamishError, StartError, StartIgnored
from beamish._otp.gen_server.server import Ok
from beamish._runtime.api import exit, unlink, wait_exit
from beamish._runtime.api import self as _self
from beamish._runtime.api import send as _send
from beamish._runtime.isolation import isolate, mark_shared
from beamish._runtime.patterns import ANY, compile_patterns
from beamish._runtime.receive import receive
from beamish.pubsub import PubSub
from beamish.testing._receive import (
    MISSING,
    check_timeout,
    describe_pattern,
    peek,
    receive_or_missing,
    short,
    waited,
)
from beamish.web._channel import Channel
from beamish.web._channel_server import JOIN_CRASHED, ChannelServer
from beamish.web._fastlane import broadcast_from as _broadcast_from
from beamish.web._messages import Broadcast
from beamish.web._serializer import Message
from beamish.web._socket import Socket, SocketState, match_route
from beamish.web._wire import Push

__all__ = [
    "JoinError",
    "TestSerializer",
    "assert_broadcast",
    "assert_push",
    "assert_reply",
    "broadcast_from",
    "channel_socket",
    "close",
    "connect",
    "join",
    "leave",
    "push",
    "refute_broadcast",
    "refute_push",
    "refute_reply",
    "subscribe_and_join",
]

_refs = itertools.count(1)


class JoinError(BeamishError, RuntimeError):
    """A join that the channel refused (``("error", reply)``) or that crashed;
    ``reply`` is what the client would have been answered."""

    def __init__(self, topic: str, reply: Any) -> None:
        super().__init__(f"joining {topic!r} failed: {reply!r}")
        self.topic = topic
        self.reply = reply


@mark_shared
class TestSerializer:
    """A serializer that does not encode: each frame is a ``Message`` (payload copied)."""

    __test__ = False  # not a pytest test class
    __slots__ = ()

    def __repr__(self) -> str:
        return "TestSerializer"

    def __deepcopy__(self, memo: dict[int, Any]) -> TestSerializer:
        return self

    def encode(
        self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
    ) -> Message:
        return Message(join_ref, ref, topic, event, isolate(payload))

    def encode_reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, payload: Any
    ) -> Message:
        return Message(join_ref, ref, topic, "phx_reply",
                       {"status": status, "response": isolate(payload)})

    def encode_broadcast(self, topic: str, event: str, payload: Any) -> Message:
        return Message(None, None, topic, event, isolate(payload))

    def decode(self, data: Any) -> Message:
        if type(data) is not Message:
            raise TypeError(f"TestSerializer decodes Message objects, got {data!r}")
        return data


_SERIALIZER = TestSerializer()


# -- sockets ----------------------------------------------------------------------------------


def channel_socket(
    socket_cls: type[Socket] | None = None, id: str | None = None,
    assigns: Mapping[str, Any] | None = None, *, pubsub: str,
) -> SocketState:
    """A connected socket for ``socket_cls`` whose transport is the calling test process."""
    return SocketState(
        pubsub=pubsub, handler=socket_cls, assigns=assigns, id=id, serializer=_SERIALIZER,
        transport_pid=_self(),
    )


async def connect(
    socket_cls: type[Socket], params: Mapping[str, str] | None = None,
    connect_info: Mapping[str, Any] | None = None, *, pubsub: str,
) -> SocketState | None:
    """Run ``socket_cls``'s ``connect`` (and ``id``) as a connection would: the connected
    socket, or None if ``connect`` refused."""
    handler = socket_cls()
    socket = channel_socket(socket_cls, pubsub=pubsub)
    result = handler.connect(dict(params or {}), socket, dict(connect_info or {}))
    if inspect.isawaitable(result):
        result = await result
    match result:
        case Ok(SocketState() as accepted, None) | ("ok", SocketState() as accepted):
            return accepted.replace(id=handler.id(accepted))
    return None


# -- joining ----------------------------------------------------------------------------------


async def join(
    socket: SocketState, topic: str, payload: Mapping[str, Any] | None = None, *,
    channel: type[Channel] | None = None, timeout: float = 5.0,
) -> tuple[Any, SocketState]:
    """Join ``topic`` as a client would: ``(reply, joined_socket)``.

    The channel is ``channel``, or the one the socket's Socket class routes ``topic`` to.
    It is linked to the calling process (see the module docstring). Raises ``JoinError``
    (with the ``reply``) if the join is refused or crashes.
    """
    if channel is None:
        routes = socket.handler.channels if socket.handler is not None else {}
        channel = match_route(routes, topic)
        if channel is None:
            raise JoinError(topic, {"reason": "unmatched topic"})
    join_ref = str(next(_refs))
    joining = socket.replace(topic=topic, channel=channel, join_ref=join_ref, ref=join_ref)
    try:
        pid = await ChannelServer.start_link(
            (channel, joining, isolate(dict(payload or {}))), timeout=timeout
        )
    except StartIgnored:
        pass
    except StartError:
        raise JoinError(topic, JOIN_CRASHED) from None
    else:
        reply = await _take_reply(topic, join_ref)
        return reply["response"], joining.replace(channel_pid=pid, joined=True, ref=None)
    raise JoinError(topic, (await _take_reply(topic, join_ref))["response"])


async def subscribe_and_join(
    socket: SocketState, topic: str, payload: Mapping[str, Any] | None = None, *,
    channel: type[Channel] | None = None, timeout: float = 5.0,
) -> tuple[Any, SocketState]:
    """Subscribe the test process to ``topic`` (for ``assert_broadcast``), then ``join``."""
    PubSub.subscribe(socket.pubsub, topic)
    return await join(socket, topic, payload, channel=channel, timeout=timeout)


async def _take_reply(topic: str, ref: str) -> Any:
    def is_reply(m: Any) -> bool:
        data = m.data if type(m) is Push else None
        return type(data) is Message and data.event == "phx_reply" and data.ref == ref

    push_ = await receive(is_reply, timeout=1.0)
    return push_.data.payload


# -- client messages --------------------------------------------------------------------------


def push(socket: SocketState, event: str, payload: Any = None) -> str:
    """Send ``event`` to the joined channel as its client would; returns the message's ref
    (for ``assert_reply``)."""
    pid = _channel_pid(socket, "push")
    ref = str(next(_refs))
    _send(pid, Message(
        socket.join_ref, ref, socket.topic, event,  # type: ignore[arg-type]
        isolate(payload if payload is not None else {}),
    ))
    return ref


def leave(socket: SocketState) -> str:
    """Leave the channel as its client would (``phx_leave``); returns the ref it replies to."""
    return push(socket, "phx_leave", {})


async def close(socket: SocketState, timeout: float = 5.0) -> None:
    """Close the channel as the transport does when the connection closes, and wait until
    it is gone: its ``terminate`` runs with ``("shutdown", "closed")``; a channel still
    there after ``timeout`` seconds (a ``terminate`` that blocks) is killed. Closing a
    channel that is gone already does nothing."""
    pid = _channel_pid(socket, "close")
    check_timeout("close", timeout)
    unlink(pid)  # the test closes it: however it ends, that is no failure of the test
    exited = wait_exit(pid, timeout=timeout)
    exit(pid, ("shutdown", "closed"))
    try:
        await exited
    except TimeoutError:
        exited = wait_exit(pid)
        exit(pid, "kill")
        await exited


def broadcast_from(socket: SocketState, event: str, payload: Any) -> None:
    """Broadcast on the socket's topic from the test process (skipping its subscription)."""
    _broadcast_from(socket.pubsub, _self(), socket.topic, event, payload)  # type: ignore[arg-type]


def _channel_pid(socket: SocketState, what: str) -> Any:
    if socket.channel_pid is None or not socket.joined:
        raise ValueError(f"{what}() needs the socket that join() returned, got {socket!r}")
    return socket.channel_pid


# -- assertions -------------------------------------------------------------------------------


async def assert_push(event: str, payload: Any = ANY, *, timeout: float = 0.1) -> Any:
    """Wait for the channel to push ``event`` (a matching ``payload`` pattern) to its client;
    returns the payload. Broadcasts that reach the client count too."""
    __tracebackhide__ = True
    found = await _assert(
        f"assert_push({event!r}, {describe_pattern(payload)})",
        f"no push of {event!r}{_matching('a payload', payload)}",
        _is_push(event, payload), timeout, _PUSHES,
    )
    return found.data.payload


async def refute_push(event: str, payload: Any = ANY, *, timeout: float = 0.1) -> None:
    """Fail if the channel pushes ``event`` (matching ``payload``) within ``timeout``."""
    __tracebackhide__ = True
    await _refute(f"refute_push({event!r}, {describe_pattern(payload)})",
                  _is_push(event, payload), timeout, _PUSHES)


async def assert_reply(
    ref: str, status: str = "ok", payload: Any = ANY, *, timeout: float = 0.1
) -> Any:
    """Wait for the reply to the message ``push`` returned ``ref`` for; returns its response."""
    __tracebackhide__ = True
    found = await _assert(
        f"assert_reply({ref!r}, {status!r}, {describe_pattern(payload)})",
        f"no reply to {ref!r} with status {status!r}{_matching('a response', payload)}",
        _is_reply(ref, status, payload), timeout, _REPLIES,
    )
    return found.data.payload["response"]


async def refute_reply(
    ref: str, status: str = "ok", payload: Any = ANY, *, timeout: float = 0.1
) -> None:
    """Fail if a matching reply to ``ref`` arrives within ``timeout``."""
    __tracebackhide__ = True
    await _refute(f"refute_reply({ref!r}, {status!r}, {describe_pattern(payload)})",
                  _is_reply(ref, status, payload), timeout, _REPLIES)


async def assert_broadcast(event: str, payload: Any = ANY, *, timeout: float = 0.1) -> Any:
    """Wait for ``event`` (matching ``payload``) broadcast on a topic the test process
    subscribed to (``subscribe_and_join`` does); returns the payload."""
    __tracebackhide__ = True
    found = await _assert(
        f"assert_broadcast({event!r}, {describe_pattern(payload)})",
        f"no broadcast of {event!r}{_matching('a payload', payload)}",
        _is_broadcast(event, payload), timeout, _BROADCASTS,
    )
    return found.payload


async def refute_broadcast(event: str, payload: Any = ANY, *, timeout: float = 0.1) -> None:
    """Fail if ``event`` (matching ``payload``) is broadcast within ``timeout``."""
    __tracebackhide__ = True
    await _refute(f"refute_broadcast({event!r}, {describe_pattern(payload)})",
                  _is_broadcast(event, payload), timeout, _BROADCASTS)


def _matcher(payload: Any) -> Any:
    matcher = compile_patterns((payload,))
    return matcher if matcher is not None else (lambda _p: True)


def _matching(what: str, payload: Any) -> str:
    return "" if payload is ANY else f" with {what} matching {describe_pattern(payload)}"


def _is_push(event: str, payload: Any) -> Any:
    matches = _matcher(payload)

    def is_push(m: Any) -> bool:
        data = m.data if type(m) is Push else None
        return type(data) is Message and data.event == event and bool(matches(data.payload))

    return is_push


def _is_reply(ref: str, status: str, payload: Any) -> Any:
    matches = _matcher(payload)

    def is_reply(m: Any) -> bool:
        data = m.data if type(m) is Push else None
        return (
            type(data) is Message and data.event == "phx_reply" and data.ref == ref
            and data.payload["status"] == status and bool(matches(data.payload["response"]))
        )

    return is_reply


def _is_broadcast(event: str, payload: Any) -> Any:
    matches = _matcher(payload)

    def is_broadcast(m: Any) -> bool:
        return type(m) is Broadcast and m.event == event and bool(matches(m.payload))

    return is_broadcast


# What an assertion lists when it fails: a title, and the line for a message of that kind.


def _push_line(m: Any) -> str | None:
    data = m.data if type(m) is Push else None
    if type(data) is not Message or data.event == "phx_reply":
        return None
    return f"{data.topic!r} {data.event!r} {short(data.payload)}"


def _reply_line(m: Any) -> str | None:
    data = m.data if type(m) is Push else None
    if type(data) is not Message or data.event != "phx_reply":
        return None
    reply = data.payload
    return f"{data.ref!r} {reply.get('status')!r} {short(reply.get('response'))}"


def _broadcast_line(m: Any) -> str | None:
    if type(m) is not Broadcast:
        return None
    return f"{m.topic!r} {m.event!r} {short(m.payload)}"


_PUSHES = ("Pushes received", "No push was received (broadcasts that reach the client count).",
           _push_line)
_REPLIES = ("Replies received", "No reply was received.", _reply_line)
_BROADCASTS = (
    "Broadcasts received",
    "No broadcast was received (assert_broadcast sees the topics the test process subscribed "
    "to: subscribe_and_join does).",
    _broadcast_line,
)
_SHOWN = 10


async def _assert(what: str, missing: str, predicate: Any, timeout: float, kind: Any) -> Any:
    __tracebackhide__ = True
    clock = check_timeout(what.split("(", 1)[0], timeout)
    found = await receive_or_missing((predicate,), timeout, clock)
    if found is MISSING:
        title, none, line = kind
        mailbox = await peek()
        lines = [line(m) for m in mailbox]
        seen = [text for text in lines if text is not None]
        report = [f"{what} failed: {missing} {waited(timeout, clock)}."]
        if seen:
            report.append(f"{title} ({len(seen)}):")
            report.extend(f"  {text}" for text in seen[:_SHOWN])
            if len(seen) > _SHOWN:
                report.append(f"  ... and {len(seen) - _SHOWN} more")
        else:
            report.append(none)
        others = [m for m, text in zip(mailbox, lines, strict=True) if text is None]
        if others:
            report.append(f"Other messages in the mailbox ({len(others)}):")
            report.extend(f"  {short(m)}" for m in others[:_SHOWN])
            if len(others) > _SHOWN:
                report.append(f"  ... and {len(others) - _SHOWN} more")
        raise AssertionError("\n".join(report))
    return found


async def _refute(what: str, predicate: Any, timeout: float, kind: Any) -> None:
    __tracebackhide__ = True
    clock = check_timeout(what.split("(", 1)[0], timeout)
    found = await receive_or_missing((predicate,), timeout, clock)
    if found is not MISSING:
        shown = kind[2](found) or short(found)
        raise AssertionError(f"{what} failed: {shown} arrived {waited(timeout, clock)}.")
