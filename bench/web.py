"""Web benchmarks: beamish's endpoint and Channels against Starlette, both on uvicorn.

Usage::

    .venv/bin/python bench/web.py              # full run, plain-text table (about 4 minutes)
    .venv/bin/python bench/web.py --markdown   # the same, as Markdown
    .venv/bin/python bench/web.py --quick      # scaled down: 1,000 connections, 3 s wrk runs
    .venv/bin/python bench/web.py --only http  # one part (http or websocket)
    .venv/bin/python bench/web.py --repeats 5   # more rounds per figure (the median is kept)

Progress goes to stderr; the report (a header, then the table) to stdout. Needs ``wrk``
(Debian: ``apt-get install -y wrk``).

Every server runs in a fresh process of its own, with the same uvicorn options (httptools,
uvloop, websockets' sans-I/O implementation, one worker, no access log); the load comes from
other processes on 127.0.0.1, sharing the machine's cores with the server:

- **beamish**: ``beamish run web:BenchWeb`` (this module): an ``Endpoint`` whose ``Router``
  answers ``GET /`` with a plain-text hello in a process per request, and whose socket
  ``/socket`` has a ``Channel`` on ``room:*`` that accepts every join; for HTTP also
  **beamish with metrics**: the same server reporting ``beamish.telemetry``'s default
  metrics to a Prometheus registry (and its poller running), to measure what telemetry
  costs per request (target: at most 5% more server CPU);
- **beamish on granian**: the same, ``beamish run --server granian`` (granian's embedded
  server; broadcasts go through its ASGI ``send``, framed by granian for each socket);
- **Starlette on granian**: the Starlette app below on granian's embedded server;
- **Starlette**: a ``Starlette`` app with the same hello route and a WebSocket endpoint that
  keeps its connections in a set;
- **raw ASGI**, for reference (the floor: uvicorn's own cost): an ASGI callable that writes
  the hello itself, keeps each WebSocket's ``send`` and loops over them to broadcast.

HTTP: ``wrk -t1 -c64 -d10s --latency`` against each server after a 2 s warm-up run, in
rounds (every server once per round, each in a fresh process); requests/s, p50 and p99
latency, and the server's CPU time per request (from ``/proc/<pid>/stat``). The median of 3
rounds.

WebSocket: 10,000 connections, opened by 4 client processes of 2,500 each (an asyncio
program with the ``websockets`` client; open files are capped at 20,000 per process). For
beamish each connection speaks the Phoenix V2 protocol and joins ``room:bench``; for the
others it just connects. Each client process reports to this driver when all of its
connections are joined, and when all of them got the current broadcast. Then:

- memory per connection: (the server's resident set size with the 10,000 connections joined -
  its size before them, after a warm-up of 20 connections and one broadcast) / 10,000, read
  from ``/proc/<pid>/statm``;
- broadcast: ``POST /broadcast`` makes the server send ``{"t": time.time()}`` to every
  connection: beamish with ``beamish.web.broadcast(pubsub, "room:bench", "tick", ...)`` (the
  fastlane), Starlette with ``for ws in connections: await ws.send_text(...)``, raw ASGI
  with ``await send(...)`` for each kept ``send``. Each client
  records ``time.time()`` when a frame arrives; latency = that time - ``t`` (one machine, one
  clock). One warm-up broadcast, then 5, each after the last one reached every connection;
  p50, p99 and max over the 50,000 receipts. The server also answers how long its send loop
  took, and its CPU time over the 5 broadcasts is read from ``/proc``.

Each WebSocket run uses fresh server and client processes; each figure is the median over 3
runs (in rounds: raw ASGI, Starlette, beamish). The clients do not offer permessage-deflate
(with it, every server would compress each frame once per connection).

Targets (from the issue): beamish's HTTP requests/s >= 90% of Starlette's, its p99 within 1.2x;
WebSocket memory per connection <= 2x Starlette's; broadcast p99 no worse than Starlette's.

``--profile DIR`` runs each server under ``cProfile`` and writes ``DIR/<server>-<part>-<n>.prof``
(slower: for finding where the time goes, not for the table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import http.client
import importlib.metadata
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

from _procs import cpu_seconds, free_port
from _report import cpu_model, load_average
from _report import report as report_table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from beamish import Application, Ok, Pid, Supervisor, telemetry
from beamish.pubsub import PubSub
from beamish.telemetry import Poller, PrometheusReporter, default_metrics
from beamish.web import Channel, Endpoint, Router, Socket, SocketState, broadcast

DESCRIPTION = "Web benchmarks: beamish's endpoint and Channels against Starlette, on uvicorn."
HERE = os.path.dirname(os.path.abspath(__file__))
Result = dict[str, float]

HELLO = "Hello, world!"
PUBSUB = "bench.pubsub"
TOPIC = "room:bench"
MAX_FRAME = 1_048_576  # what beamish's EndpointServer gives uvicorn as ws_max_size
UVICORN_OPTIONS: dict[str, Any] = {  # what beamish's EndpointServer (beamish run) uses
    "http": "httptools",
    "loop": "uvloop",
    "ws": "websockets-sansio",
    "workers": 1,
    "access_log": False,
    "log_config": None,
    "log_level": "warning",
    "ws_max_size": MAX_FRAME,
}

# -- the beamish server (`beamish run web:BenchWeb`) --------------------------------------------


class BenchChannel(Channel):
    def join(self, topic: str, payload: Any, socket: SocketState) -> Ok:
        return Ok(socket)


class BenchSocket(Socket, timeout=3600):  # the clients send no heartbeats during a run
    channels = {"room:*": BenchChannel}  # noqa: RUF012


router = Router()


@router.get("/")
async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO)


@router.post("/broadcast")
async def beamish_broadcast(request: Request) -> PlainTextResponse:
    sent_at, cpu = time.time(), time.thread_time()
    broadcast(PUBSUB, TOPIC, "tick", {"t": sent_at})
    return PlainTextResponse(took(sent_at, cpu))


METRICS = PrometheusReporter(default_metrics())
router.mount("/metrics", METRICS.app())


class BenchWeb(Application):
    async def start(self, start_type: Any, args: Any) -> Pid:
        children: list[Any] = [(PubSub, {"name": PUBSUB})]
        wanted = os.environ.get("BENCH_TELEMETRY", "")
        if wanted == "metrics":  # the "beamish-metrics" server
            children += [METRICS.spec(), Poller.spec(period=1.0)]
        elif wanted == "metrics-only":  # the reporter without the poller (telemetry_cost.py)
            children += [METRICS.spec()]
        elif wanted.startswith("noop:"):  # one no-op handler (bench/telemetry_cost.py)
            telemetry.attach("bench.noop", tuple(wanted[5:].split(".")), lambda *args: None)
        return await Supervisor.start_link(children, strategy="one_for_one")


ENDPOINT = Endpoint(
    router=router, sockets={"/socket": BenchSocket}, pubsub=PUBSUB, application=BenchWeb
)


def _dump_snapshots(base: str) -> None:
    """``bench/ws_memory.py``'s hook: each SIGUSR1 writes a tracemalloc snapshot to
    ``base.<n>`` (then ``base.<n>.done``). Tracing must be on (``PYTHONTRACEMALLOC``)."""
    import tracemalloc

    taken = [0]

    def dump(signum: int, frame: Any) -> None:
        taken[0] += 1
        gc.collect()
        tracemalloc.take_snapshot().dump(f"{base}.{taken[0]}")
        with open(f"{base}.{taken[0]}.done", "w"):
            pass

    signal.signal(signal.SIGUSR1, dump)


if os.environ.get("BENCH_TRACEMALLOC"):
    _dump_snapshots(os.environ["BENCH_TRACEMALLOC"])

# -- the Starlette server -----------------------------------------------------------------------


def took(sent_at: float, cpu: float) -> str:
    """What a broadcast handler answers: the wall-clock and CPU seconds of its send loop."""
    return f"{time.time() - sent_at!r} {time.thread_time() - cpu!r}"


# A dict, for its order: connections are written in the order they came, as beamish's
# subscriptions are. (A set's order is its hash order, which spreads each client process's
# connections over the whole loop; that made the same loop measurably slower here.)
CONNECTIONS: dict[WebSocket, None] = {}


async def starlette_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO)


async def starlette_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    CONNECTIONS[websocket] = None
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        del CONNECTIONS[websocket]


async def starlette_broadcast(request: Request) -> PlainTextResponse:
    sent_at, cpu = time.time(), time.thread_time()
    text = json.dumps({"t": sent_at})
    for websocket in list(CONNECTIONS):
        await websocket.send_text(text)
    return PlainTextResponse(took(sent_at, cpu))


STARLETTE = Starlette(
    routes=[
        Route("/", starlette_hello),
        Route("/broadcast", starlette_broadcast, methods=["POST"]),
        WebSocketRoute("/ws", starlette_socket),
    ]
)

# -- the raw ASGI server: the floor under both ---------------------------------------------------

_RAW_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(HELLO)).encode()),
    ],
}
_RAW_BODY = {"type": "http.response.body", "body": HELLO.encode()}
RAW_SENDS: dict[Any, None] = {}  # ordered, as CONNECTIONS


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET / answers hello; a WebSocket keeps its ASGI ``send``; POST /broadcast loops over
    them with ``await send(...)``: what uvicorn itself costs, with no framework."""
    if scope["type"] == "http":
        if scope["path"] != "/broadcast":
            await send(_RAW_START)
            await send(_RAW_BODY)
            return
        sent_at, cpu = time.time(), time.thread_time()
        message = {"type": "websocket.send", "text": json.dumps({"t": sent_at})}
        for ws_send in list(RAW_SENDS):
            await ws_send(message)
        await answer_took(send, sent_at, cpu)
    elif scope["type"] == "websocket":
        await held(receive, send, RAW_SENDS, send)


async def answer_took(send: Any, sent_at: float, cpu: float) -> None:
    """A broadcast handler's answer, in raw ASGI: ``took``'s figures."""
    body = took(sent_at, cpu).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def held(receive: Any, send: Any, kept: dict[Any, None], key: Any) -> None:
    """Accept a raw ASGI WebSocket and keep ``key`` in ``kept`` until it disconnects."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    kept[key] = None
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        del kept[key]


FLOOR_WRITES: dict[Any, None] = {}  # ordered, as CONNECTIONS


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``raw_app`` served on beamish's WebSocket protocol, whose broadcast builds the frame
    once and hands the same bytes to each connection's ``write_frame`` (one
    ``transport.write`` each): the least a Python server on uvicorn can do per socket, with
    no framework and no processes. The floor beamish's fastlane is measured against."""
    from beamish.web._ws_protocol import FRAMES, frame_of

    if scope["type"] == "websocket":  # its write_frame is in the scope from the start
        await held(receive, send, FLOOR_WRITES, scope["extensions"][FRAMES])
    elif scope["path"] != "/broadcast":
        await raw_app(scope, receive, send)
    else:
        sent_at, cpu = time.time(), time.thread_time()
        frame = frame_of(json.dumps({"t": sent_at}))
        unwritten = [write for write in list(FLOOR_WRITES) if not write(frame)]
        if unwritten:  # a full write buffer: the bench's clients read, so it should not be
            raise RuntimeError(f"{len(unwritten)} connections refused the pre-built frame")
        await answer_took(send, sent_at, cpu)


def serve(kind: str, port: int) -> None:
    """Serve the Starlette or the raw ASGI app with uvicorn, or Starlette with granian
    (beamish's goes by `beamish run`)."""
    if kind == "starlette-granian":
        serve_granian(port)
        return
    import uvicorn

    app: Any = {"starlette": STARLETTE, "raw": raw_app, "floor": floor_app}[kind]
    lifespan: Literal["on", "off"] = "on" if kind == "starlette" else "off"
    options = dict(UVICORN_OPTIONS)
    if kind == "floor":
        from beamish.web._ws_protocol import FramedWebSocketProtocol

        options["ws"] = FramedWebSocketProtocol
    # uvicorn re-raises the SIGTERM it handled once it has stopped: end with an exit, so
    # that a profiler wrapped around us (--profile) gets to write its file
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan=lifespan, **options)


def serve_granian(port: int) -> None:
    """Starlette on granian's embedded server (one worker on uvloop, as beamish's)."""
    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    async def main() -> None:
        server = Server(STARLETTE, address="127.0.0.1", port=port, interface=Interfaces.ASGI,
                        log_enabled=False)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.stop)
        await server.serve()

    uvloop.run(main())


# -- the WebSocket clients (a process of N connections) -----------------------------------------


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def clients_main(kind: str, url: str, count: int, rounds: int,
                       source: str | None = None) -> None:
    """Open ``count`` connections (joined, for beamish), say "ready", say "got K" when all
    have the K-th broadcast, then print every latency as "result [[...], ...]"."""
    from websockets.asyncio.client import ClientConnection, connect

    opening = asyncio.Semaphore(50)
    join = json.dumps(["1", "1", TOPIC, "phx_join", {}])

    async def open_one() -> ClientConnection:
        async with opening:
            ws = await connect(
                url,
                compression=None,
                ping_interval=None,
                proxy=None,
                open_timeout=120,
                max_queue=None,
                **({"local_addr": (source, 0)} if source else {}),
            )
            if kind.startswith("beamish"):
                await ws.send(join)
                reply = json.loads(await ws.recv())
                if reply[3] != "phx_reply" or reply[4]["status"] != "ok":
                    raise RuntimeError(f"the join was refused: {reply}")
            return ws

    sockets = await asyncio.gather(*(open_one() for _ in range(count)))
    # Connected: from here a client allocates little per frame, but its cyclic GC would
    # walk all its connections again and again, stalling a process's 2,500 receipts. It
    # cost beamish's clients (not the others') 100 ms more CPU per broadcast and twice the
    # p99: a cost of the load generator, not of any server (docs/benchmarks.md, the
    # night of 2026-12-04). Off for every server, as in the light clients.
    gc.freeze()
    gc.disable()
    emit("ready")
    received: list[list[tuple[float, str | bytes]]] = [[] for _ in range(rounds)]

    async def listen(ws: ClientConnection) -> None:
        for k in range(rounds):
            data = await ws.recv()
            now = time.time()
            got = received[k]
            got.append((now, data))
            if len(got) == count:
                emit(f"got {k + 1}")

    await asyncio.gather(*(listen(ws) for ws in sockets))
    latencies = [
        [
            now - (json.loads(data)[4] if kind.startswith("beamish") else json.loads(data))["t"]
            for now, data in got
        ]
        for got in received
    ]
    emit("result " + json.dumps(latencies))
    os._exit(0)  # leave the closing to the kernel: the server is killed next


async def light_clients_main(url: str, count: int, rounds: int, source: str | None) -> None:
    """``clients_main`` for beamish with less client work per frame: each connection is the
    ``websockets`` sans-I/O protocol under a plain asyncio protocol. Once joined, a
    connection only keeps each chunk of bytes with its arrival time (and counts the
    broadcasts in it, to say "got k"); at the end every chunk goes through the protocol, and
    each frame's receipt time is that of the chunk that completed it."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.uri import parse_uri

    loop = asyncio.get_running_loop()
    uri = parse_uri(url)
    join = json.dumps(["1", "1", TOPIC, "phx_join", {}])
    received: list[list[tuple[float, bytes]]] = [[] for _ in range(rounds)]
    tally = [0] * rounds  # connections that counted broadcast k in their bytes
    opening = asyncio.Semaphore(50)

    class Light(asyncio.Protocol):
        def __init__(self) -> None:
            self.ws = ClientProtocol(uri, max_size=MAX_FRAME)
            self.joined: asyncio.Future[None] = loop.create_future()
            self.transport: Any = None
            self.k = 0
            self.chunks: list[tuple[float, bytes]] = []  # (arrival time, bytes) not decoded
            self.found: list[tuple[float, bytes]] = []  # (receipt time, text frame)

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.ws.send_request(self.ws.connect())
            self._flush()

        def _flush(self) -> None:
            for data in self.ws.data_to_send():
                if data:
                    self.transport.write(data)

        def data_received(self, data: bytes) -> None:
            now = time.time()
            if self.joined.done():  # a broadcast's bytes are decoded later, in catch_up()
                self.chunks.append((now, data))
                ticks = data.count(b'"tick"')
                if not ticks:  # something else (a ping, say): decoded and answered now
                    self.catch_up()
                for _ in range(ticks):
                    if self.k < rounds:
                        tally[self.k] += 1
                        self.k += 1
                        if tally[self.k - 1] == count:
                            emit(f"got {self.k}")
                return
            self.ws.receive_data(data)
            for event in self.ws.events_received():
                if isinstance(event, Response):
                    self.ws.send_text(join.encode())
                elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    self.joined.set_result(None)  # the join's reply
            self._flush()

        def catch_up(self) -> None:
            """Decode the bytes kept so far, in order: each text frame is noted with the
            arrival time of the chunk that completed it; pings are answered."""
            for now, data in self.chunks:
                self.ws.receive_data(data)
                self.found += [(now, bytes(event.data)) for event in self.ws.events_received()
                               if isinstance(event, Frame) and event.opcode is Opcode.TEXT]
            self.chunks.clear()
            self._flush()

    async def open_one() -> Light:
        async with opening:
            _, protocol = await loop.create_connection(
                Light, uri.host, uri.port, **({"local_addr": (source, 0)} if source else {})
            )
            await asyncio.wait_for(protocol.joined, 120)
            return protocol

    connections = await asyncio.gather(*(open_one() for _ in range(count)))
    # The connections are made; what follows allocates little per frame, but a client
    # process's cyclic GC would walk all of them again and again: profiled at 100,000
    # connections, a fifth of the clients' CPU. A load generator can do without it.
    gc.freeze()
    gc.disable()
    emit("ready")
    while tally[-1] < count:
        await asyncio.sleep(0.05)
    for connection in connections:
        connection.catch_up()
        for k, (now, data) in enumerate(connection.found):
            if k >= rounds or json.loads(data)[3] != "tick":
                raise RuntimeError(f"frame {k + 1} of a connection is not a broadcast: {data!r}")
            received[k].append((now, data))
    if any(len(got) != count for got in received):
        raise RuntimeError(f"decoded {[len(got) for got in received]} broadcasts, not {count} each")
    latencies = [[now - json.loads(data)[4]["t"] for now, data in got] for got in received]
    emit("result " + json.dumps(latencies))
    os._exit(0)


def run_clients(spec: str) -> None:
    import uvloop

    options = json.loads(spec)
    if options.get("light"):
        uvloop.run(light_clients_main(options["url"], options["count"], options["rounds"],
                                      options.get("source")))
        return
    uvloop.run(clients_main(options["kind"], options["url"], options["count"], options["rounds"],
                            options.get("source")))


# -- the driver's side: servers and client fleets -----------------------------------------------


def tail(log: IO[bytes], lines: int = 5) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(nothing on stderr)"


class Server:
    """One server process: started in ``__enter__``, killed in ``__exit__``."""

    def __init__(self, kind: str, profile: str | None = None, cpu: int | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self.profile = profile
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        python = [sys.executable]
        if profile is not None:
            python += ["-m", "cProfile", "-o", profile]
        env = dict(os.environ)
        if kind == "beamish-metrics":  # BenchWeb then reports beamish's default metrics
            env["BENCH_TELEMETRY"] = "metrics"
        if kind.startswith("beamish"):
            command = [
                *python,
                "-m",
                "beamish",
                "run",
                "web:BenchWeb",
                "--app-dir",
                HERE,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *(["--server", "granian"] if kind == "beamish-granian" else []),
            ]
        else:
            command = [
                *python,
                os.path.abspath(__file__),
                "--serve",
                kind,
                "--port",
                str(self.port),
            ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log,
                                        preexec_fn=_on_cpu(cpu),
                                        env=env)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited: {tail(self.log)}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the {self.kind} server did not listen: {tail(self.log)}")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:  # a clean stop, so that cProfile writes its file
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(60)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def trigger(self) -> tuple[float, float]:
        """POST /broadcast; the wall-clock and CPU seconds the server's send loop took."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", "/broadcast")
            response = connection.getresponse()
            body = response.read().decode()
            if response.status != 200:
                raise RuntimeError(f"POST /broadcast answered {response.status}: {body}")
            wall, cpu = body.split()
            return float(wall), float(cpu)
        finally:
            connection.close()


class Fleet:
    """Client processes, each holding ``count`` connections; they talk to us on stdout."""

    runs = int(time.time()) % 50_000  # each fleet of a run, and each run, another subnet

    def __init__(self, kind: str, server: Server, processes: int, count: int, rounds: int,
                 *, sources: bool = False, light: bool = False) -> None:
        """``sources``: each process connects from a loopback address of its own
        (127.<a>.<b>.2, .3..., with <a>.<b> new for each fleet), for more connections to one
        port than one address has ephemeral ports (~28,000), and none of them still held by
        the previous run's connections in TIME_WAIT."""
        path = "/socket/websocket?vsn=2.0.0" if kind.startswith("beamish") else "/ws"
        Fleet.runs += 1
        net = f"127.{Fleet.runs // 250 % 250 + 1}.{Fleet.runs % 250}" if sources else ""

        def spec(i: int) -> str:
            return json.dumps({
                "kind": kind,
                "url": f"ws://127.0.0.1:{server.port}{path}",
                "count": count,
                "rounds": rounds,
                "source": f"{net}.{i + 2}" if sources else None,
                "light": light,
            })

        self.logs = [tempfile.TemporaryFile() for _ in range(processes)]  # noqa: SIM115
        self.processes = [
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--clients", spec(i)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            for i, log in enumerate(self.logs)
        ]
        self.lines: list[queue.Queue[str | None]] = [queue.Queue() for _ in self.processes]
        for process, lines in zip(self.processes, self.lines, strict=True):
            threading.Thread(target=self._read, args=(process, lines), daemon=True).start()

    @staticmethod
    def _read(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for log in self.logs:
            log.close()

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def wait_all(self, word: str, timeout: float) -> list[str]:
        """Wait until every process said ``word`` (or a line starting with ``word + " "``),
        as its next line; returns those lines."""
        said = []
        deadline = time.monotonic() + timeout
        for i, lines in enumerate(self.lines):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"client process {i} did not say {word!r} within {timeout:.0f} s"
                ) from None
            if line is None:
                self.processes[i].wait()
                raise RuntimeError(f"client process {i} exited: {tail(self.logs[i])}")
            if line != word and not line.startswith(word + " "):
                raise RuntimeError(f"client process {i} said {line[:80]!r}, not {word!r}")
            said.append(line)
        return said


# -- measurements -------------------------------------------------------------------------------

WRK_CONNECTIONS = 64
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds_of(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _on_cpu(cpu: int | None) -> Callable[[], None] | None:
    """What a child runs before it starts, to stay on one CPU (threads included)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def http_cpus() -> tuple[int | None, int | None]:
    """The CPUs of the HTTP runs: the server on one, wrk on another, where there are two.

    Unpinned, the kernel moves the server and wrk between the cores from run to run; pinned,
    one server's CPU per request moved by 4-11% between runs where it had moved by up to
    three quarters, as long as the machine itself was quiet (docs/benchmarks.md, the night
    of 2026-12-04)."""
    if not PIN_HTTP:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def wrk(url: str, seconds: int, cpu: int | None = None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", url + "/"]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True,
        preexec_fn=_on_cpu(cpu),
    ).stdout
    figures: dict[str, float] = {"errors": 0.0}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["rate"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            figures["p" + words[0].rstrip("%")] = seconds_of(words[1])
        elif "requests in" in line:
            figures["requests"] = float(words[0])
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            figures["errors"] += sum(float(n) for n in re.findall(r"\d+", line))
    if not {"rate", "p50", "p99", "requests"} <= figures.keys():
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    return figures


def http_run(kind: str, seconds: int, warmup: int, profile: str | None) -> Result:
    server_cpu, wrk_cpu = http_cpus()
    with Server(kind, profile, server_cpu) as server:
        wrk(server.url, warmup, wrk_cpu)
        cpu = server.cpu_seconds()
        figures = wrk(server.url, seconds, wrk_cpu)
        cpu = server.cpu_seconds() - cpu
    figures["cpu_per_request"] = cpu / figures["requests"]
    return figures


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def websocket_run(
    kind: str, connections: int, processes: int, broadcasts: int, profile: str | None
) -> Result:
    with Server(kind, profile) as server:
        with Fleet(kind, server, 1, 20, 1) as warm:  # load the code paths, then measure
            warm.wait_all("ready", 60)
            server.trigger()
            warm.wait_all("got 1", 60)
            warm.wait_all("result", 60)
        time.sleep(1.0)
        before = server.rss()
        began = time.perf_counter()
        with Fleet(kind, server, processes, connections // processes, broadcasts + 1) as fleet:
            fleet.wait_all("ready", 600)
            connect_seconds = time.perf_counter() - began
            time.sleep(1.0)
            after = server.rss()
            loops = []
            for k in range(1, broadcasts + 2):
                if k == 2:  # the first broadcast is a warm-up
                    cpu, clients_cpu = server.cpu_seconds(), fleet.cpu_seconds()
                loops.append(server.trigger())
                fleet.wait_all(f"got {k}", 120)
                if k == broadcasts + 1:
                    cpu = server.cpu_seconds() - cpu
                    clients_cpu = fleet.cpu_seconds() - clients_cpu
                time.sleep(0.5)
            reports = fleet.wait_all("result", 120)
    receipts = sorted(
        latency
        for line in reports
        for per_round in json.loads(line.split(" ", 1)[1])[1:]
        for latency in per_round
    )
    if len(receipts) != broadcasts * connections:
        raise RuntimeError(f"{len(receipts)} receipts, expected {broadcasts * connections}")
    return {
        "bytes_per_connection": (after - before) / connections,
        "rss_before": before,
        "rss_after": after,
        "connect_seconds": connect_seconds,
        "p50": percentile(receipts, 0.5),
        "p99": percentile(receipts, 0.99),
        "max": receipts[-1],
        "loop": statistics.median(wall for wall, _ in loops[1:]),
        "loop_cpu": statistics.median(cpu for _, cpu in loops[1:]),
        "cpu_per_broadcast": cpu / broadcasts,
        "clients_cpu_per_broadcast": clients_cpu / broadcasts,
    }


# -- scales, rounds, medians --------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    repeats: int
    wrk_seconds: int
    wrk_warmup: int
    connections: int
    client_processes: int
    broadcasts: int


FULL = Scale(
    repeats=3, wrk_seconds=10, wrk_warmup=2, connections=10_000, client_processes=4, broadcasts=5
)
QUICK = Scale(
    repeats=1, wrk_seconds=3, wrk_warmup=1, connections=1_000, client_processes=4, broadcasts=3
)

HTTP_KINDS = (
    "raw", "starlette", "beamish", "beamish-metrics", "starlette-granian", "beamish-granian",
)
WS_KINDS = ("raw", "floor", "starlette", "beamish", "starlette-granian", "beamish-granian")
NAMES = {
    "raw": "raw ASGI on uvicorn",
    "starlette": "Starlette on uvicorn",
    "beamish": "beamish Endpoint + Router",
    "beamish-metrics": "the same, default metrics to Prometheus",
    "starlette-granian": "Starlette on granian",
    "beamish-granian": "beamish Endpoint + Router on granian",
}
WS_NAMES = {
    "raw": "raw ASGI, loop of await send()",
    "floor": "the floor: raw ASGI, one pre-built frame written to each",
    "starlette": "Starlette endpoint, loop of send_text",
    "beamish": "beamish Socket + Channel, broadcast()",
    "starlette-granian": "Starlette endpoint on granian, loop of send_text",
    "beamish-granian": "beamish Socket + Channel on granian (--server granian)",
}
Runs = dict[str, list[Result]]


Failures = dict[str, str]


def in_rounds(
    kinds: tuple[str, ...],
    repeats: int,
    part: str,
    measure: Callable[[str, str | None], Result],
    profile_dir: str | None,
) -> tuple[Runs, Failures]:
    """Every kind once per round, so that drift on a shared machine favours none. A failed
    run is reported and left out; the kind's first failure is kept for the table."""
    runs: Runs = {kind: [] for kind in kinds}
    failures: Failures = {}
    for round_no in range(1, repeats + 1):
        for kind in kinds:
            profile = None
            if profile_dir is not None:
                profile = os.path.join(profile_dir, f"{kind}-{part}-{round_no}.prof")
            began = time.perf_counter()
            try:
                result = measure(kind, profile)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                failures.setdefault(kind, str(exc))
                shown = f"failed: {exc}"
            else:
                runs[kind].append(result)
                shown = ", ".join(f"{k} {v:.6g}" for k, v in result.items())
            print(
                f"  {part} / {kind}, run {round_no}/{repeats} "
                f"({time.perf_counter() - began:.0f} s): {shown}",
                file=sys.stderr,
                flush=True,
            )
    return runs, failures


def median(results: list[Result]) -> Result:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def spread(results: list[Result], key: str, fmt: Callable[[float], str], label: str = "") -> str:
    """The lowest and highest of the runs, to show the noise: " (runs: 1 to 3)"."""
    if len(results) < 2:
        return ""
    values = sorted(r[key] for r in results)
    return f" ({label}runs: {fmt(values[0])} to {fmt(values[-1])})"


# -- the table ----------------------------------------------------------------------------------

# The targets (issue 14's where it set one): each is checked on the median of the runs;
# docs/benchmarks.md gives the round-by-round ratios where a target asks "in every run"
PIN_HTTP = True  # --no-pin: let the kernel place the HTTP server and wrk (http_cpus)
HTTP_RATE_SHARE = 0.90  # beamish's requests/s >= 90% of Starlette's
HTTP_CPU_FACTOR = 1.0  # beamish's server CPU per request <= Starlette's
HTTP_P99_FACTOR = 1.2  # beamish's HTTP p99 <= 1.2x Starlette's
TELEMETRY_COST = 1.05  # server CPU per request with the default metrics <= 1.05x without
MEMORY_FACTOR = 1.0  # beamish's bytes per joined connection <= Starlette's per connection
BROADCAST_P99_FACTOR = 0.5  # beamish's broadcast p99 <= half of Starlette's

Row = tuple[str, str, str, str, str, str]


def verdict(ok: bool, text: str) -> str:
    return f"{text}: {'met' if ok else 'NOT met'}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 0.01 else f"{seconds * 1e3:,.0f} ms"


@dataclass(frozen=True)
class Line:
    """One workload of the table: a row per server.

    ``value`` is the figure compared with Starlette's (the ratio column); ``text`` writes the
    result cell from (server, median figures, every run); ``target`` gives beamish's verdict
    from (its value, Starlette's value).
    """

    label: str
    scale: str
    value: Callable[[Result], float]
    text: Callable[[str, Result, list[Result]], str]
    target: Callable[[float, float], str] | None = None


def rows_for(lines: list[Line], runs: Runs, failures: Failures, names: dict[str, str]) -> list[Row]:
    figures = {kind: median(results) for kind, results in runs.items() if results}
    base = figures.get("starlette")
    rows: list[Row] = []
    for line in lines:
        for kind, name in names.items():
            if kind not in runs and kind not in failures:
                continue  # not asked for (--kinds)
            fig = figures.get(kind)
            if fig is None:
                missed = "not measured" if kind == "beamish" and line.target else ""
                rows.append(
                    (
                        line.label,
                        name,
                        line.scale,
                        f"failed: {failures.get(kind, 'no run')}",
                        "",
                        missed,
                    )
                )
                continue
            value = line.value(fig)
            ratio = target = ""
            if base is not None:
                base_value = line.value(base)
                ratio = f"{value / base_value:.2f}x"
                if kind == "beamish" and line.target is not None:
                    target = line.target(value, base_value)
                    rounds = list(zip(runs[kind], runs["starlette"], strict=False))
                    if len(rounds) > 1:  # "in every run": each round's own ratio
                        each = [line.value(ours) / line.value(theirs) for ours, theirs in rounds]
                        met = sum(line.target(line.value(ours), line.value(theirs))
                                  .endswith(": met") for ours, theirs in rounds)
                        target += (f"; round by round {', '.join(f'{r:.2f}x' for r in each)}"
                                   f" (met in {met} of {len(rounds)})")
            rows.append(
                (line.label, name, line.scale, line.text(kind, fig, runs[kind]), ratio, target)
            )
    return rows


def http_rows(runs: Runs, failures: Failures, scale: Scale) -> list[Row]:
    size = f"wrk -t1 -c{WRK_CONNECTIONS}, {scale.wrk_seconds} s"

    def throughput(kind: str, fig: Result, every: list[Result]) -> str:
        errors = f", {fig['errors']:,.0f} errors" if fig["errors"] else ""
        return (
            f"{fig['rate']:,.0f} requests/s{spread(every, 'rate', lambda v: f'{v:,.0f}')}, "
            f"{fig['cpu_per_request'] * 1e6:.1f} us server CPU/request{errors}"
        )

    def latency(kind: str, fig: Result, every: list[Result]) -> str:
        return f"p50 {ms(fig['p50'])}, p99 {ms(fig['p99'])}{spread(every, 'p99', ms, 'p99 ')}"

    lines = [
        Line(
            "HTTP hello world: throughput",
            size,
            lambda fig: fig["rate"],
            throughput,
            lambda value, base: verdict(
                value >= HTTP_RATE_SHARE * base,
                f">= {HTTP_RATE_SHARE:.0%} of Starlette's ({value / base:.0%})",
            ),
        ),
        Line(
            "HTTP hello world: server CPU per request",
            size,
            lambda fig: fig["cpu_per_request"],
            lambda kind, fig, every: (
                f"{fig['cpu_per_request'] * 1e6:.1f} us"
                f"{spread(every, 'cpu_per_request', lambda v: f'{v * 1e6:.1f} us')}"
            ),
            lambda value, base: verdict(
                value <= HTTP_CPU_FACTOR * base,
                f"<= {HTTP_CPU_FACTOR:g}x Starlette's ({value / base:.2f}x)",
            ),
        ),
        Line(
            "HTTP hello world: latency",
            size,
            lambda fig: fig["p99"],
            latency,
            lambda value, base: verdict(
                value <= HTTP_P99_FACTOR * base,
                f"p99 <= {HTTP_P99_FACTOR}x Starlette's ({value / base:.2f}x)",
            ),
        ),
    ]
    rows = rows_for(lines, runs, failures, NAMES)
    if runs.get("beamish") and runs.get("beamish-metrics"):
        off = median(runs["beamish"])["cpu_per_request"]
        on = median(runs["beamish-metrics"])["cpu_per_request"]
        rows.append((
            "HTTP hello world: the cost of telemetry", NAMES["beamish-metrics"], size,
            f"{on * 1e6:.1f} us server CPU/request with, {off * 1e6:.1f} without"
            f"{spread(runs['beamish-metrics'], 'cpu_per_request', lambda v: f'{v * 1e6:.1f}')}",
            f"{on / off:.2f}x",
            verdict(on <= TELEMETRY_COST * off,
                    f"<= {TELEMETRY_COST:.2f}x without ({on / off:.2f}x)"),
        ))
    return rows


def websocket_rows(runs: Runs, failures: Failures, scale: Scale) -> list[Row]:
    conns = f"{scale.connections:,} connections"
    size = f"{conns} x {scale.broadcasts} broadcasts"

    def memory(kind: str, fig: Result, every: list[Result]) -> str:
        state = "joined" if kind.startswith("beamish") else "open"
        return (
            f"{fig['bytes_per_connection']:,.0f} bytes (RSS {fig['rss_before'] / 2**20:,.0f}"
            f" -> {fig['rss_after'] / 2**20:,.0f} MiB; all {state} in "
            f"{fig['connect_seconds']:.0f} s)"
        )

    def receipt(kind: str, fig: Result, every: list[Result]) -> str:
        return (
            f"p50 {ms(fig['p50'])}, p99 {ms(fig['p99'])}, max {ms(fig['max'])}"
            f"{spread(every, 'p99', ms, 'p99 ')}"
        )

    def server_side(kind: str, fig: Result, every: list[Result]) -> str:
        return (
            f"send loop: {ms(fig['loop'])} ({ms(fig['loop_cpu'])} of CPU); CPU per "
            f"broadcast: server {ms(fig['cpu_per_broadcast'])}, clients "
            f"{ms(fig['clients_cpu_per_broadcast'])}"
        )

    lines = [
        Line(
            "WebSocket: server memory per connection",
            conns,
            lambda fig: fig["bytes_per_connection"],
            memory,
            lambda value, base: verdict(
                value <= MEMORY_FACTOR * base,
                f"<= {MEMORY_FACTOR:g}x Starlette's ({value / base:.2f}x)",
            ),
        ),
        Line(
            "WebSocket: one broadcast to all, client receipt",
            size,
            lambda fig: fig["p99"],
            receipt,
            lambda value, base: verdict(
                value <= BROADCAST_P99_FACTOR * base,
                f"p99 <= {BROADCAST_P99_FACTOR:g}x Starlette's ({value / base:.2f}x)",
            ),
        ),
        Line(
            "WebSocket: one broadcast, server side", size, lambda fig: fig["loop_cpu"], server_side
        ),
    ]
    return rows_for(lines, runs, failures, WS_NAMES)


COLUMNS = ("workload", "implementation", "scale", "result", "vs Starlette", "target")


# -- the header ---------------------------------------------------------------------------------


def wrk_version() -> str:
    if shutil.which("wrk") is None:  # a WebSocket-only run does not need it
        return "not installed"
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    match = re.search(r"wrk (\S+)", out)
    return match[1] if match else "unknown"


def header_lines(scale: Scale, load_before: str, minutes: float) -> list[str]:
    version = importlib.metadata.version
    runs = "one run" if scale.repeats == 1 else f"the median of {scale.repeats} runs"
    return [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; servers, wrk and the WebSocket "
        "clients share the cores (127.0.0.1)"
        + ("; HTTP: the server pinned to one CPU, wrk to another" if http_cpus()[0] is not None
           else ""),
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')} (httptools "
        f"{version('httptools')}, uvloop {version('uvloop')}, websockets-sansio), starlette "
        f"{version('starlette')}, websockets {version('websockets')}, wrk {wrk_version()}, "
        f"beamish {version('beamish')}",
        f"Each figure is {runs}, each run in fresh server processes, in rounds; "
        f"vs Starlette: this row's figure / Starlette's (requests/s, p99, bytes, CPU)",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_average()}; "
        f"the run took {minutes:.1f} min",
    ]


# -- entry point --------------------------------------------------------------------------------


def chosen(kinds: tuple[str, ...], wanted: str | None) -> tuple[str, ...]:
    """``kinds`` in their order, only those named in ``wanted`` (all if None)."""
    if wanted is None:
        return kinds
    names = {name.strip() for name in wanted.split(",")}
    unknown = names - set(HTTP_KINDS) - set(WS_KINDS)
    if unknown:
        sys.exit(f"--kinds: unknown server(s) {', '.join(sorted(unknown))}")
    return tuple(kind for kind in kinds if kind in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--only", choices=("http", "websocket"), help="run one part only")
    parser.add_argument("--profile", metavar="DIR", help="run the servers under cProfile")
    parser.add_argument(
        "--kinds", help="the servers to run, comma-separated (default: all of "
        f"{', '.join(dict.fromkeys(HTTP_KINDS + WS_KINDS))})",
    )
    parser.add_argument("--repeats", type=int, help="rounds per figure (default 3; quick: 1)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the HTTP server and wrk to a CPU each")
    parser.add_argument("--serve", choices=("starlette", "raw", "floor", "starlette-granian"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if args.clients:
        run_clients(args.clients)
        return
    if shutil.which("wrk") is None and args.only != "websocket":
        sys.exit(
            "bench/web.py needs wrk for its HTTP load: `apt-get install -y wrk` (Debian, "
            "Ubuntu), `brew install wrk` (macOS); or run `--only websocket`"
        )
    global PIN_HTTP
    PIN_HTTP = not args.no_pin
    profile_dir = None
    if args.profile:
        profile_dir = os.path.abspath(args.profile)
        os.makedirs(profile_dir, exist_ok=True)
    scale = QUICK if args.quick else FULL
    if args.repeats is not None:
        if args.repeats < 1:
            sys.exit("--repeats needs a positive number of rounds")
        scale = dataclasses.replace(scale, repeats=args.repeats)
    load_before = load_average()
    began = time.perf_counter()
    rows: list[Row] = []
    if args.only in (None, "http"):
        runs, failures = in_rounds(
            chosen(HTTP_KINDS, args.kinds),
            scale.repeats,
            "http",
            lambda kind, profile: http_run(kind, scale.wrk_seconds, scale.wrk_warmup, profile),
            profile_dir,
        )
        rows += http_rows(runs, failures, scale)
    if args.only in (None, "websocket"):
        runs, failures = in_rounds(
            chosen(WS_KINDS, args.kinds),
            scale.repeats,
            "websocket",
            lambda kind, profile: websocket_run(
                kind, scale.connections, scale.client_processes, scale.broadcasts, profile
            ),
            profile_dir,
        )
        rows += websocket_rows(runs, failures, scale)
    minutes = (time.perf_counter() - began) / 60
    lines = header_lines(scale, load_before, minutes)
    print(report_table(lines, COLUMNS, rows, args.markdown))


if __name__ == "__main__":
    main()
