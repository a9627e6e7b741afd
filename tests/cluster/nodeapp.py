"""The application the cluster's OS-process tests run on each node, with `beamish run
tests.cluster.nodeapp:NodeApp --name ... --cluster ...`.

Every node runs: ``counter`` (a GenServer that adds), ``host`` (starts workers for other
nodes' supervisors), a PubSub ``ps`` with a tracker ``t``, and ``ctl`` (what the tests ask of
the node). With NODEAPP_ROLE=sup the node also runs ``remote_workers``: a supervisor whose
one child is a worker started on *another* node, so that killing that node makes the
supervisor restart the worker elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

import beamish
from beamish import (
    Application,
    ChildSpec,
    GenServer,
    NoReply,
    Ok,
    Pid,
    Reply,
    StartType,
    Supervisor,
    receive,
)
from beamish.cluster import global_names
from beamish.pubsub import PubSub, Tracker


class Counter(GenServer):
    def init(self, arg: Any) -> Ok:
        return Ok(0)

    def handle_call(self, request: Any, from_: Any, state: int) -> Reply:
        match request:
            case ("add", int(n)):
                return Reply((state + n, beamish.node()), state + n)
        return Reply(("error", "unknown"), state)


class Worker(GenServer):
    def init(self, arg: Any) -> Ok:
        return Ok(arg)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        return Reply(("worker", beamish.node()), state)


class Host(GenServer):
    """Starts a Worker here for a supervisor elsewhere (it links to it itself)."""

    def init(self, arg: Any) -> Ok:
        return Ok(None)

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        if request == "start_worker":
            return Reply(await Worker.start(None), state)
        return Reply(("error", "unknown"), state)


async def start_remote_worker() -> Pid:
    """A supervisor's child start: a Worker on another node that runs a host, linked to the
    supervisor (this runs in the supervisor's process). Waits for such a node to connect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        for node in beamish.nodes():
            if node.startswith("host"):
                try:
                    pid: Pid = await GenServer.call(("host", node), "start_worker", timeout=2.0)
                except beamish.CallError:
                    continue
                beamish.link(pid)
                return pid
        if loop.time() > deadline:
            raise RuntimeError(f"no host node to start a worker on (nodes: {beamish.nodes()})")
        await asyncio.sleep(0.05)


async def idle() -> None:
    await receive(lambda m: False)


class Control(GenServer):
    """What the tests ask of a node."""

    def init(self, arg: Any) -> Ok:
        return Ok(None)

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        match request:
            case "nodes":
                return Reply(beamish.nodes(), state)
            case ("register_global", name):
                pid = beamish.spawn(idle)
                return Reply((global_names.register_name(name, pid), pid), state)
            case ("whereis_global", name):
                return Reply(global_names.whereis_name(name), state)
            case ("alive", Pid() as pid):
                return Reply(beamish.process_info(pid) is not None, state)
            case ("track", key):
                pid = beamish.spawn(idle)
                await Tracker.track("t", pid, "room", key, {"node": beamish.node()})
                return Reply(pid, state)
            case "presences":
                return Reply(sorted(k for k, _ in Tracker.list("t", "room")), state)
            case "worker":
                children = await Supervisor.which_children("remote_workers")
                return Reply(children[0].pid if children else None, state)
        return Reply(("error", "unknown", request), state)

    def handle_info(self, message: Any, state: Any) -> NoReply:
        return NoReply(state)


class Presence(Tracker):
    def handle_diff(self, diffs: Any, state: Any) -> Ok:
        return Ok(state)


def _named(server: type[GenServer], name: str) -> ChildSpec:
    return ChildSpec(id=name, start=(functools.partial(server.start_link, name=name), (None,)))


class NodeApp(Application):
    async def start(self, start_type: StartType, args: Any) -> Pid:
        children: list[Any] = [
            _named(Counter, "counter"),
            _named(Host, "host"),
            _named(Control, "ctl"),
            (PubSub, {"name": "ps"}),
            (Presence, {"name": "t", "pubsub": "ps", "broadcast_period": 0.1,
                        "down_period": 1.5}),
        ]
        if os.environ.get("NODEAPP_ROLE") == "sup":
            workers = functools.partial(
                Supervisor.start_link, name="remote_workers", max_restarts=10, max_seconds=60
            )
            children.append(ChildSpec(
                id="remote_workers", type="supervisor",
                start=(workers, ([ChildSpec(id="w", start=(start_remote_worker, ()))],)),
            ))
        return await Supervisor.start_link(children, strategy="one_for_one")
