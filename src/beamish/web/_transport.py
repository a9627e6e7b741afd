"""The WebSocket transport: one process per connection, speaking the Phoenix V2 protocol.

How it works. ``serve_socket`` is the ASGI handler of a socket's WebSocket path. Its task
only reads: it takes each ``websocket.receive`` from the server and sends the frame to the
connection's process, a ``SocketTransport`` actor (an idle connection costs the actor, no
task of its own). The actor does everything else:

- **Connecting.** It runs the Socket's ``connect`` (and ``id``) inside the process, then
  accepts the handshake, or refuses it (the server answers 403). A socket with an ``id``
  subscribes to that topic, so a ``"disconnect"`` broadcast there closes it.
- **Reading.** The reader counts each frame against the connection's backlog
  (``_backlog.py``) and stops reading while the backlog is at ``max_backlog`` messages or
  ``max_backlog_bytes``, until it is back to half: a client cannot queue more at its
  channels than that. The process decodes each frame: heartbeats on topic ``phoenix`` are
  answered at once;
  ``phx_join`` starts a channel server (and waits for its join, as Phoenix's transport does);
  any other event goes to the topic's channel, or is answered ``"unmatched topic"`` (a
  ``phx_leave`` of a topic that is not joined is answered ok, as Phoenix does: the client
  leaves after a refused join). Only a join of a topic no channel serves is logged.
- **Writing.** Channels send it ``Push`` frames. On beamish's WebSocket protocol
  (``_ws_protocol.py``) it writes each as a pre-built frame straight to the connection;
  elsewhere, or when the connection's buffer is full, through the ASGI ``send`` without
  waiting (``write_now``). When a write has to wait, the frames behind it queue in
  the process, and past ``max_queue_bytes`` the client is closed with 1013: a client that
  cannot keep up is dropped, not allowed to eat memory. Fastlane broadcasts arrive as a
  ``Push`` like the others (its frame built once by the broadcaster, for every connection),
  and are written here, in order with the rest: no other process writes to the connection.
- **Watching.** It monitors its channels: a channel that stops cleanly says so first
  (``SocketClose``, the client gets ``phx_close``); one that crashes or is killed gives
  ``phx_error``. Channels monitor it in turn and stop when it goes.
- **Closing.** No frame for ``timeout`` seconds: a normal close (1000), within a quarter
  of ``timeout`` more (one timer watches all the connections: ``_idle.py``). A frame larger than
  ``max_frame_size``: 1009. A frame that is not the protocol: 1007. A backlog that stays
  at its limit for ``backlog_timeout``: 1008. The runtime stopping: 1001, so clients
  reconnect. Its own crash: 1011. On any exit it closes its backlog, and its channels drop
  what the client sent that they have not handled.

Close codes: 1000 idle timeout; 1001 server going away, or a ``disconnect`` broadcast (as
Phoenix: phoenix.js reconnects after 1001, not after 1000); 1007 malformed frame; 1009 frame
too big; 1008 channel backlog full; 1011 internal error; 1013 outbound queue full.

What a client sent reaches the log clipped (``_clip.py``): a topic, a version, a malformed
frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from beamish._errors import ProcessExit, StartError, StartIgnored
from beamish._otp.gen_server.server import Ok
from beamish._runtime.api import (
    current_runtime,
    demonitor,
    exit,
    hibernate,
    is_alive,
    monitor,
    send,
    send_after,
    spawn_opt,
    wait_exit,
)
from beamish._runtime.events import event
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.receive import receive_nowait
from beamish.pubsub import PubSub
from beamish.web._backlog import Backlog, Share
from beamish.web._channel_server import JOIN_CRASHED, ChannelServer
from beamish.web._clip import clip, clip_text
from beamish.web._connect_info import connect_info, read_session
from beamish.web._idle import watch as idle_watch
from beamish.web._messages import Broadcast
from beamish.web._serializer import V2_JSON, Message, Serializer, SerializerError
from beamish.web._socket import Socket, SocketOptions, SocketState, match_route
from beamish.web._wire import Inbound, Push, SocketClose
from beamish.web._writer import write_now
from beamish.web._ws_protocol import FRAMES, IDLE_WATCHED, FrameWrite, frame_of

__all__ = ["SocketTransport", "serve_socket"]

_log = logging.getLogger("beamish.socket")

CONNECTED = event("beamish", "socket", "connect")
_INBOX_LIMIT = 1000  # frames waiting in the process before the reader stops reading
_DUPLICATE_JOIN_WAIT = 5.0  # seconds for a replaced channel to stop before it is killed
_CLOSE_GRACE = 10.0  # seconds a close frame's write may wait (a full buffer, a stuck server)


@mark_shared
class _In:
    """A frame from the client; ``size`` is what the reader counted against the backlog
    (None: not counted, as for a LongPoll post)."""

    __slots__ = ("data", "size")

    def __init__(self, data: str | bytes, size: int | None = None) -> None:
        self.data = data
        self.size = size


@mark_shared
class _Closed:
    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


@mark_shared
class _TooBig:
    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


@mark_shared
class _Drained:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


@mark_shared
class _IdleCheck:
    __slots__ = ()


@mark_shared
class _BacklogCheck:
    __slots__ = ()


_IDLE = _IdleCheck()
_BACKLOG_CHECK = _BacklogCheck()

_Entry = tuple[Pid, str | None, Ref, Share]
"""A joined channel: its pid, its join_ref, the transport's monitor, its part of the backlog."""
_DONE = _Drained(None)


async def serve_socket(
    socket_cls: type[Socket],
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    pubsub: str,
    connect_info: Mapping[str, Any] | None = None,
    options: SocketOptions | None = None,
) -> None:
    """Serve one WebSocket connection of ``socket_cls`` (the ASGI handler of its path).

    ``pubsub`` names the PubSub its channels broadcast on. ``connect_info`` is merged into
    what ``Socket.connect`` receives (an endpoint adds its session, say). ``options``
    replaces the socket class's options. Call it for a ``"websocket"`` scope, from a task in
    which a beamish runtime is current; it returns when the connection and its process are
    gone. Its process is spawned with no parent: the runtime's shutdown closes it (1001).
    """
    if scope.get("type") != "websocket":
        raise TypeError(f"serve_socket() serves a websocket scope, got {scope.get('type')!r}")
    if not (isinstance(socket_cls, type) and issubclass(socket_cls, Socket)):
        raise TypeError(f"serve_socket() needs a Socket subclass, got {socket_cls!r}")
    runtime = current_runtime()
    runtime.bind()  # this task reads for the connection; it is not a process itself
    if (await receive())["type"] != "websocket.connect":
        return
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    vsn = params.get("vsn", "2.0.0")
    if not vsn.startswith("2."):
        _log.error(
            "%s: the client asked for protocol version %r; this server speaks 2.x (the "
            "phoenix JavaScript client sends vsn=2.0.0)", socket_cls.__qualname__, clip(vsn),
        )
        await send({"type": "websocket.close"})
        return
    opts = options if options is not None else socket_cls.options
    info = _connect_info(scope)
    if opts.session is not None:
        info["session"] = await read_session(scope, params, opts.session)
    if connect_info:
        info.update(connect_info)
    transport = SocketTransport(socket_cls, opts, pubsub, params, info, V2_JSON, send, scope)
    del params, info  # the process has them (and drops them once connected): this frame
    # lives as long as the connection, and the decoded headers were ~2 KB of each one
    # Until the connection is accepted the client cannot send a frame, so nothing is read
    # before: a connection refused is over when its process is (not every server tells a
    # refused handshake's reader that it is gone; granian does not).
    decided = transport._decided = asyncio.get_running_loop().create_future()
    pid = spawn_opt(transport, trap_exit=True)
    backlog = transport.backlog
    limit = opts.max_frame_size
    try:
        if not await decided:
            return
        del decided
        while True:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                data = event.get("text")
                if data is None:
                    data = event.get("bytes")
                    if data is None:
                        continue
                    size = len(data)
                else:
                    size = len(data)
                    if size * 4 > limit:  # a str is at most 4 bytes a character
                        size = len(data.encode())
                if not is_alive(pid):  # killed: nobody will close the connection but us
                    with contextlib.suppress(Exception):
                        await send({"type": "websocket.close", "code": 1011})
                    continue
                if size > limit:
                    send_to(pid, _TooBig(size))
                elif backlog.read(size):  # at the limit: no more reading until it drains
                    send_to(pid, _In(data, size))
                    await backlog.wait()
                else:
                    send_to(pid, _In(data, size))
                while transport.mailbox_size() > _INBOX_LIMIT and is_alive(pid):
                    await asyncio.sleep(0.005)  # the process is behind: stop reading a while
            elif kind == "websocket.disconnect":
                break
    finally:
        send_to(pid, _Closed(0))
    try:
        await wait_exit(pid, timeout=_DUPLICATE_JOIN_WAIT)
    except TimeoutError:
        exit(pid, "kill")


class _Latest:
    """A coalescing broadcast waiting in the outbox; a newer one replaces its ``data``."""

    __slots__ = ("data", "key")

    def __init__(self, key: tuple[str, str], data: str | bytes) -> None:
        self.key = key
        self.data = data


send_to = send
"""The process API's ``send`` (``serve_socket``'s own ``send`` is the ASGI one)."""

_connect_info = connect_info  # where LongPoll has always found it


class SocketTransport(Actor):
    """The process of one WebSocket connection (see the module docstring)."""

    __slots__ = (
        "_asgi_send",
        "_backlog_watched",
        "_began",
        "_by_pid",
        "_channels",
        "_clock",
        "_closing",
        "_connect_info",
        "_decided",
        "_frames",
        "_last_in",
        "_latest",
        "_options",
        "_outbox",
        "_params",
        "_pending",
        "_pubsub",
        "_queued",
        "_scope",
        "_serializer",
        "_socket",
        "_socket_cls",
        "_transport_name",
        "_watch_idle",
        "backlog",
    )

    def __init__(
        self, socket_cls: type[Socket], options: SocketOptions, pubsub: str,
        params: dict[str, str], connect_info: dict[str, Any], serializer: Serializer,
        asgi_send: Send, scope: Scope, *, transport_name: str = "websocket",
        watch_idle: bool = True,
    ) -> None:
        self._socket_cls = socket_cls
        self._options = options
        self._pubsub = pubsub
        self._params: dict[str, str] | None = params
        self._connect_info: dict[str, Any] | None = connect_info
        self._serializer = serializer
        self._asgi_send = asgi_send
        self._scope: Scope | None = scope
        self._frames: FrameWrite | None = (scope.get("extensions") or {}).get(FRAMES)
        self._socket: SocketState | None = None
        self._channels: dict[str, _Entry] = {}
        self._by_pid: dict[Pid, str] = {}
        self._pending: asyncio.Task[None] | None = None
        self._outbox: deque[str | bytes | _Latest] | None = None
        self._latest: dict[tuple[str, str], _Latest] | None = None  # coalescing, waiting
        self._queued = 0
        self._closing = False
        self._last_in = 0.0
        self._clock: Any = None
        self._transport_name = transport_name  # SocketState.transport
        self._watch_idle = watch_idle  # False where the other end keeps time (LongPoll)
        self.backlog = Backlog(
            options.max_backlog, options.max_backlog_bytes, current_runtime().clock
        )
        self._backlog_watched = False  # a _BacklogCheck is on its way
        self._began = 0.0  # when connect began, if a telemetry handler wants it
        # set by serve_socket: True once the connection is accepted, False if it never is
        self._decided: asyncio.Future[bool] | None = None

    # -- connecting ---------------------------------------------------------------------------

    def started(self) -> Awaitable[None] | None:
        if CONNECTED.handlers:
            self._began = time.monotonic()
        self._clock = current_runtime().clock
        self._last_in = self._clock.now()
        socket = SocketState(
            pubsub=self._pubsub, handler=self._socket_cls, serializer=self._serializer,
            transport=self._transport_name, transport_pid=self.pid,
        )
        handler = self._socket_cls()
        params, info = self._params or {}, self._connect_info or {}
        self._params = self._connect_info = None
        try:
            result = handler.connect(params, socket, info)
        except Exception as exc:
            self._refuse(f"connect raised {type(exc).__name__}: {clip_text(exc)}", exc)
        if inspect.isawaitable(result):
            return self._connect_async(handler, result, info)
        return self._connected(handler, result, info)

    async def _connect_async(
        self, handler: Socket, awaitable: Awaitable[Any], info: dict[str, Any]
    ) -> None:
        try:
            result = await awaitable
        except Exception as exc:
            self._refuse(f"connect raised {type(exc).__name__}: {clip_text(exc)}", exc)
        rest = self._connected(handler, result, info)
        if rest is not None:
            await rest

    def _connected(
        self, handler: Socket, result: Any, info: dict[str, Any]
    ) -> Awaitable[None] | None:
        match result:
            case Ok(SocketState() as socket, None) | ("ok", SocketState() as socket):
                pass
            case ("error", reason) if self._options.error_handler is not None:
                return self._refuse_with_handler(info, reason)
            case None | "error" | ("error", _):
                self._refuse(None, None)
            case _:
                self._refuse(
                    f"connect returned {clip(result)}; it must return Ok(socket) or ('ok', socket) "
                    "to accept, 'error' or ('error', reason) to refuse", None,
                )
        try:
            socket_id = handler.id(socket)
        except Exception as exc:
            self._refuse(f"id raised {type(exc).__name__}: {clip_text(exc)}", exc)
        if socket_id is not None and type(socket_id) is not str:
            self._refuse(f"id returned {clip(socket_id)}; it must return a str or None", None)
        self._socket = socket.replace(id=socket_id, transport_pid=self.pid)
        accept: dict[str, Any] = {"type": "websocket.accept"}
        scope = self._scope or {}
        requested = scope.get("subprotocols") or ()
        headers = scope.get("headers") or ()
        extensions = scope.get("extensions")
        if self._watch_idle and extensions is not None:
            extensions[IDLE_WATCHED] = True  # heartbeats and the idle timeout, not pings
        if scope.get("type") == "websocket":  # read: the server need not keep them (~1 KB)
            scope["headers"] = []
        self._scope = None
        if "phoenix" in requested:
            accept["subprotocol"] = "phoenix"
        self._send_message(accept)
        self._decide(True)
        if socket_id is not None:
            PubSub.subscribe(self._pubsub, socket_id)
        if self._watch_idle:  # one timer for all the runtime's connections (_idle.py)
            idle_watch(current_runtime(), self.pid, self._options.timeout, _IDLE)
        self._told_connect("ok", headers)
        return None

    def _told_connect(self, result: str, headers: Any = ()) -> None:
        if self._began and CONNECTED.handlers:
            CONNECTED.emit({"duration": time.monotonic() - self._began}, {
                "socket": self._socket_cls.__qualname__, "transport": self._transport_name,
                "result": result, "pid": self.pid, "headers": headers,
                "id": self._socket.id if self._socket is not None else None,
            })

    async def _refuse_with_handler(self, info: dict[str, Any], reason: Any) -> NoReturn:
        """Answer a refused handshake with what the socket's ``error_handler`` returns."""
        scope, self._scope = self._scope or {}, None
        error_handler = self._options.error_handler
        assert error_handler is not None
        try:
            response = error_handler(info, reason)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            self._refuse(f"error_handler raised {type(exc).__name__}: {clip_text(exc)}", exc)
        status, body = getattr(response, "status_code", None), getattr(response, "body", None)
        if type(status) is not int or not isinstance(body, bytes):
            self._refuse(
                f"error_handler returned {clip(response)}; it must return a Starlette "
                "Response with a body, such as PlainTextResponse('...', status_code=429)", None,
            )
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            self._refuse(None, None)  # the server cannot answer a handshake with a response
        self._closing = True
        self._told_connect("error")
        with contextlib.suppress(Exception):  # the client may be gone already
            await self._asgi_send({"type": "websocket.http.response.start", "status": status,
                                   "headers": list(response.raw_headers)})
            await self._asgi_send({"type": "websocket.http.response.body", "body": body})
        raise ProcessExit("normal")

    def _refuse(self, problem: str | None, exc: BaseException | None) -> NoReturn:
        if problem is not None:
            _log.error(
                "%s refused a connection: %s", self._socket_cls.__qualname__, problem,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )
        self._closing = True
        self._told_connect("error")
        with contextlib.suppress(Exception):
            write_now(self._asgi_send, {"type": "websocket.close"})  # 403 before the handshake
        raise ProcessExit("normal")

    # -- messages -----------------------------------------------------------------------------

    def handle(self, message: Any) -> Awaitable[None] | None:
        try:
            kind = type(message)
            if kind is Push:
                self._write_push(message)
            elif kind is _In:
                return self._incoming(message.data, message.size)
            elif kind is SocketClose:
                self._channel_closed(message)
            elif kind is Down:
                self._channel_down(message)
            elif kind is _Drained:
                self._drained(message.error)
            elif kind is _IdleCheck:
                self._idle_check()
            elif kind is _BacklogCheck:
                self._backlog_check()
            elif kind is _Closed:  # the client is gone: nothing more is written to it
                self._closing = True
                raise ProcessExit("normal")
            elif kind is _TooBig:
                _log.warning(
                    "%s: closing a connection that sent a frame of %d bytes (the limit is %d)",
                    self._socket_cls.__qualname__, message.size, self._options.max_frame_size,
                )
                self._close(1009, "frame too big")
                raise ProcessExit("normal")
            elif kind is Broadcast:
                if message.event == "disconnect":
                    self._close(1001, "disconnected")
                    raise ProcessExit(("shutdown", "disconnected"))
            elif kind is Exit and message.reason != "normal":
                self._close(1001, "going away")
                raise ProcessExit(message.reason)
            return None
        except ProcessExit:
            raise
        except Exception:
            self._close(1011, "internal error")
            raise

    def _incoming(self, data: str | bytes, counted: int | None) -> Awaitable[None] | None:
        backlog = self.backlog
        size = counted if counted is not None else len(data)
        if self._closing:
            if counted is not None:
                backlog.release(size)
            return None
        if backlog.over_since is not None and not self._backlog_watched:
            self._watch_backlog()
        self._last_in = self._clock.now()
        try:
            message = self._serializer.decode(data)
        except SerializerError as exc:
            _log.warning("%s: closing a connection that sent a malformed frame: %s",
                         self._socket_cls.__qualname__, clip_text(exc))
            self._close(1007, "malformed message")
            raise ProcessExit("normal") from None
        topic = message.topic
        entry = self._channels.get(topic)
        event = message.event
        if event == "heartbeat" and topic == "phoenix":
            if counted is not None:
                backlog.release(size)
            self._write(self._serializer.encode_reply(None, message.ref, topic, "ok", {}))
            return None
        if (entry is not None and event != "phx_join"
                and (message.join_ref is None or message.join_ref == entry[1])):
            share = entry[3]  # handed on with its count, which the channel gives back
            if counted is None:
                backlog.read(size)  # a LongPoll frame: counted now
            share.count += 1  # Share.give, written out: this is every client message's path
            share.bytes += size
            send(entry[0], Inbound(message, size, share))
            if backlog.over_since is not None and not self._backlog_watched:
                self._watch_backlog()
            return None
        if counted is not None:
            backlog.release(size)  # handled here, now
        if event == "phx_join":
            return self._join(message, entry)
        if entry is None:
            if event == "phx_leave":  # left after a refused join, or raced a close: ok
                self._write(self._serializer.encode_reply(
                    message.join_ref, message.ref, topic, "ok", {}
                ))
            else:
                self._unmatched(message, logged=False)
        # else: a message for an earlier join of the topic, which the client raced: dropped
        return None

    # -- joining and leaving -------------------------------------------------------------------

    def _join(self, message: Message, entry: _Entry | None) -> Awaitable[None] | None:
        if entry is not None:
            return self._guard(self._rejoin(message, entry))
        channel_cls = match_route(self._socket_cls.channels, message.topic)
        if channel_cls is None:
            self._unmatched(message, logged=True)
            return None
        join_ref = message.join_ref or message.ref
        if len(self._channels) >= self._options.max_channels:
            self._write(self._serializer.encode_reply(
                join_ref, message.ref, message.topic, "error",
                {"reason": "too many channels joined"},
            ))
            return None
        return self._guard(self._start_channel(message, channel_cls, join_ref))

    async def _start_channel(self, message: Message, channel_cls: Any, join_ref: Any) -> None:
        assert self._socket is not None
        socket = self._socket.replace(
            topic=message.topic, channel=channel_cls, join_ref=join_ref, ref=message.ref
        )
        try:
            pid = await ChannelServer.start(
                (channel_cls, socket, message.payload), timeout=None
            )
        except StartIgnored:
            return  # the join said ("error", reply): the channel wrote the reply
        except StartError:
            self._write(self._serializer.encode_reply(
                join_ref, message.ref, message.topic, "error", JOIN_CRASHED
            ))
            return
        self._channels[message.topic] = (
            pid, join_ref, monitor(pid), self.backlog.share(message.topic)
        )
        self._by_pid[pid] = message.topic

    async def _rejoin(self, message: Message, entry: _Entry) -> None:
        old, old_join_ref, _, _ = entry
        self._forget(message.topic)
        exited = wait_exit(old, timeout=_DUPLICATE_JOIN_WAIT)
        exit(old, ("shutdown", "duplicate_join"))
        try:
            await exited
        except TimeoutError:
            exit(old, "kill")
        receive_nowait(lambda m: type(m) is SocketClose and m.pid == old)
        self._write(self._serializer.encode(
            old_join_ref, old_join_ref, message.topic, "phx_close", {}
        ))
        rest = self._join(message, None)
        if rest is not None:
            await rest

    async def _guard(self, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except ProcessExit:
            raise
        except Exception:
            self._close(1011, "internal error")
            raise

    def _unmatched(self, message: Message, *, logged: bool) -> None:
        # Phoenix warns of a join no channel serves; a message for a topic that is not
        # joined (the channel stopped, the client raced it) is only answered.
        _log.log(
            logging.WARNING if logged else logging.DEBUG, "%s: ignoring unmatched topic %s",
            self._socket_cls.__qualname__, clip(message.topic),
        )
        self._write(self._serializer.encode_reply(
            None, message.ref, message.topic, "error", {"reason": "unmatched topic"}
        ))

    def _forget(self, topic: str) -> _Entry | None:
        entry = self._channels.pop(topic, None)
        if entry is not None:
            del self._by_pid[entry[0]]
            demonitor(entry[2], flush=True)
            entry[3].forget()
        return entry

    def _channel_closed(self, message: SocketClose) -> None:
        if self._by_pid.get(message.pid) != message.topic:
            return
        entry = self._forget(message.topic)
        assert entry is not None
        self._write(self._serializer.encode(
            entry[1], entry[1], message.topic, "phx_close", {}
        ))

    def _channel_down(self, message: Down) -> None:
        topic = self._by_pid.get(message.pid)
        if topic is None or self._channels[topic][2] != message.ref:
            return
        _, join_ref, _, share = self._channels.pop(topic)
        del self._by_pid[message.pid]
        share.forget()
        self._write(self._serializer.encode(
            join_ref, join_ref, topic, "phx_error", {"reason": "channel_crash"}
        ))

    # -- time ---------------------------------------------------------------------------------

    def _idle_check(self) -> None:
        if self._closing:
            return
        timeout = self._options.timeout
        if self._clock.now() - self._last_in >= timeout:
            self._close(1000, "")
            raise ProcessExit("normal")
        hibernate()  # at least every 15 s (as Phoenix's hibernate_after): no idle mailbox

    def _watch_backlog(self) -> None:
        self._backlog_watched = True
        send_after(self.pid, _BACKLOG_CHECK, self._options.backlog_timeout)

    def _backlog_check(self) -> None:
        self._backlog_watched = False
        since = self.backlog.over_since
        if since is None or self._closing:
            return  # it came back down meanwhile
        timeout = self._options.backlog_timeout
        stuck = self._clock.now() - since
        if stuck < timeout:  # it came down and filled up again since the check was sent
            self._backlog_watched = True
            send_after(self.pid, _BACKLOG_CHECK, timeout - stuck)
            return
        _log.warning(
            "%s: closing a connection whose channels did not keep up with it for %.3g s: "
            "%d messages (%d bytes) read and not handled (max_backlog=%d, "
            "max_backlog_bytes=%d); %s",
            self._describe(), stuck, self.backlog.count, self.backlog.bytes,
            self._options.max_backlog, self._options.max_backlog_bytes, self._laggard(),
        )
        self._close(1008, "channel backlog full")
        raise ProcessExit(("shutdown", "channel_backlog_full"))

    def _describe(self) -> str:
        socket_id = self._socket.id if self._socket is not None else None
        name = f"{self._socket_cls.__qualname__} {self.pid!r}"
        return f"{name} (id {clip(socket_id)})" if socket_id is not None else name

    def _laggard(self) -> str:
        """Which channel holds the most of the backlog, for the log."""
        share = max(self.backlog.shares, key=lambda s: s.count, default=None)
        if share is None or not share.count:
            return "they wait in the connection's own process (a join that does not return?)"
        channel = match_route(self._socket_cls.channels, share.topic)
        name = channel.__qualname__ if channel is not None else "channel"
        pid = self._channels[share.topic][0]
        return f"the most at topic {clip(share.topic)} ({name} {pid!r}, {share.count} messages)"

    # -- writing ------------------------------------------------------------------------------

    def _write_push(self, push: Push) -> None:
        frames = self._frames
        if self._pending is None:
            if frames is not None and not self._closing and frames(push.framed()):
                return
        elif push.key is not None and not self._closing and self._coalesces(push.key):
            self._queue_latest(push.key, push.data)
            return
        self._write(push.data, framed=False)

    def _coalesces(self, key: tuple[str, str]) -> bool:
        """Whether the channel joined to ``key``'s topic coalesces its event (a slow
        connection only: a route match, once the connection is behind)."""
        channel = match_route(self._socket_cls.channels, key[0])
        return channel is not None and key[1] in channel.coalesce

    def _queue_latest(self, key: tuple[str, str], data: str | bytes) -> None:
        """Queue a coalescing broadcast: it replaces the one of the same topic and event
        still waiting, or waits in the outbox's order if none is."""
        latest = self._latest
        waiting = latest.get(key) if latest is not None else None
        if waiting is not None:
            self._queued += len(data) - len(waiting.data)
            waiting.data = data
            return
        if latest is None:
            latest = self._latest = {}
        latest[key] = waiting = _Latest(key, data)
        self._enqueue(waiting, len(data))

    def _write(self, data: str | bytes, *, framed: bool = True) -> None:
        if self._closing:
            return
        if self._pending is None:
            frames = self._frames
            if framed and frames is not None and frames(frame_of(data)):
                return
            if type(data) is str:
                self._send_message({"type": "websocket.send", "text": data})
            else:
                self._send_message({"type": "websocket.send", "bytes": data})
            return
        self._enqueue(data, len(data))

    def _enqueue(self, item: str | bytes | _Latest, size: int) -> None:
        """Put ``item`` (``size`` bytes) in the outbox, behind the write in progress."""
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        outbox.append(item)
        self._queued += size
        if self._queued > self._options.max_queue_bytes:
            _log.warning(
                "%s: closing a connection that does not read fast enough: %d bytes waiting "
                "to be written (the limit is %d)", self._socket_cls.__qualname__,
                self._queued, self._options.max_queue_bytes,
            )
            self._close(1013, "outbound queue full")
            raise ProcessExit(("shutdown", "outbound_queue_full"))

    def _send_message(self, message: dict[str, Any]) -> None:
        try:
            pending = write_now(self._asgi_send, message)
        except Exception as exc:  # the client is gone (uvicorn: ClientDisconnected)
            self._closing = True
            _log.debug("%s: write failed, the connection is gone: %s",
                       self._socket_cls.__qualname__, clip(exc))
            raise ProcessExit("normal") from None
        if pending is not None:
            self._pending = pending
            pending.add_done_callback(self._write_done)

    def describe(self) -> dict[str, Any]:
        """What the connection is, for introspection (the dashboard's Sockets page): its
        socket class, transport, id and joined topics. Read on the loop, between steps."""
        return {
            "socket": self._socket_cls.__qualname__, "transport": self._transport_name,
            "id": self._socket.id if self._socket is not None else None,
            "topics": list(self._channels),
        }

    def _write_done(self, task: asyncio.Task[None]) -> None:
        # A loop callback, outside the process: tell the process, as a message.
        error = None if task.cancelled() else task.exception()
        send(self.pid, _DONE if error is None else _Drained(error))

    def _drained(self, error: BaseException | None) -> None:
        self._pending = None
        if error is not None:
            self._closing = True
            raise ProcessExit("normal")
        outbox = self._outbox
        while outbox and self._pending is None and not self._closing:
            item = outbox.popleft()
            if isinstance(item, _Latest):  # a coalescing broadcast: no longer replaceable
                del self._latest[item.key]  # type: ignore[union-attr]
                data = item.data
            else:
                data = item
            self._queued -= len(data)
            self._write(data)
        if not outbox:
            self._outbox = None

    def exited(self, reason: Any) -> None:
        # Runs on every exit, a kill included: a connection whose process is gone is closed
        # at once (1011), so its reader returns instead of waiting for the client's next frame;
        # its channels drop what they were sent and have not handled.
        self.backlog.close()
        self._close(1011, "internal error")
        self._decide(False)

    def _decide(self, accepted: bool) -> None:
        decided, self._decided = self._decided, None
        if decided is not None and not decided.done():
            decided.set_result(accepted)

    def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._outbox = self._latest = None
        pending = None
        with contextlib.suppress(Exception):
            pending = write_now(self._asgi_send, {"type": "websocket.close", "code": code,
                                                  "reason": reason})
        if pending is not None:  # a close the server does not take soon is given up
            asyncio.get_running_loop().call_later(_CLOSE_GRACE, pending.cancel)
