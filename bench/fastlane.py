"""Fastlane broadcast cost: one channel broadcast to N sockets, in-process.

Usage::

    .venv/bin/python bench/fastlane.py              # N = 10,000, 20 broadcasts
    .venv/bin/python bench/fastlane.py --sockets 1000 --rounds 5
    .venv/bin/python bench/fastlane.py --framed     # as on beamish's WebSocket protocol

No network: each connection's ASGI ``send`` is a coroutine that counts what it is given and
never waits, so the figures are the cost beamish adds on top of the server's own write (the
same for every framework). With ``--framed`` each connection's scope lends a
``write_frame`` instead (``beamish.frames``, what beamish's own WebSocket protocol gives,
``_ws_protocol.py``) that counts the pre-built frames it is given. It prints the memory
beamish keeps per connection (the transport process, its joined channel server, the
subscription; measured with tracemalloc, the server's own connection objects excluded),
then three rows:

- loop over ``await send(...)``: what a plain Starlette endpoint does to broadcast (its
  ``await websocket.send_text(...)`` in a loop, without Starlette's checks): the floor;
- beamish, dispatch: ``broadcast(pubsub, topic, event, payload)`` returns: the subscribers
  read from the registry, the frame encoded once, one ``Push`` sent to each transport;
- beamish, delivered: until the last of the N transport processes has written its frame
  (dispatch included): the number a client-side p99 would see.

Each connection is a real ``SocketTransport`` process with a real joined channel server, as
``serve_socket`` makes them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from typing import Any

import beamish
from beamish import Ok
from beamish.pubsub import PubSub
from beamish.web._channel import Channel
from beamish.web._fastlane import broadcast
from beamish.web._serializer import V2_JSON
from beamish.web._socket import Socket
from beamish.web._transport import SocketTransport, _In
from beamish.web._ws_protocol import frame_of

TOPIC = "room:bench"
PAYLOAD = {"body": "hello, everyone", "user": "ada", "n": 42}


class BenchChannel(Channel):
    def join(self, topic: str, payload: Any, socket: Any) -> Any:
        return Ok(socket)


class BenchSocket(Socket):
    channels = {"room:*": BenchChannel}  # noqa: RUF012


class Counter:
    """Counts the frames written to all connections; wakes the bench at a target."""

    def __init__(self) -> None:
        self.frames = 0
        self.target = 0
        self.done: asyncio.Future[None] | None = None

    def sender(self) -> Any:
        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                self.frames += 1
                if self.frames == self.target and self.done is not None:
                    self.done.set_result(None)

        return send

    def frame_writer(self) -> Any:
        def write_frame(frame: bytes) -> bool:
            self.frames += 1
            if self.frames == self.target and self.done is not None:
                self.done.set_result(None)
            return True

        return write_frame


async def connect_all(counter: Counter, n: int, framed: bool) -> list[Any]:
    sends = []
    for _ in range(n):
        send = counter.sender()
        scope: dict[str, Any] = {"type": "websocket"}
        if framed:
            write_frame = counter.frame_writer()
            scope["extensions"] = {"beamish.frames": write_frame}
            sends.append(write_frame)
        else:
            sends.append(send)
        transport = SocketTransport(
            BenchSocket, BenchSocket.options, "ps", {}, {}, V2_JSON, send, scope
        )
        pid = beamish.spawn(transport)
        beamish.send(pid, _In(f'["1","1","{TOPIC}","phx_join",{{}}]'))
    while len(PubSub.subscribers("ps", TOPIC)) < n or counter.frames < n:  # joined, replied
        await asyncio.sleep(0.01)
    return sends


async def main(n: int, rounds: int, framed: bool) -> None:
    await PubSub.start_link("ps")
    counter = Counter()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sends = await connect_all(counter, n, framed)
    await asyncio.sleep(0.1)
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    loop = asyncio.get_running_loop()
    frame = V2_JSON.encode_broadcast(TOPIC, "msg", PAYLOAD)
    framed_bytes = frame_of(frame)

    floor, dispatch, delivered = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        if framed:
            for write in sends:
                write(framed_bytes)
        else:
            for send in sends:
                await send({"type": "websocket.send", "text": frame})
        floor.append(time.perf_counter() - started)

        counter.target = counter.frames + n
        counter.done = loop.create_future()
        started = time.perf_counter()
        broadcast("ps", TOPIC, "msg", PAYLOAD)
        dispatch.append(time.perf_counter() - started)
        await counter.done
        delivered.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)

    print(f"{n:,} sockets: {kept / n:,.0f} bytes per connection (transport + channel)")
    print(f"median of {rounds} broadcasts (no network)")
    for name, times in (
        ("loop over write_frame(...) (the floor)" if framed
         else "loop over await send(...) (Starlette's way)", floor),
        ("beamish fastlane, broadcast() returns", dispatch),
        ("beamish fastlane, last frame written", delivered),
    ):
        median = statistics.median(times)
        print(f"  {name:46} {median * 1e3:8.2f} ms  {median / n * 1e6:6.2f} µs/socket")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--framed", action="store_true",
                        help="connections lend write_frame, as on beamish's WebSocket protocol")
    args = parser.parse_args()
    beamish.run(main, args.sockets, args.rounds, args.framed, long_schedule=None)
