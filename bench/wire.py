"""The cost of crossing to another node, on the sending node: the wire codec, and a send.

    .venv/bin/python bench/wire.py [--rounds 5] [--markdown]

Rows, each the median of ``--rounds`` (min to max):

- encode / decode of three operations as the cluster sends them (an int, a tuple of a pid
  and an int, a tuple of three strings and an int) with beamish's codec (explicit types:
  tuples, pids and records as msgpack extension types), beside ``msgpack.packb`` and
  ``unpackb`` on the same values with tuples as arrays, which keep no types: the peer for
  what the types cost;
- a send to ``(name, node)``: 100,000 ``send`` calls in one actor's handler to a name on
  another node of an in-process cluster (``local_cluster``), timed inside the handler: the
  sender's whole cost (the codec, the queue, the early flushes), without the far side's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import timeit
from importlib import metadata
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).parent))
from _report import cpu_model, load_average, report

import beamish
from beamish import Actor, Runtime, receive, send
from beamish.cluster import Codec
from beamish.cluster._nodes import NodeTable
from beamish.testing import local_cluster

SENDS = 100_000


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})"


class Sender(Actor):
    def __init__(self, dest: tuple[str, str], out: beamish.Pid) -> None:
        self.dest, self.out = dest, out

    def handle(self, message: object) -> None:
        dest = self.dest
        began = time.perf_counter()
        for i in range(SENDS):
            send(dest, i)
        send(self.out, time.perf_counter() - began)


async def measure(rounds: int) -> tuple[list[list[str]], str]:
    rows = []
    async with Runtime(node="a@bench", long_schedule=None) as runtime, runtime.as_process():
        codec = Codec(NodeTable(runtime), runtime)
        me = beamish.self()
        terms = {
            "an int": [2, "sink", 5],
            "a tuple (pid, int)": [1, 7, (me, 5)],
            "a tuple of 3 strings and an int": [1, 7, ("chat", "lobby", "hello world", 3)],
        }
        for name, term in terms.items():
            data = codec.encode(term)
            plain = msgpack.packb(term, default=lambda p: [p.node, p.id])
            runs: dict[str, list[float]] = {k: [] for k in ("enc", "dec", "penc", "pdec")}
            for _ in range(rounds):
                n = 50_000
                runs["enc"].append(timeit.timeit(lambda t=term: codec.encode(t), number=n)
                                   / n * 1e6)
                runs["dec"].append(timeit.timeit(lambda d=data: codec.decode(d), number=n)
                                   / n * 1e6)
                runs["penc"].append(timeit.timeit(
                    lambda t=term: msgpack.packb(t, default=lambda p: [p.node, p.id]),
                    number=n) / n * 1e6)
                runs["pdec"].append(timeit.timeit(lambda d=plain: msgpack.unpackb(d),
                                                  number=n) / n * 1e6)
            ratio = statistics.median(runs["enc"]) / statistics.median(runs["penc"])
            rows.append([f"encode {name}", "beamish codec", spread(runs["enc"]),
                         f"{ratio:.2f}x msgpack.packb"])
            rows.append([f"encode {name}", "msgpack.packb", spread(runs["penc"]), ""])
            ratio = statistics.median(runs["dec"]) / statistics.median(runs["pdec"])
            rows.append([f"decode {name}", "beamish codec", spread(runs["dec"]),
                         f"{ratio:.2f}x msgpack.unpackb"])
            rows.append([f"decode {name}", "msgpack.unpackb", spread(runs["pdec"]), ""])
        async with local_cluster("b@bench"):
            per_send = []
            for _ in range(rounds):
                sender = beamish.spawn(Sender(("nobody", "b@bench"), beamish.self()))
                send(sender, "go")
                per_send.append(await receive(timeout=60) / SENDS * 1e6)
                beamish.exit(sender, "kill")
                await asyncio.sleep(0.3)  # the far node drains what came
            rows.append(["send to (name, node), on the sender", "beamish",
                         spread(per_send), ""])
    return rows, f"msgpack {metadata.version('msgpack')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    options = parser.parse_args()
    load = load_average()
    rows, versions = asyncio.run(measure(options.rounds))
    header = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"machine: {cpu_model()}; load average {load} before",
        f"Python {sys.version.split()[0]}, {versions}",
        f"{options.rounds} rounds per row: median (min to max), microseconds per operation",
    ]
    print(report(header, ["workload", "implementation", "µs each", "ratio"], rows,
                 options.markdown))


if __name__ == "__main__":
    main()
