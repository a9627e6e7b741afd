"""An event stream's bounds: a client that does not read is dropped at its queue's limit, and
no stream, however it ends, leaves a subscription behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import socket

import httpx
import pytest

import beamish
from beamish._otp.registry.registry import Registry
from beamish.web import (
    Endpoint,
    EndpointServer,
    EventStream,
    GranianEndpointServer,
    Router,
    SSEEvent,
)
from beamish.web._sse_outbox import Outbox
from tests.web.sse_client import attached, eventually, serving, start, stream


@contextlib.asynccontextmanager
async def reader_that_stops(url, path):
    """A raw client that sends its request, reads the response head, then reads no more.
    Its receive buffer is small, so the server's socket fills soon."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 200")
    try:
        yield sock
    finally:
        sock.close()


async def read_to_the_end(sock):
    """Read what the server sent until it closes the connection; all of it."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 10):
        received += chunk
    return bytes(received)


def live_events():
    return sum(1 for o in gc.get_objects() if type(o) is SSEEvent)


async def flood(topic, size, *, until_gone, total, batch=200):
    """Publish ``total`` events of ``size`` bytes, ``batch`` at a time; after each, sample the
    connection ``until_gone`` (the hub has handled the batch when ``info`` answers). The
    samples (mailbox length, queued events, queued bytes) until it is gone."""
    samples = []
    payload = b"x" * size
    for start_at in range(0, total, batch):
        for _ in range(batch):
            EventStream.publish("news", topic, payload)
        info = await EventStream.info("news")
        mine = [c for c in info.connections if c.pid == until_gone]
        process = beamish.process_info(until_gone)
        if not mine or process is None:
            return samples, start_at + batch
        samples.append((process.message_queue_len, mine[0].queued_events, mine[0].queued_bytes,
                        mine[0].peak_events, mine[0].peak_bytes))
    return samples, total


@contextlib.asynccontextmanager
async def served(how):
    """The stream's URL, served by uvicorn directly or through an endpoint's router (on
    uvicorn, or on granian)."""
    if how == "asgi":
        async with serving(EventStream.app("news")) as url:
            yield url, "/"
        return
    router = Router()
    router.mount("/events", EventStream.app("news"), timeout=None)
    kind = GranianEndpointServer if how == "granian" else EndpointServer
    server = kind(Endpoint(router=router), port=0)
    await server.start()
    try:
        yield server.url, "/events"
    finally:
        await server.stop()


@pytest.mark.parametrize("how", ["asgi", "endpoint", "granian"])
async def test_a_reader_that_does_not_read_is_dropped_at_the_queue_bound(how, caplog):
    # The case: 50,000 events of 1 KB to a reader that does not read. Before, its
    # mailbox took 47,235 of them and the server grew by 380 MB; it was never dropped.
    caplog.set_level(logging.WARNING, logger="beamish.sse")
    await start(keepalive=0.5)  # the default limits: 10,000 events, 1 MiB
    async with (
        served(how) as (url, path),
        reader_that_stops(url, f"{path}?topic=t") as sock,
    ):
        (connection,) = await attached()
        samples, published = await flood("t", 1024, until_gone=connection.pid, total=50_000)
        assert published < 50_000, "the stream was never dropped"
        assert samples, "the stream was dropped before anything queued"
        for mailbox, events, nbytes, peak_events, peak_bytes in samples:
            assert mailbox <= 3  # a wake-up, a write done: never the events themselves
            assert events <= 10_000 and nbytes <= 1_048_576
            assert peak_events <= 10_000 and peak_bytes <= 1_048_576
        # the last look before the drop saw it within a batch (200 events) of the bound
        assert samples[-1][4] > 1_048_576 - 200 * 1100
        # the stream is ended: its process is gone, and the server closes the connection
        await eventually(lambda: beamish.process_info(connection.pid) is None,
                         what="the connection's process ending")
        received = await read_to_the_end(sock)
    assert received.count(b"data: ") < published  # it got what fitted, not the rest
    (report,) = [r for r in caplog.records if "does not read fast enough" in r.getMessage()]
    text = report.getMessage()
    assert "event stream 'news'" in text and "(topics 't')" in text
    assert "max_queue_events=10000, max_queue_bytes=1048576" in text
    # it filled up to the bound before it was dropped, not earlier
    waiting = int(re.search(r"(\d+) bytes were waiting", text).group(1))
    assert 1_048_576 - 2048 < waiting <= 1_048_576
    # the memory came back: nothing holds the events but the hub's bounded buffer
    assert live_events() <= 1000


async def test_the_queue_limits_are_set_per_stream(caplog):
    caplog.set_level(logging.WARNING, logger="beamish.sse")
    await start(keepalive=0.5, max_queue_events=20)  # 20 events of 2 KB: far from 1 MiB
    async with (
        serving(EventStream.app("news")) as url,
        reader_that_stops(url, "/?topic=t") as sock,
    ):
        (connection,) = await attached()
        # a batch handed over at once counts whole: keep them below the bound
        samples, published = await flood(
            "t", 2048, until_gone=connection.pid, total=50_000, batch=5
        )
        assert published < 50_000 and samples
        assert max(sample[3] for sample in samples) <= 20
        await eventually(lambda: beamish.process_info(connection.pid) is None,
                         what="the connection's process ending")
        await read_to_the_end(sock)
    (report,) = [r for r in caplog.records if "does not read fast enough" in r.getMessage()]
    assert "max_queue_events=20," in report.getMessage()


async def test_subscriptions_are_released_however_a_stream_ends():
    # The case: 2,000 streams left 4,001 hub subscriptions behind.
    await start(allow=["t:*"], linger=0)
    before = Registry.count("app")
    processes = len(beamish.processes())
    async with serving(EventStream.app("news")) as url, httpx.AsyncClient() as client:
        for round_ in range(20):
            async with contextlib.AsyncExitStack() as streams:
                for way in range(3):
                    await streams.enter_async_context(
                        stream(client, f"{url}/?topic=t:{round_}-{way}&topic=t:shared")
                    )
                connections = await attached(3)
                assert Registry.count("app") == before + 4
                refused = await client.get(f"{url}/?topic=t:{round_}&topic=secret")
                assert refused.status_code == 403
                # one client leaves (the stream context closes it below), one process is
                # killed, one stops with an error
                by_topic = {c.topics[0].rsplit("-", 1)[1]: c.pid for c in connections}
                beamish.exit(by_topic["1"], "kill")
                beamish.exit(by_topic["2"], ("shutdown", "some_error"))
            await eventually(lambda: _released(before), what="every subscription's release")
            assert (await EventStream.info("news")).topics == ()
    await eventually(lambda: len(beamish.processes()) == processes,
                     what="every connection's process ending")


async def _released(before):
    info = await EventStream.info("news")
    return not info.connections and Registry.count("app") == before


async def test_a_topic_is_released_after_its_linger(virtual_clock):
    await start(allow=["t:*", "always"], linger=30)
    subscribed = Registry.count("app")  # the exact topic "always" is followed from the start
    assert (await EventStream.info("news")).topics == ("always",)

    async def connection():
        outbox = Outbox(lambda: None, max_events=10, max_bytes=1000)
        await beamish.GenServer.call("beamish.sse:news", ("attach", ("t:1",), None, outbox))

    pid = beamish.spawn(connection)
    assert await beamish.wait_exit(pid) == "normal"
    assert (await EventStream.info("news")).topics == ("always", "t:1")
    assert Registry.count("app") == subscribed + 1
    await virtual_clock.advance(29)
    assert (await EventStream.info("news")).topics == ("always", "t:1")
    await virtual_clock.advance(2)
    assert (await EventStream.info("news")).topics == ("always",)
    assert Registry.count("app") == subscribed


@pytest.mark.parametrize("option, value", [
    ("max_queue_bytes", 0), ("max_queue_events", 1.5), ("keepalive", 0), ("linger", -1),
    ("buffer_size", True), ("max_topics", float("inf")),
])
def test_limits_are_checked_when_configured(option, value):
    with pytest.raises(ValueError, match=f"an EventStream's {option} is"):
        EventStream.child_spec({"name": "n", "pubsub": "p", "allow": ["t"], option: value})
