"""The seed's use cases under load: the live dashboard and the live stream, as a user sees
them, on one node and on several, with and without faults.

    .venv/bin/python bench/usecases.py [--apps analytics,stream] [--clients 1000,2000,10000]
                                       [--nodes 1,2] [--kill-node] [--seconds 15]
                                       [--faults 5] [--markdown] [--quick]

For each example, each node count and each number of clients, in one run: a fresh node or
cluster (``beamish run examples.<app>.app:<App> --nodes N``: N nodes on one port, the
kernel spreading the connections), then that many WebSocket clients (the
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
- **a node killed** (``--kill-node``, on the largest node count): a third into the
  measuring, the node that runs the app's singleton (the dashboard's pipeline, the
  stream's studio) gets SIGKILL. Its clients reconnect as phoenix.js does (after 10, 50,
  100... ms) to the nodes left; the table says how many connections were lost, how long
  they took to come back, each client's longest wait for a frame (the failover as a viewer
  sees it), and whether any number a client saw went back (the dashboard's counts, the
  stream's segment numbers); the dashboard's made and counted events must still agree;
- **scalability**: the same figures at each number of clients and of nodes, side by side
  (a count past 15,000 connections a node is not run: a process may hold 20,000 files);
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
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _procs import free_port, reconnect_after, tree_cpu
from _report import cpu_model, load_average, ms, pct, report

ROOT = Path(__file__).resolve().parents[1]
PER_PROCESS = 5_000  # clients per client process
MAX_PER_NODE = 15_000  # connections a node is given at most (20,000 open files a process)
APPS = {
    "analytics": ("examples.analytics.app:Analytics", "analytics:live", "state"),
    "stream": ("examples.stream.app:Stream", "stream:main", "segment"),
}
SINGLETONS = {"analytics": "analytics.pipeline", "stream": "stream.studio.main"}
# what --faults kills, a kill at a time, in the node (its console runs this)
KILLS = {  # on a node where there is none (a counter, with --nodes), the next node is tried
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
    state = {"measuring": False, "ending": False}
    seen: dict[str, Any] = {"lat": [], "fanout": [], "frames": {}, "errors": 0, "rejoins": 0,
                            "lost": 0, "received": 0, "reconnected": 0, "outages": [],
                            "back": 0, "gaps": [], "join_retries": 0}

    class Client:
        """One viewer across its connections: phoenix.js reconnects a socket that closed
        (after 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms, then every 5 s) and joins
        again; what the viewer has seen carries over."""

        def __init__(self) -> None:
            self.last = -1  # the newest seq seen: a rejoin sends the latest again
            self.counted = 0  # the dashboard: the largest count of events seen
            self.viewer: Viewer | None = None
            self.tries = 0
            self.lost_at: float | None = None
            self.arrived: float | None = None  # when the last frame came (while measuring)
            self.gap = 0.0  # the longest time without a frame, while measuring
            self.joined_once = False  # before: open_one tries again; after: lost() does

        def connect(self) -> None:
            task = loop.create_task(loop.create_connection(lambda: Viewer(self), uri.host,
                                                           uri.port))
            task.add_done_callback(self._connected)

        def _connected(self, task: asyncio.Task[Any]) -> None:
            if task.exception() is not None:
                self.lost(None)

        def lost(self, viewer: Viewer | None) -> None:
            if state["ending"]:
                return
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            delay = reconnect_after(self.tries)
            self.tries += 1
            loop.call_later(delay, self.connect)

        def rejoined(self) -> None:
            self.joined_once = True
            if self.lost_at is not None:
                seen["reconnected"] += 1
                seen["outages"].append(round((time.monotonic() - self.lost_at) * 1000, 1))
                self.lost_at = None
            self.tries = 0

        def frame(self, now: float) -> None:
            if self.arrived is not None:
                self.gap = max(self.gap, now - self.arrived)
            self.arrived = now

    class Viewer(asyncio.Protocol):
        def __init__(self, client: Client) -> None:
            self.client = client
            client.viewer = self
            self.ws = ClientProtocol(uri, max_size=4 * 1024 * 1024)
            self.joined: asyncio.Future[None] = loop.create_future()
            # a reconnection's failure is counted by its client, and its future not awaited
            self.joined.add_done_callback(lambda f: f.cancelled() or f.exception())
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
            if state["ending"]:
                return
            seen["lost"] += 1  # at any time: a connection closed before the measuring too
            if not self.joined.done():
                self.joined.set_exception(ConnectionError(f"connection lost: {exc}"))
            if self.client.viewer is self and self.client.joined_once:
                self.client.lost(self)

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
                    self.client.rejoined()
                    loop.call_later(30, self.heartbeat)
            elif event in ("phx_error", "phx_close"):
                if state["measuring"]:
                    seen["errors"] += 1
                    seen["rejoins"] += 1
                self.join()  # as phoenix.js does
            elif event == "state" and state["measuring"]:
                client = self.client
                counted = sum(payload["counted"].values())
                if counted < client.counted:  # a count a viewer saw went back
                    seen["back"] += 1
                client.counted = max(client.counted, counted)
                if payload["seq"] > client.last:
                    client.last = payload["seq"]
                    client.frame(now)
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
                client = self.client
                if head["seq"] < client.last - 1:  # numbers went back (a rejoin resends one)
                    seen["back"] += 1
                if head["seq"] > client.last:
                    client.last = head["seq"]
                    client.frame(now)
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

    async def open_one() -> Client:
        """A joined client; a connection closed before its join is tried again (phoenix.js
        would), at most 10 times: at 20,000 clients on two cores a node may not read a
        handshake within its header timeout (10 s)."""
        client = Client()
        for attempt in range(10):
            async with opening:
                try:
                    _, viewer = await loop.create_connection(lambda: Viewer(client),
                                                             uri.host, uri.port)
                    await asyncio.wait_for(viewer.joined, 120)
                    return client
                except (ConnectionError, OSError, TimeoutError):
                    seen["join_retries"] += 1
                    if client.viewer is not None and client.viewer.transport is not None:
                        client.viewer.transport.abort()
                    client.viewer = None
            await asyncio.sleep(reconnect_after(attempt))
        raise ConnectionError("a client could not join in 10 attempts")

    clients = await asyncio.gather(*(open_one() for _ in range(count)))
    seen["lost"] = 0
    print("ready", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)  # "go", from the driver
    assert line.strip() == "go", line
    await asyncio.sleep(warmup)
    state["measuring"] = True
    await asyncio.sleep(seconds)
    state["measuring"] = False
    state["ending"] = True
    seen["gaps"] = [round(c.gap * 1000, 1) for c in clients]
    seen["unreconnected"] = sum(1 for c in clients if c.lost_at is not None)
    print(json.dumps(seen), flush=True)
    for client in clients:
        if client.viewer is not None and client.viewer.transport is not None:
            client.viewer.transport.abort()
    os._exit(0)


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Case:
    app: str
    clients: int
    faults: float
    nodes: int = 1
    kill_node: bool = False  # SIGKILL the node that runs the app's singleton, a third in
    result: dict[str, Any] = field(default_factory=dict)
    failure: str = ""
    base: str = ""  # the node's name (unique per case: a console name is not reused)
    log: Path | None = None  # where its nodes log

    def node_names(self) -> list[str]:
        base = self.base
        return [base] if self.nodes == 1 else [f"{base}-{i + 1}" for i in range(self.nodes)]

    @property
    def faults_shown(self) -> str:
        if self.kill_node:
            return "a node killed"
        return f"{self.faults:g}/s" if self.faults else "none"


def start_node(case: Case, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    app = case.app
    target = APPS[app][0]
    case.base = f"usecases_{app}_{port}"
    # the node's log goes to a file (a pipe nobody reads fills, and then the node blocks on
    # its next log line); a failed case's row points to it
    case.log = Path(tempfile.gettempdir()) / f"{case.base}.log"
    with open(case.log, "w") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "beamish.cli", "run", target, "--port", str(port),
             "--name", case.base, "--log-level", "warning", "--nodes", str(case.nodes)],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log,
            text=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"the {app} node exited: {case.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return node
        except OSError:
            time.sleep(0.2)
    node.kill()
    raise RuntimeError(f"the {app} node did not serve within 60 s")


class Chaos(threading.Thread):
    """Kills a random process of the app ``rate`` times a second, through the consoles of
    its nodes (the first node that has one of the kind chosen)."""

    def __init__(self, case: Case, rate: float) -> None:
        super().__init__(daemon=True)
        self.case, self.rate = case, rate
        self.kills = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from beamish.console import ConsoleClient

        consoles = [ConsoleClient(name, timeout=60) for name in self.case.node_names()]
        for console in consoles:
            console.run("import random, beamish\nfrom beamish.pubsub import PubSub")
        rng = random.Random(7)
        try:
            while not self.stopping.wait(1 / self.rate):
                code = (rng.choice(KILLS[self.case.app])
                        + "\nif pid: beamish.exit(pid, 'kill')\nbool(pid)")
                for console in rng.sample(consoles, len(consoles)):
                    answer = console.run(code)
                    if answer.get("error") or answer.get("exception"):
                        self.failures.append(str(answer)[:200])
                        break
                    if answer.get("result") == "True":
                        self.kills += 1
                        break
        finally:
            for console in consoles:
                console.close()


def kill_holder(case: Case) -> tuple[str, int]:
    """SIGKILL the node that runs the app's singleton (the dashboard's pipeline, the
    stream's studio); its name and OS pid."""
    from beamish.console import ConsoleClient

    singleton = SINGLETONS[case.app]
    for name in case.node_names():
        console = ConsoleClient(name, timeout=30)
        try:
            console.run("import os, beamish\nfrom beamish.cluster import Singleton")
            answer = console.run(f"h = Singleton.whereis({singleton!r})\n"
                                 "(os.getpid(), h is not None and h.node == beamish.node())")
        finally:
            console.close()
        found = re.fullmatch(r"\((\d+), (True|False)\)", answer.get("result", ""))
        if found is None:
            raise RuntimeError(f"node {name}'s console answered {answer}")
        if found.group(2) == "True":
            pid = int(found.group(1))
            os.kill(pid, signal.SIGKILL)
            return name, pid
    raise RuntimeError(f"no node runs {singleton}")


def run_case(case: Case, seconds: float, segment_bytes: int) -> None:
    port = free_port()
    env = {"ANALYTICS_RATE": "50000", "ANALYTICS_INTERVAL": "0.5",
           "STREAM_FPS": "10", "STREAM_SEGMENT_BYTES": str(segment_bytes)}
    node = start_node(case, port, env)
    clients: list[subprocess.Popen[str]] = []
    try:
        wait_consoles(case)
        if case.app == "stream":  # off air while the viewers join: at 10,000 viewers a
            console(case, "await studio.set_on_air('main', False)")  # stream starves joins
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
            console(case, "await studio.set_on_air('main', True)")
        chaos = Chaos(case, case.faults) if case.faults else None
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        time.sleep(2.0)  # the clients' warm-up
        cpu_before, began = tree_cpu(node.pid), time.monotonic()
        if chaos is not None:
            chaos.start()
        killer = None
        if case.kill_node:
            killed: dict[str, Any] = {}

            def kill_later() -> None:
                time.sleep(seconds / 3)
                killed["node"], killed["pid"] = kill_holder(case)

            killer = threading.Thread(target=kill_later, daemon=True)
            killer.start()
        outputs = []
        for client in clients:
            assert client.stdout is not None
            outputs.append(json.loads(client.stdout.readline()))
            client.wait(timeout=60)
        cpu_after = tree_cpu(node.pid)
        cpu = sum(v - cpu_before.get(pid, 0.0) for pid, v in cpu_after.items())
        elapsed = time.monotonic() - began
        if killer is not None:
            killer.join(timeout=30)
        if chaos is not None:
            chaos.stopping.set()
            chaos.join(timeout=10)
        case.result = summarize(case, outputs, seconds)
        case.result["cpu"] = cpu / elapsed
        if killer is not None:
            case.result["killed"] = killed.get("node", "none")
        if chaos is not None:
            case.result["kills"] = chaos.kills
            if chaos.failures:
                case.result["kill_failures"] = chaos.failures[:3]
        if case.app == "analytics":
            case.result["stats"] = settle_analytics(case, port)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()


def wait_consoles(case: Case, timeout: float = 60.0) -> None:
    """Until every node of the case answers on its console (each opens it once running)."""
    from beamish.console import ConsoleClient, ConsoleError

    deadline = time.monotonic() + timeout
    for name in case.node_names():
        while True:
            try:
                ConsoleClient(name, timeout=10).close()
                break
            except (ConsoleError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"node {name} opened no console within {timeout:g} s") from None
                time.sleep(0.2)


def console(case: Case, source: str) -> None:
    """Run ``source`` in one of the app's nodes (any: what it calls finds the singleton),
    through its console."""
    from beamish.console import ConsoleClient, ConsoleError

    deadline = time.monotonic() + 60
    failures: list[str] = []
    while time.monotonic() < deadline:
        for name in case.node_names():
            try:
                client = ConsoleClient(name, timeout=60)
            except (ConsoleError, OSError) as error:  # restarting, or busy: the next
                failures.append(f"{name}: {type(error).__name__}: {error}")
                continue
            try:
                client.run("import beamish\nfrom examples.stream import studio\n"
                           "from examples.analytics import pipeline")
                answer = client.run(source)
                if answer.get("error") or answer.get("exception"):
                    raise RuntimeError(f"the node's console answered {answer}")
                return
            finally:
                client.close()
        time.sleep(0.5)
    raise RuntimeError(f"no node of {case.app} opened its console within 60 s: "
                       f"{failures[-1] if failures else ''}")


def settle_analytics(case: Case, port: int) -> dict[str, Any]:
    """Stop the events and let the counters catch up; what /stats says then."""
    console(case, "await pipeline.set_rate(0)")
    deadline = time.monotonic() + 20
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=60) as answer:
                stats = json.loads(answer.read())
        except OSError:  # 503 while the pipeline moves
            time.sleep(0.2)
            continue
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
        "reconnected": sum(o["reconnected"] for o in outputs),
        "unreconnected": sum(o["unreconnected"] for o in outputs),
        "outage_p50": pct(outages := [v for o in outputs for v in o["outages"]], 0.5),
        "outage_max": max(outages, default=0.0),
        "gap_p50": pct(gaps := [v for o in outputs for v in o["gaps"]], 0.5),
        "gap_p99": pct(gaps, 0.99), "gap_max": max(gaps, default=0.0),
        "back": sum(o["back"] for o in outputs),
        "join_retries": sum(o.get("join_retries", 0) for o in outputs),
    }



def rows_of(cases: list[Case]) -> list[list[str]]:
    rows = []
    for case in cases:
        r = case.result
        if case.failure or not r:
            rows.append([case.app, str(case.nodes), f"{case.clients:,}",
                         f"FAILED: {case.failure[:160]}", "", "", case.faults_shown, ""])
            continue
        shown = f"p50 {ms(r['p50'])}, p99 {ms(r['p99'])}"
        if case.app == "analytics":
            shown += (f"; publication to arrival p50 {ms(r['fanout_p50'])}, "
                      f"p99 {ms(r['fanout_p99'])}")
        if case.kill_node:
            faults = (f"node {r.get('killed')} SIGKILLed (it ran the {SINGLETONS[case.app]}); "
                      f"{r['lost']} connections lost, {r['reconnected']} reconnected (p50 "
                      f"{ms(r['outage_p50'])}, max {ms(r['outage_max'])}), "
                      f"{r['unreconnected']} not; longest wait for a frame per client p50 "
                      f"{ms(r['gap_p50'])}, p99 {ms(r['gap_p99'])}, max {ms(r['gap_max'])}; "
                      f"numbers or counts that went back: {r['back']}")
        elif case.faults:
            faults = (f"{case.faults:g}/s: {r.get('kills', 0)} killed; clients saw "
                      f"{r['errors']} errors, {r['rejoins']} rejoins, {r['lost']} connections "
                      f"lost; went back: {r['back']}")
        else:
            faults = f"none; {r['lost']} connections lost"
        if r.get("join_retries"):
            faults += f"; {r['join_retries']} joins tried again"
        if "stats" in r:
            s = r["stats"]
            faults += (f"; events made {s['made']:,}, counted {s['counted']:,}"
                       f" ({'all' if s['equal'] else 'NOT all'}), lost {s['lost']}")
        rows.append([
            case.app, str(case.nodes), f"{case.clients:,}", shown,
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
    parser.add_argument("--nodes", default="1",
                        help="node counts to run each case on (beamish run --nodes), e.g. 1,2")
    parser.add_argument("--kill-node", action="store_true",
                        help="also a case per app on the largest node count (at least 2) "
                             "where the node running its singleton is SIGKILLed")
    parser.add_argument("--quick", action="store_true", help="100 and 200 clients, 5 s")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        client_main(*json.loads(options.client))
        return
    if options.quick:
        options.clients, options.seconds = "100,200", 5.0
    # --nodes N: the nodes share a secret, which the consoles here need too (for one node,
    # the node's own cookie file is read)
    os.environ.setdefault("BEAMISH_COOKIE", secrets.token_urlsafe(24))
    counts = [int(n) for n in options.clients.split(",")]
    node_counts = [int(n) for n in options.nodes.split(",")]
    cases = []
    for app in options.apps.split(","):
        for nodes in node_counts:
            for n in counts:
                if n > MAX_PER_NODE * nodes:
                    print(f"# {app}: {n:,} clients on {nodes} node(s) is past what "
                          f"{nodes} process(es) may hold open here ({MAX_PER_NODE:,} "
                          "connections a node): not run", file=sys.stderr)
                    continue
                cases.append(Case(app, n, 0.0, nodes))
        if options.faults:  # on the largest cluster asked
            cases.append(Case(app, counts[0], options.faults, max(node_counts)))
        if options.kill_node:
            cases.append(Case(app, counts[0], 0.0, max(2, *node_counts), kill_node=True))
    load = load_average()
    began = time.time()
    for case in cases:
        print(f"# {case.app}, {case.nodes} node(s), {case.clients:,} clients, faults "
              f"{case.faults_shown}", file=sys.stderr, flush=True)
        try:
            run_case(case, options.seconds, options.segment_bytes)
        except Exception as exc:  # the other cases still run; the table says so
            case.failure = f"{type(exc).__name__}: {exc} (the nodes' log: {case.log})"
        print("  " + " | ".join(rows_of([case])[0]), file=sys.stderr, flush=True)
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began))}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, shared by the node and the "
        "clients (127.0.0.1); load average before: " + load,
        f"Python {sys.version.split()[0]}; {options.seconds:g} s measured per case "
        "after 2 s of warm-up; dashboard 50,000 events/s, a frame every 0.5 s; stream 10 "
        f"segments/s of {options.segment_bytes:,} bytes",
        f"the run took {(time.time() - began) / 60:.1f} min",
    ]
    print(report(header, ["example", "nodes", "clients",
                          "age at arrival (every frame, every client)",
                          "until the last client had it (per frame)", "kept up",
                          "faults", "node CPU"], rows_of(cases), options.markdown))


if __name__ == "__main__":
    main()
