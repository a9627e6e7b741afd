"""The seed's use cases under load: the live dashboard and the live stream, as a user sees
them, on one node, with and without faults.

    .venv/bin/python bench/usecases.py [--apps analytics,stream] [--clients 1000,2000,10000]
                                       [--seconds 15] [--faults 5] [--markdown] [--quick]

For each example and each number of clients, in one run: a fresh node
(``beamish run examples.<app>.app:<App>``), then that many WebSocket clients (the
``websockets`` sans-I/O protocol under a plain asyncio protocol, speaking Phoenix V2; in
processes of at most 5,000, since a process may hold 20,000 files here) that join the
example's topic and note, for every frame, when it arrived. For ``--seconds`` they only
listen (after a warm-up of 2 s); then the numbers:

- **responsive**: how old what a client is shown is when it arrives, p50 and p99 over every
  frame of every client: for the dashboard, from the newest event counted in the frame
  (an action: an event happened) to the frame's arrival, which includes up to one publish
  interval of waiting, and from the frame's publication to its arrival (the fan-out
  alone); for the stream, from the segment's making to its arrival. "all clients" is, per
  frame, when the last client had it (p50 and p99 over frames);
- **kept up**: the share of the frames published that a client received; the rest were
  coalesced away for clients that could not keep up (a slow client skips to the newest);
- **uptime under faults** (``--faults N``, kills a second): meanwhile random processes are
  killed through the node's console: a counter of the dashboard, a viewer's channel process
  (its client sees ``phx_error`` and joins again, as phoenix.js does), the stream's camera.
  The clients count what they saw (errors, rejoins, connections lost); at the end the
  dashboard's every made event must have been counted, once (``/stats``);
- **scalability**: the same figures at each number of clients, side by side;
- the node's CPU over the measuring seconds (``/proc``).

Bounded: at most ``--seconds`` of listening per case, and every wait has a deadline. The
dashboard runs at 50,000 events a second, a frame every 0.5 s; the stream at 10 segments of
10 KB a second (``--segment-bytes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _procs import cpu_seconds, free_port
from _report import cpu_model, load_average, ms, pct, report

ROOT = Path(__file__).resolve().parents[1]
PER_PROCESS = 5_000  # clients per client process
APPS = {
    "analytics": ("examples.analytics.app:Analytics", "analytics:live", "state"),
    "stream": ("examples.stream.app:Stream", "stream:main", "segment"),
}
# what --faults kills, a kill at a time, in the node (its console runs this)
KILLS = {
    "analytics": [
        "from examples.analytics import pipeline\n"
        "pid = beamish.whereis(pipeline.counter_name(random.choice(pipeline.KEYS)))",
        "subs = PubSub.subscribers('analytics.pubsub', 'analytics:live')\n"
        "pid = random.choice(subs)[0] if subs else None",
    ],
    "stream": [  # a viewer's channel three times in four, the camera once
        *["subs = PubSub.subscribers('stream.pubsub', 'stream:main')\n"
          "pid = random.choice(subs)[0] if subs else None"] * 3,
        "pid = beamish.whereis('stream.camera.main')",
    ],
}


# -- the clients (a process of its own each) ---------------------------------------------------


def client_main(url: str, topic: str, count: int, seconds: float, warmup: float) -> None:
    """Open ``count`` joined connections; print "ready"; listen ``warmup`` + ``seconds``;
    print one JSON line with what was seen during ``seconds``."""
    import uvloop

    uvloop.run(_clients(url, topic, count, seconds, warmup))


async def _clients(url: str, topic: str, count: int, seconds: float, warmup: float) -> None:
    import orjson
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.uri import parse_uri

    loop = asyncio.get_running_loop()
    uri = parse_uri(url)
    state = {"measuring": False}
    seen: dict[str, Any] = {"lat": [], "fanout": [], "frames": {}, "errors": 0, "rejoins": 0,
                            "lost": 0, "received": 0}

    class Viewer(asyncio.Protocol):
        def __init__(self) -> None:
            self.ws = ClientProtocol(uri, max_size=4 * 1024 * 1024)
            self.last = -1  # the newest seq seen: a rejoin sends the latest again
            self.joined: asyncio.Future[None] = loop.create_future()
            self.transport: Any = None
            self.refs = 0
            self.join_ref = ""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.ws.send_request(self.ws.connect())
            self.flush()

        def flush(self) -> None:
            for data in self.ws.data_to_send():
                if data:
                    self.transport.write(data)

        def join(self) -> None:
            self.refs += 1
            self.join_ref = str(self.refs)
            self.ws.send_text(orjson.dumps([self.join_ref, self.join_ref, topic, "phx_join", {}]))

        def heartbeat(self) -> None:  # as phoenix.js does, every 30 s
            if self.transport.is_closing():
                return
            self.refs += 1
            self.ws.send_text(orjson.dumps([None, f"h{self.refs}", "phoenix", "heartbeat", {}]))
            self.flush()
            loop.call_later(30, self.heartbeat)

        def connection_lost(self, exc: Exception | None) -> None:
            seen["lost"] += 1  # at any time: a connection closed before the measuring too
            if not self.joined.done():
                self.joined.set_exception(ConnectionError(f"connection lost: {exc}"))

        def data_received(self, data: bytes) -> None:
            now = time.time()
            self.ws.receive_data(data)
            for event in self.ws.events_received():
                if isinstance(event, Response):
                    self.join()
                elif isinstance(event, Frame):
                    if event.opcode is Opcode.TEXT:
                        self.text(orjson.loads(event.data), now)
                    elif event.opcode is Opcode.BINARY:
                        self.binary(bytes(event.data), now)
            self.flush()

        def text(self, message: list[Any], now: float) -> None:
            _, _, _, event, payload = message
            if event == "phx_reply":
                if payload.get("status") == "ok" and not self.joined.done():
                    self.joined.set_result(None)
                    loop.call_later(30, self.heartbeat)
            elif event in ("phx_error", "phx_close"):
                if state["measuring"]:
                    seen["errors"] += 1
                    seen["rejoins"] += 1
                self.join()  # as phoenix.js does
            elif event == "state" and state["measuring"] and payload["seq"] > self.last:
                self.last = payload["seq"]
                note(payload["seq"], now, payload["newest"] / 1000, payload["at"] / 1000)

        def binary(self, data: bytes, now: float) -> None:
            kind = data[0]
            if kind == 0:  # push: join_ref, topic, event sizes
                start = 4 + data[1] + data[2] + data[3]
            elif kind == 2:  # broadcast: topic, event sizes
                start = 3 + data[1] + data[2]
            else:
                return
            if state["measuring"]:
                head = orjson.loads(data[start:data.index(b"\n", start)])
                if head["seq"] > self.last:
                    self.last = head["seq"]
                    note(head["seq"], now, head["at"] / 1000, None)

    def note(seq: int, now: float, made: float, published: float | None) -> None:
        seen["received"] += 1
        latency = now - made
        seen["lat"].append(round(latency * 1000, 1))
        if published is not None:
            seen["fanout"].append(round((now - published) * 1000, 1))
        frames = seen["frames"]
        frames[seq] = max(frames.get(seq, 0.0), round(latency * 1000, 1))

    opening = asyncio.Semaphore(100)

    async def open_one() -> Viewer:
        async with opening:
            _, viewer = await loop.create_connection(Viewer, uri.host, uri.port)
            await asyncio.wait_for(viewer.joined, 120)
            return viewer

    viewers = await asyncio.gather(*(open_one() for _ in range(count)))
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)  # "go", from the driver
    assert line.strip() == "go", line
    await asyncio.sleep(warmup)
    state["measuring"] = True
    await asyncio.sleep(seconds)
    state["measuring"] = False
    print(json.dumps(seen), flush=True)
    for viewer in viewers:
        viewer.transport.abort()
    os._exit(0)


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Case:
    app: str
    clients: int
    faults: float
    result: dict[str, Any] = field(default_factory=dict)
    failure: str = ""



def start_node(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    target = APPS[app][0]
    node = subprocess.Popen(
        [sys.executable, "-m", "beamish.cli", "run", target, "--port", str(port),
         "--name", f"usecases_{app}", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.poll() is not None:
            log = node.stderr.read() if node.stderr else ""
            raise RuntimeError(f"the {app} node exited: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return node
        except OSError:
            time.sleep(0.2)
    node.kill()
    raise RuntimeError(f"the {app} node did not serve within 60 s")


class Chaos(threading.Thread):
    """Kills a random process of the app ``rate`` times a second, through the console."""

    def __init__(self, app: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.app, self.rate = app, rate
        self.kills = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from beamish.console import ConsoleClient

        console = ConsoleClient(f"usecases_{self.app}", timeout=60)
        console.run("import random, beamish\nfrom beamish.pubsub import PubSub")
        rng = random.Random(7)
        try:
            while not self.stopping.wait(1 / self.rate):
                code = rng.choice(KILLS[self.app]) + "\nif pid: beamish.exit(pid, 'kill')"
                answer = console.run(code)
                if answer.get("error") or answer.get("exception"):
                    self.failures.append(str(answer)[:200])
                else:
                    self.kills += 1
        finally:
            console.close()


def run_case(case: Case, seconds: float, segment_bytes: int) -> None:
    port = free_port()
    env = {"ANALYTICS_RATE": "50000", "ANALYTICS_INTERVAL": "0.5",
           "STREAM_FPS": "10", "STREAM_SEGMENT_BYTES": str(segment_bytes)}
    node = start_node(case.app, port, env)
    clients: list[subprocess.Popen[str]] = []
    if case.app == "stream":  # off air while the viewers join: at 10,000 viewers a stream
        console("stream", "await studio.set_on_air('main', False)")  # would starve the joins
    try:
        _, topic, _ = APPS[case.app]
        url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
        left = case.clients
        while left:
            n = min(left, PER_PROCESS)
            left -= n
            clients.append(subprocess.Popen(
                [sys.executable, __file__, "--client", json.dumps([url, topic, n, seconds, 2.0])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            ))
        for client in clients:
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("a client process did not get its connections joined")
        if case.app == "stream":
            console("stream", "await studio.set_on_air('main', True)")
        chaos = Chaos(case.app, case.faults) if case.faults else None
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        time.sleep(2.0)  # the clients' warm-up
        cpu_before, began = cpu_seconds(node.pid), time.monotonic()
        if chaos is not None:
            chaos.start()
        outputs = []
        for client in clients:
            assert client.stdout is not None
            outputs.append(json.loads(client.stdout.readline()))
            client.wait(timeout=60)
        cpu = cpu_seconds(node.pid) - cpu_before
        elapsed = time.monotonic() - began
        if chaos is not None:
            chaos.stopping.set()
            chaos.join(timeout=10)
        case.result = summarize(case, outputs, seconds)
        case.result["cpu"] = cpu / elapsed
        if chaos is not None:
            case.result["kills"] = chaos.kills
            if chaos.failures:
                case.result["kill_failures"] = chaos.failures[:3]
        if case.app == "analytics":
            case.result["stats"] = settle_analytics(port)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()


def console(app: str, source: str) -> None:
    """Run ``source`` in the app's node, through its console."""
    from beamish.console import ConsoleClient

    client = ConsoleClient(f"usecases_{app}", timeout=60)
    try:
        client.run("import beamish\nfrom examples.stream import studio"
                   if app == "stream" else "import beamish")
        answer = client.run(source)
        if answer.get("error") or answer.get("exception"):
            raise RuntimeError(f"the node's console answered {answer}")
    finally:
        client.close()


def settle_analytics(port: int) -> dict[str, Any]:
    """Stop the events and let the counters catch up; what /stats says then."""
    from beamish.console import ConsoleClient

    console = ConsoleClient("usecases_analytics", timeout=60)
    console.run("from examples.analytics import pipeline\nawait pipeline.set_rate(0)")
    console.close()
    deadline = time.monotonic() + 20
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=60) as answer:
            stats = json.loads(answer.read())
        if stats["made"] == stats["counted"]:
            break
        time.sleep(0.2)
    return {"made": sum(stats["made"].values()), "counted": sum(stats["counted"].values()),
            "equal": stats["made"] == stats["counted"], "lost": stats["lost"]}



def summarize(case: Case, outputs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    latencies = [v for out in outputs for v in out["lat"]]
    fanout = [v for out in outputs for v in out["fanout"]]
    frames: dict[str, float] = {}
    for out in outputs:
        for seq, latency in out["frames"].items():
            frames[seq] = max(frames.get(seq, 0.0), latency)
    published = len(frames)  # frames any client saw in the window
    received = sum(out["received"] for out in outputs)
    return {
        "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
        "fanout_p50": pct(fanout, 0.5), "fanout_p99": pct(fanout, 0.99),
        "all_p50": pct(list(frames.values()), 0.5), "all_p99": pct(list(frames.values()), 0.99),
        "kept": received / max(1, published * case.clients),
        "frames": published, "errors": sum(o["errors"] for o in outputs),
        "rejoins": sum(o["rejoins"] for o in outputs), "lost": sum(o["lost"] for o in outputs),
    }



def rows_of(cases: list[Case]) -> list[list[str]]:
    rows = []
    for case in cases:
        r = case.result
        if case.failure or not r:
            rows.append([case.app, f"{case.clients:,}", f"FAILED: {case.failure[:160]}",
                         "", "", f"{case.faults:g}/s" if case.faults else "none", ""])
            continue
        shown = f"p50 {ms(r['p50'])}, p99 {ms(r['p99'])}"
        if case.app == "analytics":
            shown += (f"; publication to arrival p50 {ms(r['fanout_p50'])}, "
                      f"p99 {ms(r['fanout_p99'])}")
        faults = (f"{case.faults:g}/s: {r.get('kills', 0)} killed; clients saw {r['errors']} "
                  f"errors, {r['rejoins']} rejoins, {r['lost']} connections lost"
                  if case.faults else f"none; {r['lost']} connections lost")
        if "stats" in r:
            s = r["stats"]
            faults += (f"; events made {s['made']:,}, counted {s['counted']:,}"
                       f" ({'all' if s['equal'] else 'NOT all'}), lost {s['lost']}")
        rows.append([
            case.app, f"{case.clients:,}", shown,
            f"p50 {ms(r['all_p50'])}, p99 {ms(r['all_p99'])}",
            f"{r['kept'] * 100:.1f}% of {r['frames']} frames", faults,
            f"{r['cpu'] * 100:.0f}%",
        ])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", default="analytics,stream")
    parser.add_argument("--clients", default="1000,2000,10000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--faults", type=float, default=5.0,
                        help="kills a second in the faults runs (0: no faults runs)")
    parser.add_argument("--segment-bytes", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="100 and 200 clients, 5 s")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        client_main(*json.loads(options.client))
        return
    if options.quick:
        options.clients, options.seconds = "100,200", 5.0
    counts = [int(n) for n in options.clients.split(",")]
    cases = []
    for app in options.apps.split(","):
        for n in counts:
            cases.append(Case(app, n, 0.0))
        if options.faults:
            cases.append(Case(app, counts[0], options.faults))
    load = load_average()
    began = time.time()
    for case in cases:
        print(f"# {case.app}, {case.clients:,} clients, faults {case.faults:g}/s",
              file=sys.stderr, flush=True)
        try:
            run_case(case, options.seconds, options.segment_bytes)
        except Exception as exc:  # the other cases still run; the table says so
            case.failure = f"{type(exc).__name__}: {exc}"
        print("  " + " | ".join(rows_of([case])[0]), file=sys.stderr, flush=True)
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began))}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, shared by the node and the "
        "clients (127.0.0.1); load average before: " + load,
        f"Python {sys.version.split()[0]}; one node; {options.seconds:g} s measured per case "
        "after 2 s of warm-up; dashboard 50,000 events/s, a frame every 0.5 s; stream 10 "
        f"segments/s of {options.segment_bytes:,} bytes",
        f"the run took {(time.time() - began) / 60:.1f} min",
    ]
    print(report(header, ["example", "clients", "age at arrival (every frame, every client)",
                          "until the last client had it (per frame)", "kept up",
                          "faults", "node CPU"], rows_of(cases), options.markdown))


if __name__ == "__main__":
    main()
