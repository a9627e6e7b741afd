"""The social feed's fan-out: ``examples/feed`` on beamish against the same application on
Starlette with Redis pub/sub in ``broadcaster``'s design (``bench/feed_starlette.py``, which
says why not ``broadcaster`` itself), same load, one run.

    .venv/bin/python bench/feed.py [--followers 1000,10000] [--authors 100] [--follows 10]
                                   [--posts-per-second 20] [--seconds 15] [--nodes 1]
                                   [--markdown]

``--nodes 2``: beamish with ``beamish run --nodes 2`` (two nodes on one port, the author
topics crossing between them), Starlette with two uvicorn workers (Redis carrying the posts
between them), the same clients spread over both by the kernel.

For each server and each number of followers: a fresh server on a fresh SQLite database
seeded with the users (``f0``...: followers; ``a0``...: authors) and the follows (each
follower follows ``--follows`` authors, drawn with a fixed seed, so both servers get the
same graph); then every follower connects and waits until its timeline is live (beamish:
joined to ``timeline:<name>``; Starlette: subscribed to its followees' channels), in
processes of at most 5,000 connections. Then the authors post ``--posts-per-second``
posts a second, round-robin, for ``--seconds``; each post's body carries the time it was
sent. Each follower notes when each post of whom it follows arrived.

- **post to every follower**: the time from a post's sending to its arrival at a follower,
  p50 and p99 over every delivery, and per post the time until its last follower had it;
- **delivered**: the deliveries that arrived (within 30 s of the last post) against those
  due (each post, to each of its author's followers): every acknowledged post must reach
  every follower online;
- the server's CPU from the first post until the last delivery (``/proc``; Redis's own CPU
  is given beside Starlette's, since its fan-out runs there too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _procs import cpu_seconds, free_port, reconnect_after, tree_cpu
from _report import cpu_model, load_average, ms, pct, report

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "examples" / "feed" / "migrations" / "sqlite" / "001_feed.sql"
PER_PROCESS = 5_000
DRAIN = 30.0  # seconds the deliveries may take after the last post, at most
KINDS = ("starlette", "beamish")  # Starlette first: beamish's row gives the ratio to it
LABELS = {"beamish": "beamish examples/feed (a timeline process per user)",
          "starlette": "Starlette + Redis pub/sub (broadcaster's design)"}


# -- clients ---------------------------------------------------------------------------------


def clients_main(kind: str, url: str, names: list[str], post: dict[str, Any] | None) -> None:
    import uvloop

    uvloop.run(_clients(kind, url, names, post))


async def _clients(kind: str, url: str, names: list[str], post: dict[str, Any] | None) -> None:
    """Followers (``post`` None) or authors (``post``: rate and seconds). On beamish, a
    connection that closes during the run (its node was killed) is opened again and joined
    again, as phoenix.js does: a follower takes the posts of its join's window it had not
    seen; an author goes on posting, and only a post answered ``ok`` counts as made."""
    import orjson
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    received: dict[str, int] = dict.fromkeys(names, 0)
    latencies: list[float] = []
    last: dict[str, float] = {}  # post "author:k" -> latest arrival latency
    opening = asyncio.Semaphore(100)
    seen: dict[str, set[str]] = {name: set() for name in names}
    counts = {"resets": 0, "duplicates": 0, "reconnects": 0}
    running = {"on": True}

    def arrived(name: str, body: str, now: float) -> None:
        author, k, sent = body.split(":")
        key = f"{author}:{k}"
        if key in seen[name]:
            counts["duplicates"] += 1
            return
        seen[name].add(key)
        received[name] += 1
        latency = now - float(sent)
        latencies.append(round(latency, 2))
        if latency > last.get(key, -1.0):
            last[key] = round(latency, 2)

    def window(name: str, posts: list[dict[str, Any]], now: float) -> None:
        for shown in posts:
            if shown["body"].count(":") == 2:  # the bench's posts
                arrived(name, shown["body"], now)

    async def open_one(name: str) -> Any:
        async with opening:
            if kind == "beamish":
                ws = await connect(f"{url}/socket/websocket?vsn=2.0.0&user={name}",
                                   compression=None, ping_interval=None, open_timeout=120,
                                   max_queue=None)
                join = ["1", "1", f"timeline:{name}", "phx_join", {}]
                await ws.send(orjson.dumps(join).decode())
                while True:
                    frame = orjson.loads(await ws.recv())
                    if frame[3] == "phx_reply":
                        if frame[4]["status"] != "ok":
                            raise RuntimeError(f"{name}'s join was refused: {frame}")
                        window(name, frame[4]["response"].get("posts", ()),
                               time.time() * 1000)
                        break
            else:
                ws = await connect(f"{url}/ws?user={name}", compression=None,
                                   ping_interval=None, open_timeout=120, max_queue=None)
                if orjson.loads(await ws.recv()) != {"ready": True}:
                    raise RuntimeError(f"{name} was not made ready")
            return ws

    async def heartbeat(ws: Any) -> None:  # as phoenix.js does: every 30 s from the join
        refs = 0
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(30)
                refs += 1
                await ws.send(orjson.dumps([None, f"h{refs}", "phoenix", "heartbeat", {}])
                              .decode())

    beating: list[asyncio.Task[None]] = []

    async def open_and_beat(name: str) -> Any:
        ws = await open_one(name)
        if kind == "beamish":
            beating.append(asyncio.create_task(heartbeat(ws)))
        return ws

    async def reopen(name: str) -> Any:
        """phoenix.js's reconnection: after 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms,
        then every 5 s."""
        for tries in range(15):
            await asyncio.sleep(reconnect_after(tries))
            with contextlib.suppress(Exception):  # not up yet: the next try
                ws = await open_and_beat(name)
                counts["reconnects"] += 1
                return ws
        return None

    sockets: dict[str, Any] = dict(zip(names, await asyncio.gather(
        *(open_and_beat(name) for name in names)), strict=True))
    print("ready", flush=True)
    assert (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go"

    if post is not None:  # the authors (their posting is heartbeat enough)
        refs = 0
        interval = 1 / post["rate"]
        began = loop.time()
        sent = 0
        made: dict[str, int] = dict.fromkeys(names, 0)
        waiting: dict[str, str] = {}  # ref -> the post's key, until answered
        acked: list[str] = []

        async def answers(name: str) -> None:
            while running["on"]:
                ws = sockets.get(name)
                if ws is None:
                    await asyncio.sleep(0.05)
                    continue
                with contextlib.suppress(Exception):
                    async for data in ws:
                        frame = orjson.loads(data)
                        key = waiting.pop(frame[1], None) if frame[3] == "phx_reply" else None
                        if key is not None and frame[4]["status"] == "ok":
                            acked.append(key)
                if running["on"] and kind == "beamish":  # closed: its node went
                    sockets[name] = None
                    sockets[name] = await reopen(name)
                else:
                    return

        readers = [asyncio.create_task(answers(name)) for name in names]
        while loop.time() - began < post["seconds"]:
            name = names[sent % len(names)]
            ws = sockets.get(name)
            sent += 1
            if ws is not None:
                made[name] += 1
                body = f"{name}:{made[name]}:{time.time() * 1000:.3f}"
                with contextlib.suppress(Exception):  # a closed connection: not made
                    if kind == "beamish":
                        refs += 1
                        waiting[str(refs)] = f"{name}:{made[name]}"
                        await ws.send(orjson.dumps(["1", str(refs), f"timeline:{name}",
                                                    "post", {"body": body}]).decode())
                    else:
                        await ws.send(orjson.dumps({"post": body}).decode())
                        acked.append(f"{name}:{made[name]}")
            await asyncio.sleep(max(0.0, began + sent * interval - loop.time()))
        answered_by = loop.time() + DRAIN  # the last answers (a loaded node is late)
        while waiting and loop.time() < answered_by and kind == "beamish":
            await asyncio.sleep(0.1)
        running["on"] = False
        print(json.dumps({"made": made, "acked": acked, "unanswered": len(waiting),
                          "reconnects": counts["reconnects"]}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
        for task in readers:
            task.cancel()
        os._exit(0)

    async def listen(ws: Any, name: str) -> None:
        async for data in ws:
            now = time.time() * 1000
            message = orjson.loads(data)
            if kind == "beamish":
                if message[3] == "reset":  # its timeline restarted: the window, read again
                    counts["resets"] += 1
                    window(name, message[4]["posts"], now)
                    continue
                if message[3] != "post":  # a heartbeat's reply
                    continue
                body = message[4]["body"]
            else:
                body = message.get("body")
                if body is None:
                    continue
            arrived(name, body, now)

    closed = 0

    async def watched(ws: Any, name: str) -> None:
        nonlocal closed
        while ws is not None:
            with contextlib.suppress(Exception):  # closed with an error: counted all the same
                await listen(ws, name)
            closed += 1  # the connection ended before the run did
            if kind != "beamish" or not running["on"]:
                return
            ws = await reopen(name)

    listeners = [asyncio.create_task(watched(ws, name)) for name, ws in sockets.items()]
    listeners += beating
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
        print(json.dumps({"count": sum(received.values())}), flush=True)
    running["on"] = False
    for task in listeners:  # "stop"
        task.cancel()
    print(json.dumps({"received": received, "latencies": latencies, "last": last,
                      "closed": closed, "seen": {n: sorted(k) for n, k in seen.items()},
                      **counts}), flush=True)
    os._exit(0)


def redis_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


def graph(followers: int, authors: int, follows: int) -> dict[str, list[str]]:
    rng = random.Random(2026)
    names = [f"a{i}" for i in range(authors)]
    return {f"f{i}": rng.sample(names, follows) for i in range(followers)}


def seed(path: Path, follow: dict[str, list[str]], authors: int, schema: bool) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    if schema:
        conn.executescript(SCHEMA.read_text())
    now = int(time.time() * 1000)
    names = [f"a{i}" for i in range(authors)] + list(follow)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users (name, created_at) VALUES (?, ?)",
                     [(name, now) for name in names])
    ids = dict(conn.execute("SELECT name, id FROM users"))
    conn.executemany(
        "INSERT INTO follows (follower_id, followee_id) VALUES (?, ?)",
        [(ids[f], ids[a]) for f, followed in follow.items() for a in followed],
    )
    conn.execute("COMMIT")
    conn.close()


def wait_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen within 60 s")


def start_server(kind: str, port: int, db: Path, follow: dict[str, list[str]],
                 authors: int, nodes: int = 1) -> subprocess.Popen[Any]:
    """The server (``nodes`` beamish nodes, or Starlette on as many uvicorn workers)."""
    if kind == "beamish":
        def start(count: int) -> subprocess.Popen[Any]:
            with open(db.with_suffix(".log"), "a") as log:  # read if a row looks wrong
                server = subprocess.Popen(
                    [sys.executable, "-m", "beamish.cli", "run", "examples.feed.app:Feed",
                     "--port", str(port), "--name", "feedbench", "--log-level", "warning",
                     "--max-connections", "50000", "--nodes", str(count)],
                    cwd=ROOT, env={**os.environ, "FEED_DATABASE": str(db)},
                    stdout=subprocess.DEVNULL, stderr=log,
                )
            wait_port(port, server, "the beamish feed")
            return server

        first = start(1)  # one node makes the schema (two would race to)
        if nodes > 1:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=30)
        seed(db, follow, authors, schema=False)
        return first if nodes == 1 else start(nodes)
    seed(db, follow, authors, schema=True)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "feed_starlette.py"), str(port), str(nodes)],
        cwd=ROOT, env={**os.environ, "FEED_BENCH_DB": str(db)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port, server, "the Starlette feed")
    return server


def spawn_clients(kind: str, url: str, names: list[str], post: dict[str, Any] | None
                  ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--clients", json.dumps([kind, url, names, post])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )


def say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def hear(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


class Chaos(threading.Thread):
    """Kills a random online user's timeline ``rate`` times a second, through the nodes'
    consoles (its pages attach to its successor, which reads the window again)."""

    CODE = ("kids = await DynamicSupervisor.which_children('feed.timelines')\n"
            "pid = random.choice(kids).pid if kids else None\n"
            "if pid: beamish.exit(pid, 'kill')\nbool(pid)")

    def __init__(self, nodes: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.names = ["feedbench"] if nodes == 1 else [f"feedbench-{i + 1}"
                                                        for i in range(nodes)]
        self.rate = rate
        self.kills = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        from beamish.console import ConsoleClient

        consoles = [ConsoleClient(name, timeout=60) for name in self.names]
        for console in consoles:
            console.run("import random, beamish\nfrom beamish import DynamicSupervisor")
        rng = random.Random(5)
        try:
            while not self.stopping.wait(1 / self.rate):
                answer = rng.choice(consoles).run(self.CODE)
                if answer.get("result") == "True":
                    self.kills += 1
        finally:
            for console in consoles:
                console.close()


def kill_node(name: str, after: float, killed: dict[str, Any]) -> None:
    """SIGKILL the node ``name`` after ``after`` seconds (its pid from its console)."""
    from beamish.console import ConsoleClient

    time.sleep(after)
    console = ConsoleClient(name, timeout=30)
    try:
        pid = int(console.run("import os\nos.getpid()")["result"])
    finally:
        console.close()
    os.kill(pid, signal.SIGKILL)
    killed["node"] = name


def run(kind: str, followers: int, options: argparse.Namespace, tmp: Path,
        faults: float = 0.0, kill: bool = False) -> dict[str, Any]:
    follow = graph(followers, options.authors, options.follows)
    port = free_port()
    db = tmp / f"{kind}-{followers}-{faults:g}-{kill}.sqlite3"
    server = start_server(kind, port, db, follow, options.authors, options.nodes)
    url = f"ws://127.0.0.1:{port}"
    fleet: list[subprocess.Popen[str]] = []
    authors: subprocess.Popen[str] | None = None
    try:
        names = list(follow)
        for start in range(0, len(names), PER_PROCESS):
            fleet.append(spawn_clients(kind, url, names[start:start + PER_PROCESS], None))
        authors = spawn_clients(kind, url, [f"a{i}" for i in range(options.authors)],
                                {"rate": options.posts_per_second, "seconds": options.seconds})
        for process in [*fleet, authors]:
            if hear(process) != "ready":
                raise RuntimeError("a client process could not connect its clients")
        redis = redis_pid()
        cpu_before = tree_cpu(server.pid)
        redis_cpu = cpu_seconds(redis) if redis and kind == "starlette" else 0.0
        began = time.monotonic()
        chaos = Chaos(options.nodes, faults) if faults else None
        if chaos is not None:
            chaos.start()
        killed: dict[str, Any] = {}
        killer = threading.Thread(target=kill_node, args=("feedbench-1", options.seconds / 3,
                                                          killed), daemon=True)
        if kill:
            killer.start()
        for process in [*fleet, authors]:
            say(process, "go")
        authored = json.loads(hear(authors))
        made = authored["made"]  # sent; of which answered ok:
        acked_by: dict[str, set[str]] = {}
        for key in authored["acked"]:
            acked_by.setdefault(key.partition(":")[0], set()).add(key)
        if chaos is not None:  # the kills stop with the posts; then the drain
            chaos.stopping.set()
            chaos.join(timeout=30)
        due = sum(len(acked_by.get(a, ())) for followed in follow.values() for a in followed)
        # the followers count what they saw, answered or not: wait for every post sent (a
        # post sent and not answered, its node killed, may never come: then DRAIN s)
        sent_due = sum(made[a] for followed in follow.values() for a in followed)
        drained = time.monotonic() + DRAIN
        while time.monotonic() < drained:  # until every delivery arrived, or DRAIN seconds
            time.sleep(0.5)
            counts = []
            for process in fleet:
                say(process, "count")
                counts.append(json.loads(hear(process))["count"])
            if sum(counts) >= sent_due:
                break
        elapsed = time.monotonic() - began
        cpu = sum(v - cpu_before.get(pid, 0.0) for pid, v in tree_cpu(server.pid).items())
        if redis and kind == "starlette":
            redis_cpu = cpu_seconds(redis) - redis_cpu
        say(authors, "stop")
        outputs = []
        for process in fleet:
            say(process, "stop")
            outputs.append(json.loads(hear(process)))
    finally:
        for process in [*fleet, *([authors] if authors is not None else [])]:
            if process.poll() is None:
                process.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    received = delivered = short = 0
    for out in outputs:
        for name, keys in out["seen"].items():
            owed = set().union(*(acked_by.get(a, set()) for a in follow[name]))
            got = owed.intersection(keys)
            received += len(keys)
            delivered += len(got)
            short += len(got) != len(owed)
    latencies = sorted(v for out in outputs for v in out["latencies"])
    last: dict[str, float] = {}
    for out in outputs:
        for key, value in out["last"].items():
            last[key] = max(last.get(key, 0.0), value)
    return {"posts": sum(len(v) for v in acked_by.values()), "sent": sum(made.values()),
            "unanswered": authored.get("unanswered", 0), "delivered": delivered,
            "killed": killed.get("node"),
            "reconnects": sum(out.get("reconnects", 0) for out in outputs)
            + authored.get("reconnects", 0),
            "due": due, "received": received,
            "kills": chaos.kills if chaos is not None else 0,
            "resets": sum(out.get("resets", 0) for out in outputs),
            "duplicates": sum(out.get("duplicates", 0) for out in outputs),
            "closed": sum(out["closed"] for out in outputs),
            "short": short, "latencies": latencies, "last": sorted(last.values()),
            "cpu": cpu / elapsed, "redis_cpu": redis_cpu / elapsed}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", default="1000,10000")
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--follows", type=int, default=10)
    parser.add_argument("--posts-per-second", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--faults", type=float, default=0.0,
                        help="also a beamish run at the first follower count with this many "
                             "timelines killed a second")
    parser.add_argument("--kill-node", action="store_true",
                        help="also a beamish run (with --nodes 2 or more) at the first follower "
                             "count where a node is SIGKILLed a third into the posts")
    parser.add_argument("--nodes", type=int, default=1,
                        help="beamish nodes (beamish run --nodes) and Starlette's uvicorn "
                             "workers alike")
    parser.add_argument("--quick", action="store_true", help="200 followers, 5 s")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--clients", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.clients:
        clients_main(*json.loads(options.clients))
        return
    if options.quick:
        options.followers, options.seconds = "200", 5.0
    import tempfile

    load = load_average()
    began = time.time()
    rows = []
    results: dict[tuple[str, int], dict[str, Any]] = {}
    os.environ.setdefault("BEAMISH_COOKIE", secrets.token_urlsafe(24))  # the consoles'
    counts = [int(n) for n in options.followers.split(",")]
    cases = [(followers, kind, 0.0, False) for followers in counts
             for kind in options.kinds.split(",")]
    if options.faults and "beamish" in options.kinds.split(","):
        cases.append((counts[0], "beamish", options.faults, False))
    if options.kill_node:
        cases.append((counts[0], "beamish", 0.0, True))
    folder = tempfile.mkdtemp(prefix="feedbench-")  # kept: the servers' logs are in it
    print(f"# databases and the servers' logs: {folder}", file=sys.stderr, flush=True)
    for followers, kind, faults, kill in cases:
        label = LABELS[kind] + (f", {faults:g} timelines killed a second" if faults
                                else ", a node killed" if kill else "")
        print(f"# {label}, {followers:,} followers", file=sys.stderr, flush=True)
        try:
            result = run(kind, followers, options, Path(folder), faults, kill)
        except Exception as exc:  # the other cases still run; the table says so
            rows.append([label, f"{followers:,}",
                         f"FAILED: {type(exc).__name__}: {exc}"[:160], "", "", ""])
            continue
        if not faults and not kill:
            results[kind, followers] = result
        lat, last = result["latencies"], result["last"]
        base = results.get(("starlette", followers))
        ratio = (f" ({pct(lat, 0.99) / pct(base['latencies'], 0.99):.2f}x "
                 "Starlette's p99)" if base and kind == "beamish" else "")
        cpu = f"{result['cpu'] * 100:.0f}%"
        if kind == "starlette":
            cpu += f" + Redis {result['redis_cpu'] * 100:.0f}%"
        delivered = (f"{result['delivered']:,} of {result['due']:,} "
                     f"({result['posts']:,} posts); followers short: {result['short']}; "
                     f"connections closed: {result['closed']}")
        if kind == "beamish" and not kill and result["sent"] != result["posts"]:
            delivered += (f"; {result['sent']:,} posts sent, {result['posts']:,} answered "
                          f"ok (only those are owed), {result['unanswered']} unanswered, "
                          f"{result['reconnects']} connections opened again")
        if kill:
            delivered += (f"; node {result['killed']} SIGKILLed: {result['sent']:,} posts "
                          f"sent, {result['posts']:,} answered ok (only those are owed), "
                          f"{result['unanswered']} unanswered; {result['reconnects']} "
                          "connections opened again")
        if faults:
            delivered += (f"; {result['kills']} timelines killed, {result['resets']} "
                          f"resets read, {result['duplicates']} posts seen twice (dropped "
                          "by id, as the page does)")
        rows.append([
            label, f"{followers:,}",
            f"p50 {ms(pct(lat, 0.5))}, p99 {ms(pct(lat, 0.99))}{ratio}",
            f"p50 {ms(pct(last, 0.5))}, p99 {ms(pct(last, 0.99))}",
            delivered, cpu,
        ])
        print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began))}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, shared by the servers, Redis and "
        f"the clients (127.0.0.1); load average before: {load}",
        f"{options.authors} authors posting {options.posts_per_second:g} posts/s in all for "
        f"{options.seconds:g} s; each follower follows {options.follows} of them (so a post "
        "has followers/authors x follows followers); SQLite (WAL) for both; "
        f"{options.nodes} beamish node(s) and as many uvicorn workers for Starlette "
        "(server CPU summed over them)",
        f"the run took {(time.time() - began) / 60:.1f} min",
    ]
    print(report(header, ["implementation", "followers", "post to a follower (every delivery)",
                          "post to its last follower", "delivered", "server CPU"],
                 rows, options.markdown))


if __name__ == "__main__":
    main()
