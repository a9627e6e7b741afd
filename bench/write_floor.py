"""The floor under a broadcast: one ``transport.write`` of a small pre-built frame to each of
N loopback TCP sockets, on uvloop, with nothing of beamish in the way.

    .venv/bin/python bench/write_floor.py [--sockets 5000] [--rounds 5]

A child process holds the N client sockets and reads them with a selector; the parent writes
a 34-byte WebSocket text frame to every connection, ``--rounds`` times, 0.5 s apart, and
prints the wall and CPU time (its thread's user + system) per socket of each loop. What it
shows is the kernel's share of a broadcast (a ``send()`` per socket, which on loopback also
runs the receiver's side of TCP): what no change in Python can take away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import selectors
import socket
import statistics
import time

import uvloop

FRAME = b"\x81\x20" + b"x" * 32


def read_all(port: int, count: int, seconds: float) -> None:
    """The child: ``count`` connections, read until ``seconds`` have passed."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in selector.select(0.5):
            with contextlib.suppress(BlockingIOError):
                key.fileobj.recv(65536)  # type: ignore[union-attr]
    os._exit(0)


async def main(count: int, rounds: int) -> None:
    transports: list[asyncio.Transport] = []

    class Kept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)  # type: ignore[arg-type]

    server = await asyncio.get_running_loop().create_server(Kept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = os.fork()
    if child == 0:
        read_all(port, count, 10 + rounds)
    while len(transports) < count:
        await asyncio.sleep(0.05)
    walls, cpus = [], []
    for _ in range(rounds):
        cpu, wall = time.thread_time(), time.perf_counter()
        for transport in transports:
            transport.write(FRAME)
        walls.append((time.perf_counter() - wall) / count)
        cpus.append((time.thread_time() - cpu) / count)
        await asyncio.sleep(0.5)
    os.kill(child, 9)
    os.waitpid(child, 0)
    print(f"{count} sockets, {rounds} loops: per socket, wall {statistics.median(walls) * 1e6:.2f}"
          f" µs ({min(walls) * 1e6:.2f} to {max(walls) * 1e6:.2f}), CPU "
          f"{statistics.median(cpus) * 1e6:.2f} µs ({min(cpus) * 1e6:.2f} to "
          f"{max(cpus) * 1e6:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000,
                        help="connections (each end is in its own process: at most ~19,000 "
                        "with 20,000 open files per process)")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    uvloop.run(main(options.sockets, options.rounds))
