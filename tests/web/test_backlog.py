"""What one connection may have queued at its channels: bounded, read no faster than it is
handled, dropped when the connection goes, and a client that keeps it full is closed.

The exact bounds are checked on a connection the test plays the client of without a
network (``Connection``: frames wait in a list until the server reads them, so what the
server read is counted exactly); the close code, the log line and LongPoll over a real server
and through the endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Any, ClassVar

import orjson
import pytest
import uvicorn
import websockets
from websockets.exceptions import ConnectionClosed

import beamish
from beamish import ANY, Down, NoReply, Ok
from beamish.pubsub import PubSub
from beamish.testing import assert_receive, refute_receive, start_supervised, wait_until_idle
from beamish.web import Channel, Socket, serve_socket
from tests.web.test_longpoll import Poller
from tests.web.test_longpoll import serving as serving_longpoll


def report(message: Any) -> None:
    if beamish.whereis("test") is not None:
        beamish.send("test", message)


class Gate:
    """Holds the channels' first message until the test opens it (one per test's loop)."""

    event: ClassVar[asyncio.Event | None] = None

    @classmethod
    def close(cls) -> None:
        cls.event = asyncio.Event()

    @classmethod
    def open(cls) -> None:
        assert cls.event is not None
        cls.event.set()


class SlowRoom(Channel):
    """A channel whose first message waits at the gate: everything behind it queues."""

    def join(self, topic, payload, socket):
        if beamish.whereis(topic) is None:
            beamish.register(topic)
        return Ok(socket)

    async def handle_in(self, event, payload, socket):
        report(("handling", socket.topic, payload["n"]))
        if payload.get("block"):
            assert Gate.event is not None
            await Gate.event.wait()
        return NoReply(socket)


class SmallBacklog(Socket, max_backlog=10):
    channels: ClassVar = {"room:*": SlowRoom}


class ByteBacklog(Socket, max_backlog_bytes=4_000):
    channels: ClassVar = {"room:*": SlowRoom}


class Roomy(Socket):
    channels: ClassVar = {"room:*": SlowRoom}


_refs = itertools.count(100)


def frame(topic: str, event: str, payload: dict, join_ref: str | None = "1") -> str:
    return orjson.dumps([join_ref, str(next(_refs)), topic, event, payload]).decode()


def joining(topic: str) -> str:
    return orjson.dumps(["1", "1", topic, "phx_join", {}]).decode()


def work(topic: str, n: int, *, block: bool = False, pad: int = 0, join_ref: str = "1") -> str:
    return frame(topic, "work", {"n": n, "block": block, "pad": "x" * pad}, join_ref)


class Connection:
    """A WebSocket connection without a network: what the client sent waits here until the
    server reads it, and ``read`` counts what it did read."""

    def __init__(self) -> None:
        self.waiting: deque[dict[str, Any]] = deque([{"type": "websocket.connect"}])
        self.read = -1  # the connect event is not a frame
        self.written: list[dict[str, Any]] = []
        self._more: asyncio.Future[None] | None = None

    def client_sends(self, *texts: str) -> None:
        self.waiting.extend({"type": "websocket.receive", "text": t} for t in texts)
        self._wake()

    def client_leaves(self) -> None:
        self.waiting.append({"type": "websocket.disconnect", "code": 1000})
        self._wake()

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while not self.waiting:
            self._more = asyncio.get_running_loop().create_future()
            await self._more
        self.read += 1
        return self.waiting.popleft()

    async def send(self, message: dict[str, Any]) -> None:
        self.written.append(message)

    def serve(self, socket_cls: type[Socket]) -> asyncio.Task[None]:
        scope = {"type": "websocket", "path": "/socket/websocket",
                 "query_string": b"vsn=2.0.0", "headers": [], "subprotocols": []}
        return asyncio.get_running_loop().create_task(
            serve_socket(socket_cls, scope, self.receive, self.send, pubsub="ps")
        )


async def start() -> None:
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))
    Gate.close()


async def joined(conn: Connection, *topics: str) -> list[beamish.Pid]:
    conn.client_sends(*(joining(t) for t in topics))
    deadline = asyncio.get_running_loop().time() + 5
    while any(beamish.whereis(t) is None for t in topics):
        assert asyncio.get_running_loop().time() < deadline, "the joins did not happen"
        await wait_until_idle()
    return [beamish.whereis(t) for t in topics]


def queued(pid: beamish.Pid) -> int:
    return beamish.process_info(pid).message_queue_len


async def handled(topic: str, count: int) -> list[int]:
    return [(await assert_receive(("handling", topic, ANY), timeout=5))[2] for _ in range(count)]


# -- bounded, and read no faster than handled ---------------------------------------------------


async def test_backlog_reader_stops_reading_at_max_backlog_and_loses_nothing():
    await start()
    conn = Connection()
    serving = conn.serve(SmallBacklog)
    [room] = await joined(conn, "room:a")
    conn.client_sends(work("room:a", 0, block=True), *(work("room:a", n) for n in range(1, 100)))
    assert await handled("room:a", 1) == [0]
    await wait_until_idle()
    # one message in handle_in, the rest of what was read queued at the channel: no more
    # than max_backlog (10) was read past what was handled
    assert queued(room) <= 10
    assert conn.read <= 1 + 1 + 10, conn.read  # the join, the one at the gate, the backlog
    Gate.open()
    assert await handled("room:a", 99) == list(range(1, 100))  # all of it, in order
    conn.client_leaves()
    await serving


async def test_backlog_bytes_are_bounded_too():
    await start()
    conn = Connection()
    serving = conn.serve(ByteBacklog)
    [room] = await joined(conn, "room:a")
    conn.client_sends(*(work("room:a", n, block=n == 0, pad=1_000) for n in range(50)))
    await handled("room:a", 1)
    await wait_until_idle()
    assert conn.read <= 1 + 1 + 4, conn.read  # 4,000 bytes are four frames of 1,000 and more
    Gate.open()
    assert await handled("room:a", 49) == list(range(1, 50))
    conn.client_leaves()
    await serving


async def test_backlog_is_one_bound_for_all_the_channels_of_a_connection():
    await start()
    conn = Connection()
    serving = conn.serve(SmallBacklog)
    rooms = await joined(conn, "room:a", "room:b")
    conn.client_sends(*(work(topic, n, block=n == 0) for n in range(50)
                        for topic in ("room:a", "room:b")))
    await handled("room:a", 1)
    await handled("room:b", 1)
    await wait_until_idle()
    assert sum(queued(room) for room in rooms) <= 10
    assert conn.read <= 2 + 2 + 10, conn.read
    Gate.open()
    conn.client_leaves()
    await serving


# -- the connection goes: what it queued goes with it ------------------------------------------


async def test_backlog_of_a_closed_connection_is_dropped_not_handled():
    await start()
    conn = Connection()
    serving = conn.serve(Roomy)
    [room] = await joined(conn, "room:a")
    monitor = beamish.monitor(room)
    conn.client_sends(work("room:a", 0, block=True), *(work("room:a", n) for n in range(1, 5)))
    assert await handled("room:a", 1) == [0]
    conn.client_leaves()
    await serving  # the transport is gone; the channel still waits at the gate
    Gate.open()
    down = await assert_receive(lambda m: type(m) is Down and m.ref == monitor, timeout=5)
    assert down.reason == ("shutdown", "closed")
    await refute_receive(("handling", "room:a", ANY), timeout=0)  # 1 to 4 were dropped


# -- a client that keeps it full is closed -----------------------------------------------------


class StuckSocket(Socket, max_backlog=10, backlog_timeout=0.2):
    channels: ClassVar = {"room:*": SlowRoom}

    def connect(self, params, socket, connect_info):
        return Ok(socket)

    def id(self, socket):
        return "user_socket:7"


async def test_backlog_full_for_backlog_timeout_closes_the_client_with_1008(caplog):
    await start()

    async def app(scope, receive, send):
        await serve_socket(StuckSocket, scope, receive, send, pubsub="ps")

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None,
                            log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
        async with websockets.connect(url, compression=None) as ws:
            await ws.send(joining("room:stuck"))
            assert orjson.loads(await ws.recv())[3] == "phx_reply"
            room = beamish.whereis("room:stuck")
            await ws.send(work("room:stuck", 0, block=True))
            await handled("room:stuck", 1)
            for n in range(1, 200):
                await ws.send(work("room:stuck", n, pad=500))
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1008, "channel backlog full")
            assert queued(room) <= 10 + 1  # and the transport's Down
        monitor = beamish.monitor(room)
        Gate.open()
        await assert_receive(lambda m: type(m) is Down and m.ref == monitor, timeout=5)
        await refute_receive(("handling", "room:stuck", ANY), timeout=0)  # dropped
    finally:
        server.should_exit = True
        await task
    [line] = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and "did not keep up" in r.getMessage()]
    assert "StuckSocket" in line and "'user_socket:7'" in line, line
    assert "topic 'room:stuck' (SlowRoom" in line and "max_backlog=10" in line, line


async def test_backlog_of_a_longpoll_session_is_bounded_by_closing_it(caplog):
    class StuckPoll(Socket, longpoll=True, longpoll_window=1.0, max_backlog=10,
                    backlog_timeout=0.2):
        channels: ClassVar = {"room:*": SlowRoom}

    Gate.close()
    beamish.register("test")
    async with serving_longpoll(StuckPoll) as (endpoint, client):
        poller = Poller(client)
        assert (await poller.open())["status"] == 410
        join_ref = await poller.join("room:lp")
        await poller.expect(event="phx_reply")
        room = beamish.whereis("room:lp")
        await poller.post(work("room:lp", 0, block=True, join_ref=join_ref))
        await handled("room:lp", 1)
        lines = [work("room:lp", n, join_ref=join_ref) for n in range(1, 40)]
        assert (await poller.post(*lines))["status"] == 200
        for _ in range(20):  # each poll answers within the window (1 s)
            if (await poller.poll())["status"] == 410:
                break  # the session ended
        else:
            raise AssertionError("the LongPoll session was not closed")
        monitor = beamish.monitor(room)
        Gate.open()
        await assert_receive(lambda m: type(m) is Down and m.ref == monitor, timeout=5)
        await refute_receive(("handling", "room:lp", ANY), timeout=0)
    assert "did not keep up" in caplog.text


# -- the ledger itself -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


async def test_backlog_ledger_counts_what_is_read_and_gives_back_what_is_handled():
    from beamish.web._backlog import Backlog

    clock = Clock()
    backlog = Backlog(4, 1_000, clock)
    a, b = backlog.share("room:a"), backlog.share("room:b")  # two joined channels
    assert not backlog.read(10)  # a join, handled by the transport
    backlog.release(10)
    for _ in range(3):
        assert not backlog.read(10)
        a.give(10, read=True)
    clock.t = 5.0
    assert backlog.read(10)  # the fourth: at the limit, the reader waits
    b.give(10, read=True)
    assert (backlog.count, backlog.bytes, backlog.over_since) == (4, 40, 5.0)
    waiting = backlog.wait()
    a.take(10)
    assert not waiting.done() and backlog.over_since == 5.0  # 3 is above half the limit
    a.forget()  # channel a stopped with two left: they are given back
    assert waiting.done() and (backlog.count, backlog.bytes, backlog.over_since) == (1, 10, None)
    a.take(10)  # a late take from the forgotten channel changes nothing
    assert (backlog.count, backlog.shares, b.count) == (1, [b], 1)
    b.give(995, read=False)  # a LongPoll frame: counted when handed on
    assert backlog.over_since == 5.0 and backlog.bytes == 1_005
    waiting = backlog.wait()
    backlog.close()
    assert waiting.done() and backlog.closed
