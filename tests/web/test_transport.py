"""Sockets and channels over a real uvicorn server and real WebSocket clients
(OTP-SEMANTICS section 13: the Phoenix V2 wire protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from typing import ClassVar

import orjson
import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

import beamish
from beamish import Down, NoReply, Ok, Reply, Stop, send
from beamish.pubsub import PubSub
from beamish.testing import assert_receive, start_supervised
from beamish.web import Channel, Socket, broadcast, serve_socket
from beamish.web._ws_protocol import FramedWebSocketProtocol


def report(message):
    test = beamish.whereis("test")
    if test is not None:
        send(test, message)


class Room(Channel):
    intercept = ("new_msg", "stop")

    def join(self, topic, payload, socket):
        if payload.get("refuse"):
            return ("error", {"reason": payload["refuse"]})
        if payload.get("crash"):
            raise RuntimeError("cannot join")
        if beamish.whereis(topic) is None:
            beamish.register(topic)  # so that the test can find (and monitor) it
        send(beamish.self(), ("after_join", payload))
        return Ok(socket)

    def handle_info(self, message, socket):
        match message:
            case ("after_join", payload):
                self.broadcast(socket, "user_entered", {"user": payload.get("user")})
                self.push(socket, "joined", {"status": "connected", **socket.assigns})
        return NoReply(socket)

    def handle_in(self, event, payload, socket):
        match event:
            case "new_msg":
                self.broadcast(socket, "new_msg", payload)
                return Reply("ok", socket)
            case "ping":
                return Reply(("ok", {"pong": payload}), socket)
            case "quiet":
                return NoReply(socket)
            case "stop":
                reason = payload["reason"]
                return Stop(tuple(reason) if isinstance(reason, list) else reason, socket)
            case "stop_with_reply":
                return Stop("shutdown", socket, reply=("ok", {"resp": "bye"}))
            case "boom":
                raise RuntimeError("boom")
            case "flood":
                data = payload["chunk"] * payload["repeat"]
                for n in range(payload["count"]):
                    self.push(socket, "flood", {"n": n, "data": data})
                return NoReply(socket)
            case "binary":
                self.push(socket, "binary", payload[::-1])
                return Reply(("ok", b"\x00" + payload), socket)
        return NoReply(socket)

    def handle_out(self, event, payload, socket):
        if event == "stop":
            return Stop("shutdown", socket)
        self.push(socket, event, {**payload, "transport": socket.transport})
        return NoReply(socket)

    def terminate(self, reason, socket):
        report(("terminate", socket.topic, reason))


class UserSocket(Socket):
    channels: ClassVar = {"room:*": Room}

    def connect(self, params, socket, connect_info):
        if params.get("reject") == "true":
            return "error"
        return Ok(socket.assign(user_id=params.get("user_id")))

    def id(self, socket):
        user = socket.assigns["user_id"]
        return f"user_sockets:{user}" if user else None


class QuietSocket(UserSocket, timeout=0.2):
    pass


class OneChannelSocket(UserSocket, max_channels=1):
    pass


class SmallSocket(UserSocket, max_frame_size=1000, max_queue_bytes=100_000):
    pass


# -- a server and clients -----------------------------------------------------------------------

PROTOCOL = {"ws": "websockets-sansio"}
WS = {"websockets-sansio": "websockets-sansio", "framed": FramedWebSocketProtocol}


@pytest.fixture(autouse=True, params=["websockets-sansio", "framed", "granian"])
def ws_protocol(request):
    """Every test here runs on uvicorn's own WebSocket protocol (frames through the ASGI
    ``send``), on beamish's (pre-built frames written straight to the connection), and on
    granian (embedded on the test's loop; frames through its ``send``)."""
    PROTOCOL["ws"] = request.param
    yield request.param
    PROTOCOL["ws"] = "websockets-sansio"


@contextlib.asynccontextmanager
async def serving(socket_cls=UserSocket):
    """Serve ``socket_cls`` on a free port, in this test's runtime, on the server and
    WebSocket protocol the ``ws_protocol`` fixture chose."""
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))

    async def app(scope, receive, send):
        assert scope["type"] == "websocket"
        await serve_socket(socket_cls, scope, receive, send, pubsub="ps")

    if PROTOCOL["ws"] == "granian":
        async with granian_serving(app) as port:
            yield f"ws://127.0.0.1:{port}/socket/websocket"
        return
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None,
                            log_level="warning", ws=WS[PROTOCOL["ws"]],
                            ws_per_message_deflate=PROTOCOL["ws"] != "framed")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/socket/websocket"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def granian_serving(app):
    """``app`` served by granian's embedded server (no lifespan) on a free port."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    running: set[asyncio.Task] = set()

    async def tracked(scope, receive, send):  # granian's stop does not wait for handlers
        task = asyncio.current_task()
        running.add(task)
        try:
            await app(scope, receive, send)
        finally:
            running.discard(task)

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = Server(tracked, address="127.0.0.1", port=port, interface=Interfaces.ASGINL,
                    log_enabled=False)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(500):  # until it listens
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        # As GranianEndpointServer does: the connections end before granian stops (a write
        # to granian once it has stopped never completes)
        if running:
            await asyncio.wait(set(running), timeout=5)
        server.stop()
        await task


class Client:
    """A bare V2 client: frames in, frames out, kept until a test asks for them."""

    def __init__(self, ws):
        self.ws = ws
        self.refs = itertools.count(1)
        self.unread = []

    async def push(self, topic, event, payload=None, join_ref=None):
        ref = str(next(self.refs))
        await self.ws.send(orjson.dumps([join_ref, ref, topic, event, payload or {}]).decode())
        return ref

    async def join(self, topic, payload=None):
        ref = str(next(self.refs))
        await self.ws.send(orjson.dumps([ref, ref, topic, "phx_join", payload or {}]).decode())
        return ref

    async def expect(self, topic=None, event=None, ref=None, timeout=2.0):
        """The first frame (read or unread) with this topic, event and ref."""

        def wanted(frame):
            return ((topic is None or frame[2] == topic) and (event is None or frame[3] == event)
                    and (ref is None or frame[1] == ref))

        for frame in self.unread:
            if wanted(frame):
                self.unread.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(self.ws.recv(), max(deadline - time.monotonic(), 0))
            frame = orjson.loads(data) if isinstance(data, str) else data
            if isinstance(frame, list) and wanted(frame):
                return frame
            self.unread.append(frame)

    async def closed(self, timeout=2.0):
        """Read until the server closes; its close code."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        return self.ws.close_code


@contextlib.asynccontextmanager
async def connected(url, query="vsn=2.0.0", **options):
    async with websockets.connect(f"{url}?{query}", compression=None, open_timeout=2,
                                  **options) as ws:
        yield Client(ws)


def ok(response=None):
    return {"status": "ok", "response": response or {}}


# -- the items ----------------------------------------------------------------------------------


async def test_transport_join_refused_157():
    async with serving() as url, connected(url) as client:
        ref = await client.join("room:lobby", {"refuse": "mybad"})
        assert await client.expect(event="phx_reply") == [
            ref, ref, "room:lobby", "phx_reply",
            {"status": "error", "response": {"reason": "mybad"}},
        ]
        msg = await client.push("room:lobby", "ping", join_ref=ref)
        assert await client.expect(ref=msg) == [
            None, msg, "room:lobby", "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]


async def test_transport_join_crash_158(caplog):
    async with serving() as url, connected(url) as client:
        ref = await client.join("room:lobby", {"crash": True})
        assert await client.expect(event="phx_reply") == [
            ref, ref, "room:lobby", "phx_reply",
            {"status": "error", "response": {"reason": "join crashed"}},
        ]
        ref = await client.push("phoenix", "heartbeat")  # the socket is still up
        assert (await client.expect(topic="phoenix"))[4] == ok()
    assert "cannot join" in caplog.text


async def test_transport_handle_in_replies_160():
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        assert await client.expect(event="phx_reply") == [
            join_ref, join_ref, "room:lobby", "phx_reply", ok()
        ]
        ref = await client.push("room:lobby", "ping", {"x": 1}, join_ref=join_ref)
        assert await client.expect(ref=ref) == [
            join_ref, ref, "room:lobby", "phx_reply", ok({"pong": {"x": 1}})
        ]
        ref = await client.push("room:lobby", "new_msg", {"body": "hi"}, join_ref=join_ref)
        assert (await client.expect(ref=ref))[4] == ok()
        quiet = await client.push("room:lobby", "quiet", join_ref=join_ref)
        last = await client.push("room:lobby", "ping", join_ref=join_ref)
        await client.expect(ref=last)
        assert not [f for f in client.unread if f[1] == quiet]  # no reply for noreply


async def test_transport_pushes_and_broadcasts_on_the_wire_161():
    async with serving() as url, connected(url) as first, connected(url) as second:
        j1 = await first.join("room:lobby", {"user": "ada"})
        await first.expect(event="phx_reply")
        assert await first.expect(event="joined") == [
            j1, None, "room:lobby", "joined", {"status": "connected", "user_id": None}
        ]
        assert await first.expect(event="user_entered") == [
            None, None, "room:lobby", "user_entered", {"user": "ada"}
        ]
        await second.join("room:lobby", {"user": "bob"})
        await second.expect(event="phx_reply")
        await second.expect(event="joined")
        for client in (first, second):  # the originator included
            assert await client.expect(event="user_entered") == [
                None, None, "room:lobby", "user_entered", {"user": "bob"}
            ]
        assert not [f for f in first.unread if f[3] == "joined"]  # a push is for one client


async def test_transport_a_broadcast_is_written_by_the_connection_s_own_process():
    """The broadcaster only sends: a transport held between two messages writes nothing of a
    broadcast until it takes the ``Push`` itself (Phoenix's fastlane sends to the transport
    pid), however the server writes (pre-built frames or the ASGI send)."""
    from beamish._runtime.api import current_runtime
    from beamish._runtime.holds import hold, release
    from beamish.web._transport import SocketTransport

    async with serving() as url, connected(url) as client:
        await client.join("room:lobby")
        await client.expect(event="phx_reply")
        (proc,) = [p for p in current_runtime()._procs.values()
                   if type(p.actor) is SocketTransport]
        assert hold(proc) is None  # between two messages: held at once
        try:
            broadcast("ps", "room:lobby", "default", {"n": 1})
            with pytest.raises(TimeoutError):
                await client.expect(event="default", timeout=0.3)
        finally:
            release(proc)
        assert await client.expect(event="default") == [
            None, None, "room:lobby", "default", {"n": 1}
        ]


async def test_transport_intercepted_outgoing_events_163():
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        broadcast("ps", "room:lobby", "new_msg", {"body": "hi"})
        assert await client.expect(event="new_msg") == [
            join_ref, None, "room:lobby", "new_msg", {"body": "hi", "transport": "websocket"}
        ]
        broadcast("ps", "room:lobby", "default", {"body": "as is"})
        assert await client.expect(event="default") == [
            None, None, "room:lobby", "default", {"body": "as is"}
        ]
        broadcast("ps", "room:lobby", "stop", {})
        assert await client.expect(event="phx_close") == [
            join_ref, join_ref, "room:lobby", "phx_close", {}
        ]
        await assert_receive(("terminate", "room:lobby", "shutdown"))


@pytest.mark.parametrize("reason", ["normal", "shutdown", ["shutdown", "x"]])
async def test_transport_graceful_stop_sends_phx_close_166(reason):
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        await client.push("room:lobby", "stop", {"reason": reason}, join_ref=join_ref)
        assert await client.expect(event="phx_close") == [
            join_ref, join_ref, "room:lobby", "phx_close", {}
        ]
        expected = tuple(reason) if isinstance(reason, list) else reason
        await assert_receive(("terminate", "room:lobby", expected))


async def test_transport_stop_with_reply_sends_the_reply_first_166():
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        ref = await client.push("room:lobby", "stop_with_reply", join_ref=join_ref)
        reply = await client.expect(topic="room:lobby", event="phx_reply")
        assert reply == [join_ref, ref, "room:lobby", "phx_reply", ok({"resp": "bye"})]
        await client.expect(event="phx_close")


async def test_transport_crash_sends_phx_error_to_that_topic_only_166(caplog):
    async with serving() as url, connected(url) as client:
        crashing = await client.join("room:crashing")
        await client.expect(topic="room:crashing", event="phx_reply")
        other = await client.join("room:other")
        await client.expect(topic="room:other", event="phx_reply")
        await client.push("room:crashing", "boom", join_ref=crashing)
        assert await client.expect(event="phx_error") == [
            crashing, crashing, "room:crashing", "phx_error", {"reason": "channel_crash"}
        ]
        ref = await client.push("room:other", "ping", join_ref=other)
        assert (await client.expect(ref=ref))[4] == ok({"pong": {}})
        ref = await client.push("room:crashing", "ping", join_ref=crashing)
        assert (await client.expect(ref=ref))[4]["response"] == {"reason": "unmatched topic"}
    assert "boom" in caplog.text


async def test_transport_leave_replies_then_closes():
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        ref = await client.push("room:lobby", "phx_leave", join_ref=join_ref)
        assert await client.expect(ref=ref) == [
            join_ref, ref, "room:lobby", "phx_reply", ok()
        ]
        assert (await client.expect(event="phx_close"))[:2] == [join_ref, join_ref]
        await assert_receive(("terminate", "room:lobby", ("shutdown", "left")))


async def test_transport_close_terminates_all_channels_167():
    async with serving() as url:
        async with connected(url) as client:
            for topic in ("room:a", "room:b"):
                await client.join(topic)
                await client.expect(topic=topic, event="phx_reply")
            refs = {beamish.monitor(beamish.whereis(t)): t for t in ("room:a", "room:b")}
        for _ in refs:
            down = await assert_receive(Down, timeout=2)
            assert down.ref in refs and down.reason == ("shutdown", "closed")
            await assert_receive(("terminate", refs[down.ref], ("shutdown", "closed")))


async def test_transport_heartbeat_and_idle_timeout_169():
    async with serving(QuietSocket) as url, connected(url) as client:
        await client.ws.send('[null,"1","phoenix","heartbeat",{}]')
        assert await client.expect() == [None, "1", "phoenix", "phx_reply", ok()]
        started = time.monotonic()
        assert await client.closed() == 1000
        assert 0.1 < time.monotonic() - started < 1.0


async def test_transport_duplicate_join_replaces_the_channel_170():
    async with serving() as url, connected(url) as client:
        j1 = await client.join("room:joiner")
        await client.expect(event="phx_reply")
        old = beamish.whereis("room:joiner")
        ref = beamish.monitor(old)
        j2 = await client.join("room:joiner")
        assert await client.expect(event="phx_close") == [j1, j1, "room:joiner", "phx_close", {}]
        assert await client.expect(event="phx_reply") == [j2, j2, "room:joiner", "phx_reply", ok()]
        assert await assert_receive(Down) == Down(ref, old, ("shutdown", "duplicate_join"))
        ping = await client.push("room:joiner", "ping", join_ref=j2)
        assert (await client.expect(ref=ping))[4] == ok({"pong": {}})


TOO_MANY = {"status": "error", "response": {"reason": "too many channels joined"}}


async def test_transport_channel_limit_172():
    async with serving() as url, connected(url) as client:
        for n in range(100):
            await client.join(f"room:{n}")
        for n in range(100):
            assert (await client.expect(topic=f"room:{n}", event="phx_reply"))[4] == ok()
        ref = await client.join("room:100")
        assert await client.expect(topic="room:100") == [
            ref, ref, "room:100", "phx_reply", TOO_MANY
        ]


async def test_transport_configured_channel_limit_172():
    async with serving(OneChannelSocket) as url, connected(url) as client:
        await client.join("room:a")
        assert (await client.expect(topic="room:a"))[4] == ok()
        ref = await client.join("room:b")
        assert await client.expect(topic="room:b") == [ref, ref, "room:b", "phx_reply", TOO_MANY]


async def test_transport_disconnect_broadcast_173():
    async with serving() as url, connected(url, "vsn=2.0.0&user_id=1001") as client:
        for topic in ("room:d1", "room:d2"):
            await client.join(topic)
            await client.expect(topic=topic, event="phx_reply")
        refs = [beamish.monitor(beamish.whereis(t)) for t in ("room:d1", "room:d2")]
        broadcast("ps", "user_sockets:1001", "disconnect", {})
        assert await client.closed() == 1001  # going away: phoenix.js reconnects (not on 1000)
        for _ in refs:
            down = await assert_receive(Down, timeout=2)
            assert down.ref in refs and beamish.is_shutdown(down.reason)


async def test_transport_binary_frames_176():
    async with serving() as url, connected(url) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        header = bytes([0, len(join_ref), 2, len("room:lobby"), len("binary")])
        await client.ws.send(header + join_ref.encode() + b"99" + b"room:lobby" + b"binary"
                             + b"\x01\x02\x03")
        frames = []
        while len(frames) < 2:
            frame = await asyncio.wait_for(client.ws.recv(), 2)
            if isinstance(frame, bytes):
                frames.append(frame)
        push = bytes([0, len(join_ref), 10, 6]) + join_ref.encode() + b"room:lobby" + b"binary"
        reply = (bytes([1, len(join_ref), 2, 10, 2]) + join_ref.encode() + b"99"
                 + b"room:lobby" + b"ok")
        assert sorted(frames) == sorted([push + b"\x03\x02\x01", reply + b"\x00\x01\x02\x03"])


# -- the handshake, limits and close codes ------------------------------------------------------


async def test_transport_refused_connect_is_a_403():
    async with serving() as url:
        for query in ("vsn=2.0.0&reject=true", "vsn=1.0.0"):
            with pytest.raises(InvalidStatus) as refused:
                async with connected(url, query):
                    pass
            assert refused.value.response.status_code == 403


async def test_transport_connect_info_and_assigns():
    class InfoSocket(Socket):
        channels: ClassVar = {"room:*": Room}

        async def connect(self, params, socket, connect_info):
            await asyncio.sleep(0)  # connect may be async
            report(("connect", params, connect_info))
            return ("ok", socket.assign(user_id=params["user_id"]))

    async with serving(InfoSocket) as url, connected(
        url, "vsn=2.0.0&user_id=7", additional_headers={"x-app": "beamish"}
    ) as client:
        _, params, info = await assert_receive(("connect", beamish.ANY, beamish.ANY), timeout=2)
        assert params == {"vsn": "2.0.0", "user_id": "7"}
        assert info["peer_data"]["address"] == "127.0.0.1"
        assert info["uri"]["path"] == "/socket/websocket"
        assert ("x-app", "beamish") in info["x_headers"]
        join_ref = await client.join("room:lobby")
        assert (await client.expect(event="joined"))[:1] == [join_ref]


async def test_transport_closes_a_connection_that_sends_too_big_a_frame(caplog):
    async with serving(SmallSocket) as url, connected(url) as client:
        await client.push("room:lobby", "ping", {"x": "y" * 2000})
        assert await client.closed() == 1009
    assert "frame of" in caplog.text


async def test_transport_closes_a_connection_that_sends_garbage(caplog):
    async with serving() as url, connected(url) as client:
        await client.ws.send("this is not json")
        assert await client.closed() == 1007


async def test_transport_closes_a_client_that_cannot_keep_up(caplog):
    async with serving(SmallSocket) as url, connected(url, max_queue=1) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        await client.push("room:lobby", "flood", {"chunk": "0123456789abcdef", "repeat": 4000,
                                                  "count": 1000}, join_ref=join_ref)
        await assert_receive(
            ("terminate", "room:lobby", ("shutdown", "outbound_queue_full")), timeout=5
        )
        assert await client.closed() == 1013
        assert client.ws.close_reason == "outbound queue full"
    assert "does not read fast enough" in caplog.text


class Ticker(Room):
    coalesce = ("tick",)


class TickSocket(SmallSocket):
    channels: ClassVar = {"room:*": Ticker}


@pytest.mark.parametrize("socket_cls", [TickSocket, SmallSocket], ids=["coalesced", "queued"])
async def test_transport_gives_a_slow_client_the_latest_of_a_coalesced_broadcast(socket_cls):
    """A client that does not read while 600 broadcasts of 20 KB go out (12 MB, 120 times the
    socket's queue bound): where the channel coalesces the event, the connection lives and
    the client, reading at last, gets some of them in order, ending with the latest; where
    it does not, the queue bound closes the connection (1013). (Loopback's TCP buffers take
    a few MB before the server sees the client is behind: those frames arrive too.)"""
    async with serving(socket_cls) as url, connected(url, max_queue=1) as client:
        join_ref = await client.join("room:lobby")
        await client.expect(event="phx_reply")
        await client.expect(event="joined")
        data = "x" * 20_000
        for n in range(600):
            broadcast("ps", "room:lobby", "tick", {"n": n, "data": data})
        await asyncio.sleep(0.5)  # the transport takes them all while the client reads none
        if socket_cls is SmallSocket:
            assert await client.closed() == 1013
            return
        seen = []
        while not seen or seen[-1] != 599:
            seen.append((await client.expect(event="tick", timeout=5))[4]["n"])
        assert seen == sorted(set(seen)), seen  # in order, none twice
        assert len(seen) < 300, f"{len(seen)} of 600 ticks arrived: they were not coalesced"
        ref = await client.push("room:lobby", "ping", {"x": 1}, join_ref=join_ref)
        assert (await client.expect(ref=ref))[4] == ok({"pong": {"x": 1}})  # still served


async def test_transport_runtime_shutdown_closes_with_going_away():
    async with serving() as url, connected(url) as client:
        await client.join("room:lobby")
        await client.expect(event="phx_reply")
        [transport] = [p for p in beamish.processes()
                       if "SocketTransport" in beamish.process_info(p).initial_call]
        beamish.exit(transport, "shutdown")  # what a stopping runtime sends it
        assert await client.closed() == 1001


async def test_transport_accepts_the_phoenix_subprotocol_and_bearer_token():
    class TokenSocket(Socket):
        channels: ClassVar = {"room:*": Room}

        def connect(self, params, socket, connect_info):
            report(("token", connect_info.get("auth_token")))
            return Ok(socket)

    token = "c2VjcmV0"  # base64url of "secret"
    async with serving(TokenSocket) as url, connected(
        url, subprotocols=["phoenix", f"base64url.bearer.phx.{token}"]
    ) as client:
        assert client.ws.subprotocol == "phoenix"
        await assert_receive(("token", "secret"), timeout=2)


async def test_transport_ignores_messages_for_an_earlier_join(caplog):
    with caplog.at_level(logging.WARNING):
        async with serving() as url, connected(url) as client:
            join_ref = await client.join("room:lobby")
            await client.expect(event="phx_reply")
            stale = await client.push("room:lobby", "ping", join_ref="stale")
            fresh = await client.push("room:lobby", "ping", join_ref=join_ref)
            await client.expect(ref=fresh)
            assert not [f for f in client.unread if f[1] == stale]


async def test_transport_killed_closes_the_connection_at_once_with_1011():
    async with serving() as url, connected(url) as client:
        await client.join("room:a")
        await client.expect(topic="room:a", event="phx_reply")
        transport = next(
            pid for pid in beamish.processes()
            if "SocketTransport" in beamish.process_info(pid).initial_call
        )
        started = time.monotonic()
        beamish.exit(transport, "kill")
        assert await client.closed() == 1011  # no frame from the client was needed
        assert time.monotonic() - started < 1.0


# -- Phoenix's behaviour, item by item (lib/phoenix/socket.ex, channel/server.ex) ----------------


async def test_transport_leave_of_a_topic_not_joined_is_answered_ok_and_not_logged(caplog):
    # phoenix.js leaves after a refused join; Phoenix answers ok, with the join_ref it got
    with caplog.at_level(logging.WARNING, logger="beamish"):
        async with serving() as url, connected(url) as client:
            join_ref = await client.join("room:lobby", {"refuse": "no"})
            assert (await client.expect(ref=join_ref))[4]["status"] == "error"
            ref = await client.push("room:lobby", "phx_leave", join_ref=join_ref)
            assert await client.expect(ref=ref) == [
                join_ref, ref, "room:lobby", "phx_reply", ok()
            ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_transport_unmatched_topic_is_logged_clipped_and_only_for_a_join(caplog):
    topic = "nowhere:" + "x" * 500_000
    with caplog.at_level(logging.DEBUG, logger="beamish"):
        async with serving() as url, connected(url, max_size=None) as client:
            ref = await client.join(topic)
            assert (await client.expect(ref=ref))[4] == {
                "status": "error", "response": {"reason": "unmatched topic"}
            }
            ref = await client.push(topic, "ping")  # Phoenix answers it without a warning
            assert (await client.expect(ref=ref))[4]["response"] == {"reason": "unmatched topic"}
    unmatched = [r.getMessage() for r in caplog.records
                 if "unmatched" in r.getMessage() and r.levelno >= logging.WARNING]
    assert len(unmatched) == 1, unmatched  # the join, as Phoenix warns of it
    assert len(unmatched[0]) < 500 and "…(500008 bytes)" in unmatched[0], unmatched[0][:600]
    assert sum(len(r.getMessage()) for r in caplog.records) < 5_000


class NewsRoom(Channel):
    """Subscribes to a second topic; what is broadcast there is its business."""

    def join(self, topic, payload, socket):
        PubSub.subscribe(socket.pubsub, "headlines")
        return Ok(socket)

    def handle_info(self, message, socket):
        report(("info", message))
        match message:
            case beamish.web.Broadcast("headlines", "headline", {"title": title}):
                self.push(socket, "news", {"title": title.upper()})
        return NoReply(socket)


class NewsSocket(Socket):
    channels: ClassVar = {"news:*": NewsRoom}


async def test_transport_broadcast_on_another_subscribed_topic_reaches_handle_info():
    async with serving(NewsSocket) as url, connected(url) as client:
        join_ref = await client.join("news:today")
        await client.expect(event="phx_reply")
        broadcast("ps", "headlines", "headline", {"title": "calm seas"})
        message = await assert_receive(("info", beamish.ANY), timeout=2)
        assert message[1] == beamish.web.Broadcast("headlines", "headline", {"title": "calm seas"})
        assert await client.expect(event="news") == [
            join_ref, None, "news:today", "news", {"title": "CALM SEAS"}
        ]
        ping = await client.push("phoenix", "heartbeat")
        await client.expect(topic="phoenix", ref=ping)  # everything before it has arrived
        assert not [f for f in client.unread if f[3] == "headline"]  # never pushed raw


async def test_transport_error_handler_answers_a_refused_connect():
    from starlette.responses import PlainTextResponse

    def too_many(connect_info, reason):
        report(("refused", reason))
        return PlainTextResponse("slow down", status_code=429, headers={"retry-after": "5"})

    class LimitedSocket(UserSocket, error_handler=too_many):
        def connect(self, params, socket, connect_info):
            if params.get("reject") == "rate":
                return ("error", "rate_limited")
            if params.get("reject") == "plain":
                return "error"
            return Ok(socket.assign(user_id=None))

    async with serving(LimitedSocket) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connected(url, "vsn=2.0.0&reject=rate"):
                pass
        response = refused.value.response
        assert (response.status_code, response.body) == (429, b"slow down")
        assert response.headers["retry-after"] == "5"
        await assert_receive(("refused", "rate_limited"), timeout=2)
        with pytest.raises(InvalidStatus) as refused:  # no reason: the handler is not asked
            async with connected(url, "vsn=2.0.0&reject=plain"):
                pass
        assert refused.value.response.status_code == 403
        async with connected(url) as client:  # accepted connections are untouched
            ping = await client.push("phoenix", "heartbeat")
            assert (await client.expect(ref=ping))[4] == ok()


async def test_transport_connect_info_trace_context_and_websocket_headers():
    class InfoSocket(Socket):
        channels: ClassVar = {"room:*": Room}

        def connect(self, params, socket, connect_info):
            report(("connect", connect_info))
            return Ok(socket)

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with serving(InfoSocket) as url, connected(
        url, additional_headers={"traceparent": traceparent, "tracestate": "beamish=1"},
    ):
        _, info = await assert_receive(("connect", beamish.ANY), timeout=2)
    assert info["trace_context_headers"] == [
        ("traceparent", traceparent), ("tracestate", "beamish=1")
    ]
    names = [name for name, _ in info["sec_websocket_headers"]]
    assert "sec-websocket-key" in names and "sec-websocket-version" in names
    assert all(name.startswith("sec-websocket-") for name in names)
    assert info["session"] is None  # no session options on this socket


SECRET = "a secret for the tests' session cookies"


async def session_cookie(values):
    """The cookie Starlette's SessionMiddleware writes for ``values``, as a page would set it."""
    import httpx
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def login(request):
        request.session.update(values)
        return PlainTextResponse("in")

    page = Starlette(routes=[Route("/login", login)],
                     middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(page),
                                 base_url="http://testserver") as http:
        return (await http.get("/login")).cookies["session"]


async def test_transport_connect_info_session_needs_the_csrf_token():
    class SessionSocket(Socket, session={"secret_key": SECRET}):
        channels: ClassVar = {"room:*": Room}

        def connect(self, params, socket, connect_info):
            report(("session", connect_info["session"]))
            return Ok(socket)

    cookie = await session_cookie({"user_id": 7, "_csrf_token": "t0ken"})
    forged = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    cases = [
        (cookie, "&_csrf_token=t0ken", {"user_id": 7, "_csrf_token": "t0ken"}),
        (cookie, "", None),  # no token: a page of another site could have opened it
        (cookie, "&_csrf_token=guess", None),
        (forged, "&_csrf_token=t0ken", None),
        (None, "&_csrf_token=t0ken", None),
    ]
    async with serving(SessionSocket) as url:
        for sent, query, expected in cases:
            headers = {"cookie": f"session={sent}"} if sent else {}
            async with connected(url, "vsn=2.0.0" + query, additional_headers=headers):
                assert await assert_receive(("session", beamish.ANY), timeout=2) == (
                    "session", expected
                )


def test_socket_session_option_is_checked():
    with pytest.raises(ValueError, match="secret_key"):
        type("Bad", (Socket,), {}, session={"cookie": "session"})
    with pytest.raises(ValueError, match="unknown key"):
        type("Bad", (Socket,), {}, session={"secret_key": "s", "secret": "t"})
    with pytest.raises(TypeError, match="error_handler"):
        type("Bad", (Socket,), {}, error_handler="429")


async def test_transport_error_handler_that_fails_leaves_a_403_and_says_why(caplog):
    def broken(connect_info, reason):
        if reason == "raise":
            raise RuntimeError("the handler broke")
        return 429  # not a Response

    class BrokenHandlerSocket(UserSocket, error_handler=broken):
        def connect(self, params, socket, connect_info):
            return ("error", params["why"])

    async with serving(BrokenHandlerSocket) as url:
        for why in ("raise", "junk"):
            with pytest.raises(InvalidStatus) as refused:
                async with connected(url, f"vsn=2.0.0&why={why}"):
                    pass
            assert refused.value.response.status_code == 403
    assert "error_handler raised RuntimeError: the handler broke" in caplog.text
    assert "error_handler returned 429; it must return a Starlette Response" in caplog.text


async def test_transport_channel_crash_report_names_the_channel_topic_socket_and_event(caplog):
    async with serving() as url, connected(url, "vsn=2.0.0&user_id=42") as client:
        join_ref = await client.join("room:crashing")
        await client.expect(event="phx_reply")
        await client.push("room:crashing", "boom", join_ref=join_ref)
        await client.expect(event="phx_error")
    [report_] = [r for r in caplog.records if r.name == "beamish.gen_server"]
    heading = report_.getMessage().splitlines()[0]
    assert heading.startswith("Channel Room <0.") and "ChannelServer" not in heading, heading
    assert "on 'room:crashing'" in heading and "UserSocket 'user_sockets:42'" in heading
    assert "event 'boom'" in heading and heading.endswith("terminating"), heading
    assert report_.exc_info[1].args == ("boom",)
