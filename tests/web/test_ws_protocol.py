"""beamish's WebSocket protocol: broadcasts framed once and written straight to each socket.

The endpoint is served by ``EndpointServer`` (what ``beamish run`` uses); the clients are
real ``websockets`` connections speaking Phoenix's protocol. ``write_frame`` is wrapped to
count what goes the pre-framed way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from beamish import Application, Ok, Reply, Supervisor
from beamish.pubsub import PubSub
from beamish.web import Channel, Endpoint, EndpointServer, Socket, broadcast
from beamish.web._ws_protocol import (
    IDLE_WATCHED,
    FramedWebSocketProtocol,
    _between_frames,
    _Flag,
    _Inbox,
    frame_of,
)


class Room(Channel):
    def join(self, topic, payload, socket):
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        broadcast("ws.ps", socket.topic, "said", payload)
        return Reply("ok", socket)


class RoomSocket(Socket):
    channels = {"room:*": Room}  # noqa: RUF012


class RoomApp(Application):
    async def start(self, start_type, args):
        return await Supervisor.start_link([(PubSub, {"name": "ws.ps"})])


@pytest.fixture
def frames(monkeypatch):
    """What went the pre-framed way, frame by frame (and whether it was written)."""
    written: list[tuple[bytes, bool]] = []
    original = FramedWebSocketProtocol.write_frame

    def counting(self, frame):
        done = original(self, frame)
        written.append((frame, done))
        return done

    monkeypatch.setattr(FramedWebSocketProtocol, "write_frame", counting)
    return written


@pytest.fixture
def seen(monkeypatch):
    """Each connection's protocol, as it writes a frame the pre-framed way."""
    protocols: list[FramedWebSocketProtocol] = []
    original = FramedWebSocketProtocol.write_frame

    def noting(self, frame):
        protocols.append(self)
        return original(self, frame)

    monkeypatch.setattr(FramedWebSocketProtocol, "write_frame", noting)
    return protocols


@contextlib.asynccontextmanager
async def serving(**options: Any):
    endpoint = Endpoint(sockets={"/socket": RoomSocket}, pubsub="ws.ps", application=RoomApp,
                        **options)
    server = EndpointServer(endpoint, port=0, graceful_timeout=2)
    await server.start()
    try:
        yield server.url.replace("http", "ws") + "/socket/websocket?vsn=2.0.0"
    finally:
        await server.stop()


async def joined(url: str, topic: str, **options: Any):
    ws = await connect(url, **options)
    await ws.send(orjson.dumps(["1", "1", topic, "phx_join", {}]).decode())
    reply = orjson.loads(await ws.recv())
    assert reply[3:] == ["phx_reply", {"status": "ok", "response": {}}]
    return ws


def parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError(f"{frame[:20]!r}... is not one whole frame")


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65_535, 65_536, 200_000])
def test_frame_of_builds_the_frame_websockets_would(size):
    text = "é" * (size // 2) + "x" * (size % 2)
    frame = parse(frame_of(text))
    assert (frame.opcode, frame.fin, frame.data.decode()) == (Opcode.TEXT, True, text)
    binary = parse(frame_of(b"\x00\xff" * (size // 2)))
    assert (binary.opcode, binary.data) == (Opcode.BINARY, b"\x00\xff" * (size // 2))


async def test_a_broadcast_is_framed_once_and_written_to_every_socket(frames):
    async with serving() as url:
        clients = [await joined(url, "room:a") for _ in range(3)]
        frames.clear()  # the joins' replies went the same way; count the broadcast alone
        await clients[0].send(orjson.dumps(["1", "2", "room:a", "say", {"n": 1}]).decode())
        for ws in clients:
            got = orjson.loads(await ws.recv())
            if got[3] == "phx_reply":  # the sender's own reply may come first
                got = orjson.loads(await ws.recv())
            assert got == [None, None, "room:a", "said", {"n": 1}]
        said = [(frame, done) for frame, done in frames if b'"said"' in frame]
        assert len(said) == 3 and all(done for _, done in said)
        assert said[0][0] is said[1][0] is said[2][0]  # one frame object, built once
        for ws in clients:
            await ws.close()


async def test_compression_is_declined_by_default_and_served_when_asked(frames):
    offer = {"compression": None, "extensions": [ClientPerMessageDeflateFactory()]}
    async with serving() as url:
        ws = await joined(url, "room:b", **offer)
        assert ws.protocol.extensions == []  # Phoenix's default: no permessage-deflate
        await ws.close()
    frames.clear()
    async with serving(compress=True) as url:
        ws = await joined(url, "room:c", **offer)
        assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
        await ws.send(orjson.dumps(["1", "2", "room:c", "say", {"n": 2}]).decode())
        replies = {orjson.loads(await ws.recv())[3] for _ in range(2)}
        assert replies == {"phx_reply", "said"}  # compressed, through the ASGI send
        assert frames == []  # a compressed connection is never written pre-framed
        await ws.close()


async def test_a_reader_that_stops_is_written_through_send_and_then_dropped(frames):
    """Past the connection's high-water mark, frames wait in the transport's process (the
    ASGI send's backpressure) up to max_queue_bytes, as on any server, then 1013."""

    class Small(RoomSocket, max_queue_bytes=200_000):
        pass

    endpoint_socket = {"/socket": Small}
    server = EndpointServer(
        Endpoint(sockets=endpoint_socket, pubsub="ws.ps", application=RoomApp), port=0,
        graceful_timeout=2,
    )
    await server.start()
    try:
        url = server.url.replace("http", "ws") + "/socket/websocket?vsn=2.0.0"
        ws = await joined(url, "room:d", max_queue=1)
        ws.transport.pause_reading()  # stop reading: the server's buffers fill
        blob = "x" * 50_000
        for _ in range(200):
            broadcast("ws.ps", "room:d", "blob", {"b": blob})
        ws.transport.resume_reading()
        codes = set()
        with contextlib.suppress(Exception):
            while True:
                await ws.recv()
        codes.add(ws.close_code)
        assert codes == {1013}
        assert any(not done for _, done in frames)  # write_frame declined once it was full
    finally:
        await server.stop()


async def test_a_connection_lets_go_of_its_handshake_once_accepted(seen):
    """uvicorn keeps the handshake's request and response (their parsed headers) for the
    connection's life; beamish's protocol drops them once the accept is sent."""
    async with serving() as url:
        ws = await joined(url, "room:e")  # its reply is written pre-framed: `seen` has it
        protocol = seen[0]
        assert protocol.handshake_complete
        assert (protocol.request, protocol.response) == (None, None)
        assert isinstance(protocol.queue, _Inbox) and isinstance(protocol.writable, _Flag)
        await ws.send(orjson.dumps(["1", "2", "room:e", "say", {"n": 3}]).decode())
        assert {orjson.loads(await ws.recv())[3] for _ in range(2)} == {"phx_reply", "said"}
        await ws.close()


async def test_the_inbox_hands_over_in_order_and_wakes_its_reader():
    inbox = _Inbox()
    assert inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()  # nothing yet: it waits
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await reader == "a"
    assert (inbox.qsize(), await inbox.get(), inbox.empty()) == (1, "b", True)
    cancelled = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    inbox.put_nowait("c")  # a cancelled reader took nothing
    assert await inbox.get() == "c"


async def test_the_flag_wakes_every_waiter_when_set_and_blocks_when_cleared():
    flag = _Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    gone = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert gone.cancelled() and flag._waiters is None
    assert await flag.wait() is True  # set: at once
    flag.clear()
    late = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0.01)
    assert not late.done()
    flag.set()
    assert await late is True


async def test_a_channels_socket_gets_no_keepalive_pings_a_plain_websocket_does(monkeypatch):
    """A Channels socket's liveness is the client's heartbeat and the idle timeout (as on
    Cowboy, which sends no pings); a plain WebSocket route keeps uvicorn's pings."""
    from tests.web.endpoint_app import make_endpoint

    started: list[FramedWebSocketProtocol] = []
    original = FramedWebSocketProtocol.start_keepalive

    def noting(self):
        original(self)
        started.append(self)

    monkeypatch.setattr(FramedWebSocketProtocol, "start_keepalive", noting)
    async with serving() as url:
        ws = await joined(url, "room:f")
        [channels] = started
        assert channels.ping_timer is None
        assert channels.scope["extensions"][IDLE_WATCHED] is True
        assert channels.scope["headers"] == []  # read at the connect; not kept
        await ws.close()
    server = EndpointServer(make_endpoint(), port=0, graceful_timeout=2)
    await server.start()
    try:
        async with connect(server.url.replace("http", "ws") + "/ws/echo") as plain:
            assert (await plain.recv()).startswith("hello from")
            [_, websocket] = started
            assert websocket.ping_timer is not None  # uvicorn's keep-alive, as before
            assert IDLE_WATCHED not in websocket.scope["extensions"]
            assert websocket.scope["headers"]  # a plain route's scope is left whole
    finally:
        await server.stop()


async def test_once_accepted_websockets_parser_keeps_no_handshake(seen):
    async with serving() as url:
        ws = await joined(url, "room:g")
        parser = seen[0].conn.parser
        assert parser.gi_code.co_qualname == "Protocol.parse"  # not ServerProtocol.parse
        await ws.send(orjson.dumps(["1", "2", "room:g", "say", {"n": 4}]).decode())
        assert {orjson.loads(await ws.recv())[3] for _ in range(2)} == {"phx_reply", "said"}
        await ws.close()


def test_the_parser_is_replaced_only_between_two_frames():
    """``_between_frames`` tells a parser waiting for a frame's first byte from one that has
    taken part of a frame from its reader (which a new parser would lose)."""
    from websockets.server import ServerProtocol

    conn = ServerProtocol()
    conn.receive_data(
        b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    [request] = conn.events_received()
    conn.send_response(conn.accept(request))
    assert _between_frames(conn.parser)
    frame = Frame(Opcode.TEXT, b"hello").serialize(mask=True)
    conn.receive_data(frame[:2])  # its first two bytes, taken: nothing left unread
    assert not conn.reader.buffer and not _between_frames(conn.parser)
    conn.receive_data(frame[2:])
    assert [event.data for event in conn.events_received()] == [b"hello"]
    assert _between_frames(conn.parser)


@pytest.mark.parametrize("split", [False, True], ids=["whole frame", "frame split"])
async def test_a_frame_sent_with_the_handshake_is_not_lost(split):
    """A client that sends its first frame in the same write as its handshake (not waiting
    for the 101), even one cut in two around the answer, gets it answered: uvicorn handed
    the WebSocket protocol the request's head alone, and the frame was lost."""
    async with serving() as url:
        host, _, rest = url.removeprefix("ws://").partition("/")
        address, _, port = host.partition(":")
        reader, writer = await asyncio.open_connection(address, int(port))
        request = (
            f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        join = Frame(Opcode.TEXT, orjson.dumps(["1", "1", "room:h", "phx_join", {}]))
        frame = join.serialize(mask=True)
        cut = 2 if split else len(frame)
        writer.write(request + frame[:cut])
        if split:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(frame[cut:])  # the rest, once the 101 is in
        else:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        first, size = await asyncio.wait_for(reader.readexactly(2), 5)
        assert first == 0x81 and size < 126  # a short text frame
        reply = orjson.loads(await reader.readexactly(size))
        assert reply[3:] == ["phx_reply", {"status": "ok", "response": {}}]
        writer.close()
