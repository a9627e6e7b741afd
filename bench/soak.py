"""Soak: a real node under connection churn, slow consumers and floods. Does each bound hold?

Usage::

    .venv/bin/python bench/soak.py              # full run (a few minutes)
    .venv/bin/python bench/soak.py --quick      # scaled down (about a minute)
    .venv/bin/python bench/soak.py --markdown   # the table as Markdown
    .venv/bin/python bench/soak.py --only churn,flood-topic
    .venv/bin/python bench/soak.py --only churn --size churn=20000

Progress goes to stderr; the report (a header, then the table) to stdout. For each case the
script starts a fresh node, ``beamish run soak:Soak`` (this module is also the application
it runs) on a free port, runs the case against it from this process, and stops it; every
case has a deadline, so the script always ends. The exit status is 0 when every bound held,
1 if one did not.

The node: a PubSub, an ``EventStream`` on ``/events`` (topic ``soak:sse``), a socket on
``/socket`` whose channels are ``room:*`` (accepts every join, ignores pushes) and ``slow:*``
(each push takes ``SLOW`` seconds to handle), and three routes of its own: ``POST
/broadcast`` and ``POST /publish`` (``n`` events of ``size`` bytes to a topic, to a channel
topic or to the event stream) and ``GET /stats`` (the node's process count, the longest
mailbox and the sum of all mailboxes).

The cases, each measured before, at its peak (sampled every 0.1 s) and after (once the
node has settled, or after a deadline): the server's resident set size, its process count
and its open file descriptors; and the bound each case checks:

- **churn**: connect, join, leave and disconnect, over and over, with the stock protocol
  (the ``websockets`` client speaking Phoenix V2 JSON), 16 at a time. Bound: nothing is
  left behind (processes and descriptors back where they were, resident memory within
  ``CHURN_RSS`` of it) and no cycle failed.
- **slow-ws**: a WebSocket joins a topic, then stops reading (its receive buffer made small)
  while 1 KB broadcasts flow to it. Bound: the server closes it at its queue bound
  (``max_queue_bytes``; close code 1013) and its memory peak stays under ``PEAK_RSS``.
- **slow-sse**: the same with a Server-Sent Events reader that stops reading. Bound: as for
  the WebSocket, the stream is closed at its queue bound.
- **flood-slow**: one client pushes 10 KB frames as fast as it can at a channel whose
  ``handle_in`` takes ``SLOW`` seconds, for at most ``FLOOD_SECONDS``, then leaves. Bound:
  the node's memory peak stays under ``PEAK_RSS``, and no backlog outlives the client by
  more than ``DRAIN`` seconds (the client is slowed or closed instead).
- **flood-topic**: 20 frames whose topic (never joined) is 500 KB. Bound: the log written
  meanwhile stays under ``LOG_BYTES`` (client-controlled text is truncated in log lines).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import http.client
import importlib.metadata
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from _report import cpu_model, load_average
from _report import report as report_table
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

import beamish
from beamish import Application, NoReply, Ok, Pid, Supervisor
from beamish.pubsub import PubSub
from beamish.web import Channel, Endpoint, EventStream, Router, Socket, SocketState, broadcast

HERE = os.path.dirname(os.path.abspath(__file__))
PUBSUB = "soak.pubsub"
STREAM = "soak.events"
SSE_TOPIC = "soak:sse"
SLOW = 0.02  # seconds a push to a slow:* channel takes to handle

MB = 1_048_576
CHURN_RSS = 32 * MB  # resident memory churn may leave behind (allocator slack)
PEAK_RSS = 128 * MB  # how far above its start a case may take the node's memory
DRAIN = 30.0  # seconds a backlog may outlive the client (what its socket buffers still held)
FLOOD_SECONDS = 60.0  # how long the flooding client goes on (if the node slows it down)
LOG_BYTES = 256 * 1024  # log written while 20 frames with a 500 KB topic arrive
SETTLE = 20.0  # seconds to wait for the node to come back to its baseline after a case

# -- the node (`beamish run soak:Soak`) ----------------------------------------------------------


class Room(Channel):
    def join(self, topic: str, payload: Any, socket: SocketState) -> Ok:
        return Ok(socket)

    def handle_in(self, event: str, payload: Any, socket: SocketState) -> NoReply:
        return NoReply(socket)


class SlowRoom(Channel):
    def join(self, topic: str, payload: Any, socket: SocketState) -> Ok:
        return Ok(socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> NoReply:
        await asyncio.sleep(SLOW)  # slow work that does not block the loop
        return NoReply(socket)


class SoakSocket(Socket, timeout=3600):  # the clients send no heartbeats
    channels = {"room:*": Room, "slow:*": SlowRoom}  # noqa: RUF012


router = Router()


def _flood_params(request: Request) -> tuple[str, int, int]:
    query = request.query_params
    return query["topic"], int(query.get("n", "1")), int(query.get("size", "1000"))


@router.post("/broadcast")
async def flood_channel(request: Request) -> PlainTextResponse:
    topic, n, size = _flood_params(request)
    pad = "x" * size
    for i in range(n):
        broadcast(PUBSUB, topic, "tick", {"i": i, "pad": pad})
        if i % 100 == 99:
            await asyncio.sleep(0)  # a flow, not one burst
    return PlainTextResponse(str(n))


@router.post("/publish")
async def flood_stream(request: Request) -> PlainTextResponse:
    topic, n, size = _flood_params(request)
    pad = "x" * size
    for i in range(n):
        EventStream.publish(STREAM, topic, {"i": i, "pad": pad})
        if i % 100 == 99:
            await asyncio.sleep(0)
    return PlainTextResponse(str(n))


@router.get("/stats")
async def stats(request: Request) -> JSONResponse:
    infos = [info for info in map(beamish.process_info, beamish.processes()) if info is not None]
    longest = max(infos, key=lambda info: info.message_queue_len, default=None)
    return JSONResponse(
        {
            "processes": beamish.statistics().process_count,
            "max_mailbox": longest.message_queue_len if longest is not None else 0,
            "mailboxes": sum(info.message_queue_len for info in infos),
            "longest": (
                f"{longest.pid!r} {longest.initial_call} in {longest.current_function}, "
                f"{longest.status}"
                if longest is not None
                else ""
            ),
        }
    )


def stream_options() -> dict[str, Any]:
    """Only ``SSE_TOPIC`` may be streamed: an ``allow`` list where EventStream has one (deny
    by default); a stream from before it serves the request's ``topic``, which is that."""
    try:
        from beamish.web._sse_config import OPTIONS
    except ImportError:
        return {}
    return {"allow": [SSE_TOPIC]} if "allow" in OPTIONS else {}


router.mount("/events", EventStream.app(STREAM), timeout=None)


class Soak(Application):
    async def start(self, start_type: Any, args: Any) -> Pid:
        return await Supervisor.start_link(
            [
                (PubSub, {"name": PUBSUB}),
                (EventStream, {"name": STREAM, "pubsub": PUBSUB, **stream_options()}),
            ],
            strategy="rest_for_one",
        )


ENDPOINT = Endpoint(router=router, sockets={"/socket": SoakSocket}, pubsub=PUBSUB, application=Soak)

# -- the driver: the node as a subprocess, and what is read of it --------------------------------


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class Sample:
    rss: int = 0
    processes: int = 0
    fds: int = 0
    max_mailbox: int = 0


class Node:
    """``beamish run soak:Soak`` in a subprocess, its log in a file (whose size is read)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="soak-node-", suffix=".log")  # noqa: SIM115
        command = [
            sys.executable,
            "-m",
            "beamish",
            "run",
            "soak:Soak",
            "--app-dir",
            HERE,
            "--port",
            str(self.port),
            "--shutdown-timeout",
            "10",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)

    def __enter__(self) -> Node:
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                self.stats(timeout=1)
                return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the node did not answer: {self.log_tail()}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def log_tail(self, size: int = 2000) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as log:
            log.seek(max(0, os.path.getsize(self.log.name) - size))
            return log.read().decode(errors="replace")

    def log_bytes(self) -> int:
        return os.path.getsize(self.log.name)

    def request(self, method: str, path: str, timeout: float = 60) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path} answered {response.status}: {body[:200]!r}")
            return body
        finally:
            connection.close()

    def stats(self, timeout: float = 5) -> dict[str, Any]:
        stats: dict[str, Any] = json.loads(self.request("GET", "/stats", timeout))
        return stats

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def sample(self) -> Sample:
        fds, rss = self.fds(), self.rss()  # before /stats, whose own connection is a descriptor
        stats = self.stats()
        return Sample(rss, stats["processes"], fds, stats["max_mailbox"])


class Sampler:
    """Samples the node every 0.1 s in a thread, keeping the highest of each figure."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.peak = Sample()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.is_set():
            peak = self.peak
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                peak.rss = max(peak.rss, self.node.rss())
                peak.fds = max(peak.fds, self.node.fds())
                stats = self.node.stats(timeout=2)
                peak.processes = max(peak.processes, stats["processes"])
                peak.max_mailbox = max(peak.max_mailbox, stats["max_mailbox"])
            self.stop.wait(0.1)


async def settle(node: Node, baseline: Sample, timeout: float = SETTLE) -> Sample:
    """The node once its processes and mailboxes are back to ``baseline`` (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        now = await asyncio.to_thread(node.sample)
        back = now.processes <= baseline.processes and now.max_mailbox <= 1
        if back or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.2)


@dataclasses.dataclass
class Outcome:
    case: str
    work: str
    before: Sample
    peak: Sample
    after: Sample
    held: bool
    note: str


# -- raw clients: ones that can stop reading -----------------------------------------------------


def raw_connect(port: int, request: bytes) -> tuple[socket.socket, bytes]:
    """A TCP connection with a small receive buffer; sends ``request``, returns the socket
    and the response head (everything up to the blank line; what came after stays unread)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError(f"the node closed the connection: {head!r}")
        head += chunk
    return sock, head


def ws_frame(text: str) -> bytes:
    """One masked text frame, as a client sends it."""
    data = text.encode()
    mask = os.urandom(4)
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def ws_read_frames(
    sock: socket.socket, deadline: float, until: bytes | None = None
) -> tuple[list[bytes], int | None]:
    """Read frames until the close frame or EOF, a text containing ``until``, or the
    deadline: (the texts, the close code)."""
    buffer = b""
    texts: list[bytes] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return texts, None
        if not chunk:
            return texts, None
        buffer += chunk
        while len(buffer) >= 2:
            opcode, size, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    break
                size, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    break
                size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < offset + size:
                break
            payload, buffer = buffer[offset : offset + size], buffer[offset + size :]
            if opcode == 8:
                return texts, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            texts.append(payload)
            if until is not None and until in payload:
                return texts, None
    return texts, None


def ws_open(port: int, topic: str) -> socket.socket:
    """A raw WebSocket that has joined ``topic`` (and read the join's reply)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock, head = raw_connect(port, request)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the WebSocket handshake failed: {head!r}")
    sock.sendall(ws_frame(json.dumps(["1", "1", topic, "phx_join", {}])))
    texts, _ = ws_read_frames(sock, time.monotonic() + 10, until=b"phx_reply")
    if not any(b"phx_reply" in text for text in texts):
        raise RuntimeError("the join got no reply")
    return sock


# -- the cases ----------------------------------------------------------------------------------


async def churn(node: Node, cycles: int) -> tuple[str, bool, str]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{node.port}/socket/websocket?vsn=2.0.0"
    failures: list[str] = []
    todo = iter(range(cycles))

    async def expect(ws: Any, ref: str) -> None:
        while True:
            frame = json.loads(await ws.recv())
            if frame[1] == ref and frame[3] == "phx_reply":
                if frame[4]["status"] != "ok":
                    raise RuntimeError(f"refused: {frame}")
                return

    async def client() -> None:
        for n in todo:
            try:
                async with connect(url, compression=None) as ws:
                    topic = f"room:churn{n % 50}"
                    await ws.send(json.dumps([str(n), "1", topic, "phx_join", {}]))
                    await expect(ws, "1")
                    await ws.send(json.dumps([str(n), "2", topic, "phx_leave", {}]))
                    await expect(ws, "2")
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(client() for _ in range(16)))
    note = f"{len(failures)} cycles failed" + (f" (first: {failures[0]})" if failures else "")
    return f"{cycles:,} cycles", not failures, note


async def slow_ws(node: Node, events: int) -> tuple[str, bool, str]:
    sock = await asyncio.to_thread(ws_open, node.port, "room:slow")
    try:
        await asyncio.to_thread(node.request, "POST", f"/broadcast?topic=room:slow&n={events}")
        closed = await wait_connections_gone(node)
        _, code = await asyncio.to_thread(ws_read_frames, sock, time.monotonic() + 10)
    finally:
        sock.close()
    work = f"{events:,} broadcasts of 1 KB"
    if not closed:
        return work, False, "the non-reading client was never closed"
    return work, code == 1013, f"closed by the node, code {code}"


async def slow_sse(node: Node, events: int) -> tuple[str, bool, str]:
    request = (
        f"GET /events?topic={SSE_TOPIC} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    sock, head = await asyncio.to_thread(raw_connect, node.port, request)
    try:
        if not head.startswith(b"HTTP/1.1 200"):
            return "not run", False, f"GET /events answered {head.splitlines()[0]!r}"
        await asyncio.sleep(0.2)  # let the stream attach its topic before the flood
        await asyncio.to_thread(node.request, "POST", f"/publish?topic={SSE_TOPIC}&n={events}")
        closed = await wait_connections_gone(node)
    finally:
        sock.close()
    work = f"{events:,} events of 1 KB"
    if not closed:
        return work, False, "the non-reading stream was never closed"
    return work, True, "the stream was closed by the node"


async def wait_connections_gone(node: Node, timeout: float = SETTLE) -> bool:
    """True once the node has no connection left but the /stats request (its processes back
    to the baseline taken at the start of the run), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(node.stats))["processes"] <= BASELINE.processes:
            return True
        await asyncio.sleep(0.2)
    return False


async def flood_slow(node: Node, frames: int) -> tuple[str, bool, str]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = f"ws://127.0.0.1:{node.port}/socket/websocket?vsn=2.0.0"
    pad = "x" * 10_000
    code: int | None = None
    sent = 0
    started = time.monotonic()
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps(["1", "1", "slow:flood", "phx_join", {}]))
        while json.loads(await ws.recv())[1] != "1":
            pass
        try:
            async with asyncio.timeout(FLOOD_SECONDS):  # a node that slows it down ends this
                for n in range(frames):
                    frame = json.dumps(["1", str(n + 2), "slow:flood", "work", {"pad": pad}])
                    await ws.send(frame)
                    sent += 1
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
        except TimeoutError:
            pass
    left = time.monotonic()
    drained = await wait_connections_gone(node, timeout=DRAIN)
    outlived = time.monotonic() - left
    work = f"{sent:,} of {frames:,} frames of 10 KB in {left - started:.0f} s"
    if code is not None:
        how = f"closed by the node ({code})"
    else:
        how = "the client sent all" if sent == frames else "the client was slowed down"
    if drained:
        return work, True, f"{how}; nothing left {outlived:.1f} s after the client left"
    stats = await asyncio.to_thread(node.stats)
    return (
        work,
        False,
        f"{how}; {stats['mailboxes']:,} messages still queued {DRAIN:.0f} s after it left "
        f"(the longest mailbox: {stats['longest']})",
    )


async def flood_topic(node: Node, frames: int) -> tuple[str, bool, str]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{node.port}/socket/websocket?vsn=2.0.0"
    from websockets.exceptions import ConnectionClosed

    topic = "t" * 500_000
    logged = node.log_bytes()
    answered = 0
    async with connect(url, compression=None, max_size=None) as ws:
        # one at a time: each is answered (an error reply that echoes the topic), and 20 of
        # those unread would fill the connection's output queue and close it first
        with contextlib.suppress(ConnectionClosed):
            for n in range(frames):
                await ws.send(json.dumps([None, str(n), topic, "msg", {}]))
                await asyncio.wait_for(ws.recv(), 30)
                answered += 1
    await asyncio.sleep(0.5)  # the node's log lines reach its file
    written = node.log_bytes() - logged
    work = f"{frames} frames, 500 KB topic"
    note = f"{written:,} bytes of log written; {answered} answered"
    return work, written <= LOG_BYTES, note


CASES: dict[str, Callable[[Node, int], Awaitable[tuple[str, bool, str]]]] = {
    "churn": churn,
    "slow-ws": slow_ws,
    "slow-sse": slow_sse,
    "flood-slow": flood_slow,
    "flood-topic": flood_topic,
}
SIZES = {  # full, quick
    "churn": (5_000, 500),
    "slow-ws": (20_000, 5_000),
    "slow-sse": (50_000, 5_000),
    "flood-slow": (20_000, 2_000),
    "flood-topic": (20, 20),
}
BASELINE = Sample()


async def run_case(name: str, size: int) -> Outcome:
    global BASELINE
    with Node() as node:
        progress(f"{name}: {size:,}, on a node at port {node.port} (pid {node.process.pid})")
        BASELINE = await settle(node, await asyncio.to_thread(node.sample), timeout=5)
        outcome = await measure(node, name, size)
        if node.process.poll() is not None:
            outcome.held = False
            outcome.note += f"; the node died: {node.log_tail(300)}"
    return outcome


async def measure(node: Node, name: str, size: int) -> Outcome:
    before = BASELINE
    with Sampler(node) as sampler:
        try:
            work, held, note = await asyncio.wait_for(CASES[name](node, size), 600)
        except Exception as exc:
            work, held, note = "failed", False, f"{type(exc).__name__}: {exc}"
    after = await settle(node, before)
    peak = sampler.peak
    for field in ("rss", "processes", "fds", "max_mailbox"):  # the peak covers both ends
        ends = (getattr(peak, field), getattr(before, field), getattr(after, field))
        setattr(peak, field, max(ends))
    if peak.rss - before.rss > PEAK_RSS:
        held, note = False, f"{note}; memory peak +{(peak.rss - before.rss) / MB:.0f} MB"
    if name == "churn":
        left = (after.processes - before.processes, after.fds - before.fds)
        if left[0] > 0 or left[1] > 0 or after.rss - before.rss > CHURN_RSS:
            held = False
            note += f"; left behind: {left[0]} processes, {left[1]} fds"
    progress(f"{name}: {'held' if held else 'NOT HELD'}: {note}")
    return Outcome(name, work, before, peak, after, held, note)


def versions() -> str:
    names = ("uvicorn", "websockets", "starlette")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    package = os.path.dirname(os.path.abspath(beamish.__file__))  # the beamish the node runs
    revision = subprocess.run(
        ["git", "-C", package, "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return f"Python {platform.python_version()}, beamish {revision or '?'}, " + ", ".join(found)


def render(outcomes: list[Outcome], quick: bool, markdown: bool, started: str) -> str:
    def triple(values: tuple[float, ...], fmt: str) -> str:
        return " / ".join(format(v, fmt) for v in values)

    rows = []
    for o in outcomes:
        rss = tuple(s.rss / MB for s in (o.before, o.peak, o.after))
        rows.append(
            [
                o.case,
                o.work,
                triple(rss, ".0f"),
                triple((o.before.processes, o.peak.processes, o.after.processes), ",d"),
                triple((o.before.fds, o.peak.fds, o.after.fds), "d"),
                f"{o.peak.max_mailbox:,}",
                "yes" if o.held else "**NO**" if markdown else "NO",
                o.note,
            ]
        )
    header = [
        f"run: {started}, {'--quick' if quick else 'full'}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before: {LOAD}",
        f"versions: {versions()}",
        "figures are the node's: before / peak / after the case (peak sampled every 0.1 s); "
        "mailbox: the longest one seen",
    ]
    columns = ["case", "work", "RSS MB", "processes", "fds", "mailbox", "bound held", "note"]
    return report_table(header, columns, rows, markdown)


LOAD = ""


async def main_async(names: list[str], sizes: dict[str, int]) -> list[Outcome]:
    return [await run_case(name, sizes[name]) for name in names]


def main() -> int:
    global LOAD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled down: about a minute")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--only", help=f"comma-separated cases among {', '.join(CASES)}")
    parser.add_argument(
        "--size", action="append", default=[], metavar="CASE=N", help="a case's size (repeatable)"
    )
    args = parser.parse_args()
    names = list(CASES) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    sizes = {name: SIZES[name][1 if args.quick else 0] for name in CASES}
    for option in args.size:
        name, _, value = option.partition("=")
        if name not in CASES or not value.isdigit():
            parser.error(f"--size takes CASE=N with CASE among {', '.join(CASES)}, got {option!r}")
        sizes[name] = int(value)
    LOAD = load_average()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    outcomes = asyncio.run(main_async(names, sizes))
    print(render(outcomes, args.quick, args.markdown, started))
    return 0 if all(o.held for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
