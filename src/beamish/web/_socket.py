"""The Socket behaviour: what a WebSocket connection accepts, and which channels it routes to.

A ``Socket`` subclass is what Phoenix calls a user socket (``use Phoenix.Socket``): it maps
topic patterns to channels, authenticates each connection in ``connect`` and names it in
``id``. Options for its transport go on the class line::

    class UserSocket(Socket, timeout=45, max_channels=20):
        channels = {"room:*": RoomChannel, "notifications": NotificationChannel}

        def connect(self, params, socket, connect_info):
            try:
                user_id = Token.verify(SECRET, "user socket", params.get("token"))
            except TokenError:
                return "error"                       # the handshake is refused with 403
            return Ok(socket.assign(user_id=user_id))

        def id(self, socket):
            return f"user_socket:{socket.assigns['user_id']}"

``SocketState`` is the socket the callbacks see (Phoenix's ``%Phoenix.Socket{}``): the
connection's assigns and, inside a channel, its topic, its process and its join. It is
changed by making a new one (``socket.assign(...)``), as state is passed in and returned.

Route matching is a pure function (``match_route``): an exact topic, or a prefix that ends
with ``*`` (``"room:*"`` takes ``"room:lobby"``); routes are tried in declaration order.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from beamish._runtime.pid import Pid
from beamish.web._serializer import V2_JSON, Serializer

if TYPE_CHECKING:
    from beamish.web._channel import Channel

__all__ = ["Socket", "SocketOptions", "SocketState", "check_session_options", "match_route"]

_NUMBER_OPTIONS = (
    "timeout", "max_channels", "max_frame_size", "max_queue_bytes", "max_backlog",
    "max_backlog_bytes", "backlog_timeout", "longpoll_window",
)
_OPTION_NAMES = (
    *_NUMBER_OPTIONS, "longpoll", "websocket_path", "longpoll_path", "error_handler", "session",
    "pubsub",
)
_SESSION_KEYS = ("csrf_token_key", "check_csrf")  # beside SessionMiddleware's own options


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """How a socket's transport behaves. Every limit protects the node from one client.

    - ``timeout``: seconds without any frame from the client before the server closes the
      connection (a normal close, 1000). Phoenix's default, 60 s; its JavaScript client
      sends a heartbeat every 30 s.
    - ``max_channels``: channels one connection may join at once (Phoenix's default, 100);
      a join beyond it is refused with ``{"reason": "too many channels joined"}``.
    - ``max_frame_size``: the largest frame accepted from the client, in bytes (1 MiB); a
      larger one closes the connection with 1009 (message too big).
    - ``max_queue_bytes``: how much may wait to be written to a client that does not read
      fast enough (1 MiB); past it the connection is closed with 1013 (try again later)
      rather than let the queue eat memory. Over LongPoll, what waits for the client's
      next poll is bounded the same way.
    - ``max_backlog`` and ``max_backlog_bytes``: how many client messages (100), and how
      many bytes of them (1 MiB, counting a text frame's characters), one connection may
      have read and not yet handled, at its channels and in its own process together. At
      either limit the server stops reading from the connection (TCP then slows the
      client down) until the backlog is back to half of it.
    - ``backlog_timeout``: seconds a connection's backlog may stay at its limit without
      coming back to half of it (10 s): past that the client is closed with 1008 (policy
      violation) and a warning naming the socket and the topic that did not keep up.
      When a connection closes, its channels drop the messages it sent that they have
      not handled yet.
    - ``longpoll``: also serve the LongPoll transport, on ``{path}/longpoll`` (False, as in
      Phoenix): the ``phoenix`` client falls back to it where WebSockets are blocked.
    - ``longpoll_window``: seconds a LongPoll poll waits for frames before it answers empty,
      and how long a session outlives its last poll (10 s, as Phoenix's ``window_ms``). It
      must be shorter than the endpoint's ``request_timeout`` and the client's
      ``longpollerTimeout`` (20 s).
    - ``websocket_path`` and ``longpoll_path``: where the endpoint serves each transport
      under the socket's mount point (``"/websocket"`` and ``"/longpoll"``, Phoenix's
      ``path`` option): ``websocket_path="/live"`` serves ``/socket/live``, and ``""``
      the mount point itself.
    - ``error_handler``: ``error_handler(connect_info, reason)`` answers a connection that
      ``connect`` refused with ``("error", reason)``: it returns the Starlette ``Response``
      the handshake gets (a 429, say), as Phoenix's ``:error_handler``. None (the default):
      every refusal is a 403. The server must offer ASGI's ``websocket.http.response``
      extension (uvicorn and Hypercorn do); otherwise the refusal stays a 403.
    - ``session``: read the session cookie that Starlette's ``SessionMiddleware`` writes, into
      ``connect_info["session"]`` (Phoenix's ``connect_info: [session: ...]``). A dict of
      that middleware's options (``secret_key`` at least, as the app gives them), or a
      function returning one, called at each connection. As in Phoenix, the session is
      given only when the client passes the session's CSRF token as the ``_csrf_token``
      parameter (the session key is ``csrf_token_key``, ``"_csrf_token"`` by default;
      ``check_csrf=False`` skips the check); otherwise it is None. None (the default): no
      session is read.
    - ``pubsub``: the name of the PubSub this socket's channels subscribe and broadcast on.
      None (the default): the endpoint's ``pubsub``. An endpoint that serves several
      applications, each with a PubSub of its own, gives each socket its own.
    """

    timeout: float = 60.0
    max_channels: int = 100
    max_frame_size: int = 1_048_576
    max_queue_bytes: int = 1_048_576
    max_backlog: int = 100
    max_backlog_bytes: int = 1_048_576
    backlog_timeout: float = 10.0
    longpoll: bool = False
    longpoll_window: float = 10.0
    websocket_path: str = "/websocket"
    longpoll_path: str = "/longpoll"
    error_handler: Callable[[dict[str, Any], Any], Any] | None = None
    session: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None
    pubsub: str | None = None

    def __post_init__(self) -> None:
        if self.pubsub is not None and (type(self.pubsub) is not str or not self.pubsub):
            raise ValueError(
                "socket option pubsub is the registered name of a PubSub (a non-empty str), "
                f"or None for the endpoint's; got {self.pubsub!r}"
            )
        if type(self.longpoll) is not bool:
            raise ValueError(f"socket option longpoll must be True or False, got "
                             f"{self.longpoll!r}")
        for name in _NUMBER_OPTIONS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"socket option {name} must be a positive number, got {value!r}"
                )
        for name in ("websocket_path", "longpoll_path"):
            path = getattr(self, name)
            if type(path) is not str or (path and (path[0] != "/" or path[-1] == "/")):
                raise ValueError(
                    f"socket option {name} is a path under the socket's mount point, starting "
                    f"with '/' and not ending with one (\"/live\"), or \"\" for the mount "
                    f"point itself; got {path!r}"
                )
        if self.error_handler is not None and not callable(self.error_handler):
            raise TypeError(
                "socket option error_handler must be a function (connect_info, reason) -> "
                f"Response, or None; got {self.error_handler!r}"
            )
        if self.session is not None and not callable(self.session):
            check_session_options(self.session)

    def replace(self, **changes: Any) -> SocketOptions:
        """A copy with ``changes``; an unknown option is refused, naming the known ones."""
        _check_option_names(changes, "SocketOptions.replace()")
        return dataclasses.replace(self, **changes)


def check_session_options(options: Any) -> dict[str, Any]:
    """The ``session`` option as a dict, checked against ``SessionMiddleware``'s options."""
    from starlette.middleware.sessions import SessionMiddleware

    accepted = [p for p in inspect.signature(SessionMiddleware).parameters if p != "app"]
    if not isinstance(options, Mapping) or "secret_key" not in options:
        raise ValueError(
            "socket option session is the options of the app's SessionMiddleware, as a dict "
            "with secret_key at least ({'secret_key': SECRET}), or a function returning one; "
            f"got {options!r}"
        )
    unknown = sorted(set(options) - set(accepted) - set(_SESSION_KEYS))
    if unknown:
        raise ValueError(
            f"socket option session: unknown key(s) {', '.join(unknown)}; the keys are "
            f"{', '.join([*accepted, *_SESSION_KEYS])}"
        )
    return dict(options)


def _check_option_names(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"{where}: unknown socket option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(_OPTION_NAMES)}"
        )


class SocketState:
    """The socket a Socket's and a Channel's callbacks receive (Phoenix's ``%Socket{}``).

    Connection fields: ``assigns`` (your data, set with ``assign``), ``id`` (from
    ``Socket.id``), ``handler`` (the Socket class), ``pubsub`` (the PubSub name),
    ``serializer``, ``transport`` (``"websocket"`` or ``"longpoll"``), ``transport_pid``.
    Inside a channel, also: ``topic``, ``channel`` (the Channel class), ``channel_pid``,
    ``join_ref``, ``joined`` (True once ``join`` succeeded) and ``ref`` (the ref of the
    client message being handled, else None).

    Treat it as a value: ``assign`` returns a new socket, and a callback returns the socket
    the channel goes on with.
    """

    __slots__ = (
        "assigns",
        "channel",
        "channel_pid",
        "handler",
        "id",
        "join_ref",
        "joined",
        "pubsub",
        "ref",
        "serializer",
        "topic",
        "transport",
        "transport_pid",
    )

    assigns: dict[str, Any]
    channel: type[Channel] | None
    channel_pid: Pid | None
    handler: type[Socket] | None
    id: str | None
    join_ref: str | None
    joined: bool
    pubsub: str
    ref: str | None
    serializer: Serializer
    topic: str | None
    transport: str
    transport_pid: Pid | None

    def __init__(
        self,
        *,
        pubsub: str,
        handler: type[Socket] | None = None,
        assigns: Mapping[str, Any] | None = None,
        id: str | None = None,
        serializer: Serializer = V2_JSON,
        transport: str = "websocket",
        transport_pid: Pid | None = None,
    ) -> None:
        self.assigns = dict(assigns) if assigns else {}
        self.channel = None
        self.channel_pid = None
        self.handler = handler
        self.id = id
        self.join_ref = None
        self.joined = False
        self.pubsub = pubsub
        self.ref = None
        self.serializer = serializer
        self.topic = None
        self.transport = transport
        self.transport_pid = transport_pid

    def assign(self, assigns: Mapping[str, Any] | None = None, /, **more: Any) -> SocketState:
        """A new socket whose assigns add ``assigns`` and the keyword arguments::

            socket = socket.assign(user_id=42)
            socket = socket.assign({"room": "lobby", "typing": False})
        """
        merged = dict(self.assigns)
        if assigns:
            merged.update(assigns)
        merged.update(more)
        return self.replace(assigns=merged)

    def replace(self, **changes: Any) -> SocketState:
        """A copy with the given fields changed (used by the channel machinery)."""
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def __repr__(self) -> str:
        where = f" topic={self.topic!r} joined={self.joined}" if self.topic is not None else ""
        return f"<SocketState id={self.id!r}{where} assigns={self.assigns!r}>"


class Socket:
    """The behaviour of a WebSocket endpoint: routes, authentication and identity.

    Subclass it; options for the transport go on the class line (see ``SocketOptions``)::

        class UserSocket(Socket, timeout=45):
            channels = {"room:*": RoomChannel}

            def connect(self, params, socket, connect_info):
                return Ok(socket.assign(user_id=params["user_id"]))

            def id(self, socket):
                return f"user_socket:{socket.assigns['user_id']}"

    Callbacks (each may be ``async def``; a new instance serves each connection):

    - ``connect(params, socket, connect_info)``: ``params`` are the query parameters of the
      WebSocket URL (the JavaScript client's ``params``), ``connect_info`` what the
      transport knows of the request (``peer_data``, ``uri``, ``x_headers``, ``headers``,
      ``user_agent``, ``trace_context_headers``, ``sec_websocket_headers``, ``session``,
      ``auth_token``, and what the endpoint adds). Return ``Ok(socket)`` or
      ``("ok", socket)`` to accept, with assigns; ``"error"``, ``("error", reason)`` or
      ``None`` to refuse: the handshake is then rejected with 403, or with what the
      ``error_handler`` option answers for ``reason``. Left out: every connection is
      accepted. An exception refuses the connection too, and is logged.
    - ``id(socket)``: a string naming this connection for every socket of the same user,
      or ``None`` (the default). Broadcasting ``"disconnect"`` to that string closes them
      all: ``broadcast(pubsub, "user_socket:42", "disconnect", {})``.
    """

    channels: ClassVar[Mapping[str, type[Channel]]] = {}
    options: ClassVar[SocketOptions] = SocketOptions()

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        _check_option_names(options, f"class {cls.__qualname__}(Socket, ...)")
        if options:
            cls.options = cls.options.replace(**options)
        _check_routes(cls)

    def connect(
        self, params: dict[str, str], socket: SocketState, connect_info: dict[str, Any]
    ) -> Any | Awaitable[Any]:
        return ("ok", socket)

    def id(self, socket: SocketState) -> str | None:
        return None


def match_route(channels: Mapping[str, type[Channel]], topic: str) -> type[Channel] | None:
    """The channel whose pattern takes ``topic`` (first in declaration order), or None."""
    for pattern, channel in channels.items():
        if pattern[-1:] == "*":
            if topic.startswith(pattern[:-1]):
                return channel
        elif pattern == topic:
            return channel
    return None


def _check_routes(cls: type[Socket]) -> None:
    from beamish.web._channel import Channel

    routes = cls.__dict__.get("channels")
    if routes is None:
        return
    if not isinstance(routes, Mapping):
        raise TypeError(
            f"{cls.__qualname__}.channels must be a dict of topic pattern -> Channel class, "
            f'e.g. {{"room:*": RoomChannel}}; got {type(routes).__name__}'
        )
    for pattern, channel in routes.items():
        if not isinstance(pattern, str) or not pattern or "*" in pattern[:-1]:
            raise ValueError(
                f"{cls.__qualname__}.channels: {pattern!r} is not a topic pattern; use an exact "
                'topic ("notifications") or a prefix ending with * ("room:*")'
            )
        if not (isinstance(channel, type) and issubclass(channel, Channel)):
            raise TypeError(
                f"{cls.__qualname__}.channels[{pattern!r}] must be a Channel subclass, got "
                f"{channel!r}"
            )
