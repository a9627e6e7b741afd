"""Cross-node benchmarks: beamish nodes over NATS and Redis, beside distributed Erlang and the
engines' own Python clients, measured in one run on this machine.

    .venv/bin/python bench/cluster.py [--quick] [--markdown] [--rounds N]

Each beamish node is an OS process (this one is node A; bench/cluster_node.py runs the
others). Rows:

- ping-pong: one process on A sends to a registered echo on B and waits for the answer;
- fan-in: 1,000 processes on A each send M messages to one registered sink on B;
- bare ping-pong: nats-py / redis-py clients echoing through the engine, no beamish;
- distributed Erlang (``erl``, two local nodes): the same ping-pong and fan-in
  (bench/erlang/dist_bench.erl);
- broadcast: one PubSub broadcast to 10,000 subscribers over 3 nodes: the time until every
  subscriber has it, and the engine messages it cost.

Each row runs ``--rounds`` times; the table gives the median, the spread (min to max) and the
ratio to the anchor named in the row. Needs NATS at 127.0.0.1:4222, Redis at 127.0.0.1:6379
and ``erl`` (OTP 25 here; ``apt-get install erlang-base`` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

import beamish
from beamish import Actor, Runtime, receive, send
from beamish.cluster import connect
from beamish.pubsub import PubSub

HERE = Path(__file__).parent
ENGINES = {"NATS": "nats://127.0.0.1:4222", "Redis": "redis://127.0.0.1:6379"}
SECRET = "bench-cluster-secret-0123456789"
HOST = socket.gethostname()


class Side:
    """An OS process running bench/cluster_node.py; closed by closing its stdin."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "BEAMISH_COOKIE": SECRET}
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "cluster_node.py"), *args], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"bench/cluster_node.py {' '.join(args)} did not start: {line!r}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- beamish ----------------------------------------------------------------------------------


async def ping_pong(peer: str, rounds: int) -> float:
    me = beamish.self()
    echo = ("echo", peer)
    for i in range(200):  # warm up
        send(echo, (me, i))
        await receive()
    start = time.perf_counter()
    for i in range(rounds):
        send(echo, (me, i))
        await receive()
    return rounds / (time.perf_counter() - start)


class Sender(Actor):
    def __init__(self, dest: Any, count: int) -> None:
        self.dest, self.count = dest, count

    def handle(self, message: Any) -> None:
        dest = self.dest
        for i in range(self.count):
            send(dest, i)


async def fan_in(peer: str, senders: int, messages: int) -> float:
    total = senders * messages
    send(("sink", peer), ("expect", total, beamish.self()))
    pids = [beamish.spawn(Sender(("sink", peer), messages)) for _ in range(senders)]
    start = time.perf_counter()
    for pid in pids:
        send(pid, "go")
    await receive(lambda m: m == "done", timeout=120)
    elapsed = time.perf_counter() - start
    for pid in pids:
        beamish.exit(pid, "kill")
    return total / elapsed


class Counter(Actor):
    def __init__(self, n: int, bench: beamish.Pid) -> None:
        self.n, self.bench, self.got = n, bench, {}

    def handle(self, message: Any) -> None:
        _, k, _bench = message
        count = self.got.get(k, 0) + 1
        if count == self.n:
            self.got.pop(k, None)
            send(self.bench, ("done", k, beamish.node()))
        else:
            self.got[k] = count


class Subscriber(Actor):
    def __init__(self, counter: beamish.Pid) -> None:
        self.counter = counter

    def handle(self, message: Any) -> None:
        if message == "subscribe":  # in the process: PubSub subscribes the caller
            PubSub.subscribe("ps", "t")
        else:
            send(self.counter, message)


async def beamish_rows(engine: str, url: str, options: argparse.Namespace) -> list[list[str]]:
    cluster = f"bench{uuid.uuid4().hex[:8]}"
    rows = []
    per_node = options.subscribers // 3
    sides = [Side("node", url, cluster, f"bench-{n}@{HOST}", str(per_node)) for n in "bc"]
    try:
        async with Runtime(node=f"bench-a@{HOST}", long_schedule=None) as runtime:
            member = await connect(url, cluster=cluster, secret=SECRET, tick_time=60,
                                   runtime=runtime)
            try:
                async with runtime.as_process():
                    peers = {f"bench-b@{HOST}", f"bench-c@{HOST}"}
                    deadline = time.monotonic() + 20
                    while set(beamish.nodes()) != peers:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"nodes did not connect: {beamish.nodes()}")
                        await asyncio.sleep(0.05)
                    b = f"bench-b@{HOST}"
                    pp = [await ping_pong(b, options.pings) for _ in range(options.rounds)]
                    fi = [await fan_in(b, options.senders, options.messages)
                          for _ in range(options.rounds)]
                    latency, frames = await broadcast(member, options, per_node, peers)
            finally:
                await member.stop()
    finally:
        for side in sides:
            side.close()
    rows.append(("ping-pong", f"beamish over {engine}", f"{options.pings:,} round trips",
                 pp, "round trips/s"))
    rows.append(("fan-in", f"beamish over {engine}",
                  f"{options.senders:,} senders x {options.messages:,}", fi, "msgs/s"))
    rows.append((f"broadcast to {options.subscribers:,} subscribers on 3 nodes",
                 f"beamish over {engine}",
                 f"{options.broadcasts} broadcasts", latency, "ms to the last subscriber"))
    rows.append(("broadcast: engine messages", f"beamish over {engine}", "per broadcast",
                 frames, "messages"))
    return rows  # type: ignore[return-value]


async def broadcast(member: Any, options: argparse.Namespace, per_node: int,
                    peers: set[str]) -> tuple[list[float], list[float]]:
    await PubSub.start_link("ps")
    here = options.subscribers - 2 * per_node
    counter = beamish.spawn(Counter(here, beamish.self()))
    subscribers = [beamish.spawn(Subscriber(counter)) for _ in range(here)]
    for pid in subscribers:
        send(pid, "subscribe")
    await asyncio.sleep(0.5)  # every node's subscribers have subscribed
    latencies, frames = [], []
    for k in range(options.broadcasts):
        before = member.frames_out
        start = time.perf_counter()
        PubSub.broadcast("ps", "t", ("b", k, beamish.self()))
        done = set()
        while len(done) < 3:
            _, got, node = await receive(lambda m: type(m) is tuple and m[0] == "done",
                                         timeout=60)
            if got == k:
                done.add(node)
        latencies.append((time.perf_counter() - start) * 1000)
        frames.append(float(member.frames_out - before))
    for pid in [*subscribers, counter]:
        beamish.exit(pid, "kill")
    return latencies, frames


# -- the anchors --------------------------------------------------------------------------------


async def bare_nats(url: str, rounds: int) -> float:
    import nats

    subject = f"bare{uuid.uuid4().hex[:8]}"
    side = Side("bare-nats", url, subject)
    try:
        nc = await nats.connect(url)
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def pong(msg: Any) -> None:
            got.put_nowait(msg.data)

        await nc.subscribe(f"{subject}.pong", cb=pong)
        await nc.flush()
        for _ in range(200):
            await nc.publish(f"{subject}.ping", b"x")
            await got.get()
        start = time.perf_counter()
        for _ in range(rounds):
            await nc.publish(f"{subject}.ping", b"x")
            await got.get()
        rate = rounds / (time.perf_counter() - start)
        await nc.close()
        return rate
    finally:
        side.close()


async def bare_redis(url: str, rounds: int) -> float:
    import redis.asyncio as redis

    subject = f"bare{uuid.uuid4().hex[:8]}"
    side = Side("bare-redis", url, subject)
    try:
        sub, pub = redis.Redis.from_url(url), redis.Redis.from_url(url)
        pubsub = sub.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{subject}.pong")
        await asyncio.sleep(0.2)

        async def one() -> None:
            await pub.publish(f"{subject}.ping", b"x")
            while (await pubsub.get_message(timeout=5.0)) is None:
                pass

        for _ in range(200):
            await one()
        start = time.perf_counter()
        for _ in range(rounds):
            await one()
        rate = rounds / (time.perf_counter() - start)
        await sub.aclose()
        await pub.aclose()
        return rate
    finally:
        side.close()


def erlang(options: argparse.Namespace) -> tuple[list[float], list[float]]:
    erl, erlc = shutil.which("erl"), shutil.which("erlc")
    if erl is None or erlc is None:
        raise RuntimeError("erl is not installed (apt-get install erlang-base)")
    pings, fanins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([erlc, "-o", tmp, str(HERE / "erlang" / "dist_bench.erl")], check=True)
        for _ in range(options.rounds):
            tag = uuid.uuid4().hex[:8]
            cookie = ["-setcookie", f"bench{tag}"]
            b = subprocess.Popen([erl, "-sname", f"b{tag}", *cookie, "-noshell", "-pa", tmp,
                                  "-eval", "dist_bench:serve()"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1.0)
                args = f'["b{tag}@{HOST}", "{options.pings}", "{options.senders}", ' \
                       f'"{options.messages}"]'
                out = subprocess.run(
                    [erl, "-sname", f"a{tag}", *cookie, "-noshell", "-pa", tmp,
                     "-eval", f"dist_bench:run({args})"],
                    capture_output=True, text=True, timeout=120, check=True,
                ).stdout
            finally:
                b.terminate()
                b.wait(10)
            values = dict(line.split() for line in out.splitlines() if line.count(" ") == 1)
            pings.append(float(values["pingpong"]))
            fanins.append(float(values["fanin"]))
    return pings, fanins


def erl_version() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["erl", "-noshell", "-eval",
             'io:format("~s", [erlang:system_info(otp_release)]), halt().'],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()
    return "?"


def tool_version(command: list[str]) -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    return "?"


# -- the table ----------------------------------------------------------------------------------


def fmt(values: list[float], unit: str) -> str:
    median = statistics.median(values)
    digits = 1 if median < 100 else 0
    spread = f"{min(values):,.{digits}f} to {max(values):,.{digits}f}"
    return f"{median:,.{digits}f} {unit} ({spread})"


async def run(options: argparse.Namespace) -> str:
    rows: list[list[str]] = []
    erl_pp, erl_fi = erlang(options)
    anchors: dict[str, float] = {
        "erlang ping-pong": statistics.median(erl_pp), "erlang fan-in": statistics.median(erl_fi),
    }
    measured: list[tuple[str, str, str, list[float], str]] = [
        ("ping-pong", "distributed Erlang (2 local nodes)", f"{options.pings:,} round trips",
         erl_pp, "round trips/s"),
        ("fan-in", "distributed Erlang (2 local nodes)",
         f"{options.senders:,} senders x {options.messages:,}", erl_fi, "msgs/s"),
    ]
    for engine, url in ENGINES.items():
        bare_fn = bare_nats if engine == "NATS" else bare_redis
        bare = [await bare_fn(url, options.pings) for _ in range(options.rounds)]
        anchors[f"bare {engine}"] = statistics.median(bare)
        client = "nats-py" if engine == "NATS" else "redis-py"
        measured.append(("ping-pong", f"bare {engine} client ({client})",
                         f"{options.pings:,} round trips", bare, "round trips/s"))
        measured += await beamish_rows(engine, url, options)  # type: ignore[arg-type]
    for workload, peer, size, values, unit in measured:
        median = statistics.median(values)
        ratio = ""
        if workload == "ping-pong" and peer.startswith("beamish"):
            engine = peer.split()[-1]
            ratio = (f"{median / anchors[f'bare {engine}']:.2f}x bare {engine} (target 0.80); "
                     f"{median / anchors['erlang ping-pong']:.2f}x Erlang")
        elif workload == "fan-in" and peer.startswith("beamish"):
            ratio = f"{median / anchors['erlang fan-in']:.2f}x Erlang (target 1.00)"
        elif workload == "ping-pong" and peer.startswith("bare"):
            ratio = f"{median / anchors['erlang ping-pong']:.2f}x Erlang"
        rows.append([workload, peer, size, fmt(values, unit), ratio])
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}",
        f"Python {sys.version.split()[0]}, OTP {erl_version()}, "
        f"{tool_version(['nats-server', '--version'])}, "
        f"{tool_version(['redis-server', '--version'])}, nats-py "
        f"{metadata.version('nats-py')}, redis-py {metadata.version('redis')}, msgpack "
        f"{metadata.version('msgpack')}",
        f"{options.rounds} rounds per row: median (min to max)",
    ]
    return report(header, ["workload", "peer", "size", "median (spread)", "ratio"], rows,
                  options.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    options.pings = 2_000 if options.quick else 10_000
    options.senders = 1_000
    options.messages = 10 if options.quick else 100
    options.subscribers = 1_000 if options.quick else 10_000
    options.broadcasts = 5 if options.quick else 20
    if options.quick:
        options.rounds = 1
    print(asyncio.run(run(options)))


if __name__ == "__main__":
    main()
