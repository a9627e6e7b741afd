"""The far side of bench/cluster.py, one OS process each (started by it, not by hand).

    python bench/cluster_node.py node URL CLUSTER NAME SUBSCRIBERS
        a beamish node: an echo and a sink (registered), and SUBSCRIBERS PubSub subscribers
        to topic "t" with a counter that tells the bench when all of them got a broadcast
    python bench/cluster_node.py bare-nats URL SUBJECT | bare-redis URL SUBJECT
        the engine's own client echoing SUBJECT.ping to SUBJECT.pong (the bare baseline)

It prints "ready" when it is, and runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import beamish
from beamish import Actor, Runtime, send
from beamish.cluster import connect
from beamish.pubsub import PubSub


class Echo(Actor):
    def handle(self, message: Any) -> None:
        sender, value = message
        send(sender, value)


class Sink(Actor):
    """Counts messages; tells whoever asked when the expected number has come."""

    def __init__(self) -> None:
        self.left = 0
        self.tell: Any = None

    def handle(self, message: Any) -> None:
        if type(message) is tuple and message[0] == "expect":
            _, self.left, self.tell = message
            return
        self.left -= 1
        if self.left == 0:
            send(self.tell, "done")


class Counter(Actor):
    """Counts, per broadcast, the local subscribers that got it; tells the bench at N."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.got: dict[int, int] = {}

    def handle(self, message: Any) -> None:
        _, k, bench = message
        count = self.got.get(k, 0) + 1
        if count == self.n:
            self.got.pop(k, None)
            send(bench, ("done", k, beamish.node()))
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


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def node(url: str, cluster: str, name: str, subscribers: int) -> None:
    async with Runtime(node=name, long_schedule=None) as runtime:
        member = await connect(url, cluster=cluster, tick_time=60, runtime=runtime)
        async with runtime.as_process():
            beamish.register("echo", beamish.spawn(Echo()))
            beamish.register("sink", beamish.spawn(Sink()))
            await PubSub.start_link("ps")
            if subscribers:
                counter = beamish.spawn(Counter(subscribers))
                beamish.register("counter", counter)
                for _ in range(subscribers):
                    send(beamish.spawn(Subscriber(counter)), "subscribe")
            print("ready", flush=True)
            await stdin_closed()
        await member.stop()


async def bare_nats(url: str, subject: str) -> None:
    import nats

    nc = await nats.connect(url)

    async def echo(msg: Any) -> None:
        await nc.publish(f"{subject}.pong", msg.data)

    await nc.subscribe(f"{subject}.ping", cb=echo)
    await nc.flush()
    print("ready", flush=True)
    await stdin_closed()
    await nc.close()


async def bare_redis(url: str, subject: str) -> None:
    import redis.asyncio as redis

    sub, pub = redis.Redis.from_url(url), redis.Redis.from_url(url)
    pubsub = sub.pubsub()
    await pubsub.subscribe(f"{subject}.ping")
    while (await pubsub.get_message(timeout=1.0)) is None:
        pass  # the subscription's confirmation
    print("ready", flush=True)
    closed = asyncio.ensure_future(stdin_closed())
    while not closed.done():
        message = await pubsub.get_message(timeout=0.5)
        if message is not None and message["type"] == "message":
            await pub.publish(f"{subject}.pong", message["data"])
    await sub.aclose()
    await pub.aclose()


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "node":
        url, cluster, name, subscribers = args
        profile = os.environ.get("BEAMISH_BENCH_PROFILE")  # a path: cProfile this node
        if profile:
            import cProfile

            cProfile.runctx("asyncio.run(node(url, cluster, name, int(subscribers)))",
                            globals(), locals(), profile)
        else:
            asyncio.run(node(url, cluster, name, int(subscribers)))
    elif mode == "bare-nats":
        asyncio.run(bare_nats(*args))
    elif mode == "bare-redis":
        asyncio.run(bare_redis(*args))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
