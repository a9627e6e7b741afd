"""Nodes as a user runs them: `beamish run --name --cluster`, one OS process each, on NATS
and on Redis, with the test itself as one more node of the cluster.

Needs NATS at 127.0.0.1:4222 and Redis at 127.0.0.1:6379 (`.ci/run` starts them). Under
CI=true a server that cannot be reached fails the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import beamish
from beamish import Down, GenServer, NodeDown, NodeUp
from beamish.cluster import connect, global_names
from beamish.testing import assert_receive
from tests.integration.support import Lines, require

ROOT = Path(__file__).resolve().parents[2]
BEAMISH = str(Path(sys.executable).with_name("beamish"))
SECRET = "os-nodes-test-secret-0123456789"
TICK = 1.0
ENGINES = {"nats": ("nats://127.0.0.1:4222", 4222), "redis": ("redis://127.0.0.1:6379", 6379),
           "ipc": ("ipc://", None)}

pytestmark = pytest.mark.beamish(node="tester@test")


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(params=sorted(ENGINES))
def engine(request, tmp_path):
    url, port = ENGINES[request.param]
    if port is None:  # the sibling transport: a directory of sockets, no server
        return f"{url}{tmp_path / 'siblings'}"
    require(reachable(port), f"{request.param} is not running at 127.0.0.1:{port}: start it "
            "(`.ci/run` does; see the env page's command)")
    return url


class Nodes:
    """`beamish run` nodes of one cluster (a fresh cluster name per test)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cluster = f"t{uuid.uuid4().hex[:12]}"
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lines: dict[str, Lines] = {}

    def start(self, name: str, role: str = "") -> None:
        env = {**os.environ, "BEAMISH_COOKIE": SECRET, "NODEAPP_ROLE": role,
               "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [BEAMISH, "run", "tests.cluster.nodeapp:NodeApp", "--name", name, "--cluster",
             self.url, "--cluster-name", self.cluster, "--tick-time", str(TICK)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert proc.stdout is not None
        self.procs[name] = proc
        self.lines[name] = Lines(proc.stdout)
        self.lines[name].until(lambda line: "is running" in line, f"{name} running")

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait(10)

    def signal(self, name: str, signum: int) -> None:
        self.procs[name].send_signal(signum)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                code = proc.wait(40)  # generous: a loaded machine, remote children to stop
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(
                    f"{name} did not stop on SIGTERM:\n{self.output(name)}"
                ) from None
            self.lines[name]._thread.join(5)  # it read to the end: the stream can close
            assert proc.stdout is not None
            proc.stdout.close()
            assert code in (0, -9), f"{name} exited with {code}:\n{self.output(name)}"

    def output(self, name: str) -> str:
        return "\n".join(self.lines[name].seen)


async def join(url: str, cluster: str):
    return await connect(url, cluster=cluster, secret=SECRET, tick_time=TICK)


async def until(check, what: str, timeout: float = 15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert loop.time() < deadline, f"waited {timeout}s for {what}"
        await asyncio.sleep(0.05)


async def ask(node: str, request, timeout: float = 5.0):
    return await GenServer.call(("ctl", node), request, timeout=timeout)


async def ask_or_none(node: str, request):
    """The answer, or None while the node is not (yet) connected."""
    try:
        return await ask(node, request)
    except beamish.CallError:
        return None


async def test_a_genserver_is_called_across_os_processes(engine):
    nodes = Nodes(engine)
    member = await join(engine, nodes.cluster)
    try:
        nodes.start("host1@test")
        await until(lambda: "host1@test" in beamish.nodes(), "host1 to connect")
        assert await GenServer.call(("counter", "host1@test"), ("add", 2)) == (2, "host1@test")
        assert await GenServer.call(("counter", "host1@test"), ("add", 3)) == (5, "host1@test")
        # a pid that came over the wire calls as well as a name
        pid = await ask("host1@test", ("register_global", "g1"))
        assert pid[0] is True and pid[1].node == "host1@test"
        await until(lambda: global_names.whereis_name("g1") == pid[1], "the global name")
    finally:
        await member.stop()
        nodes.stop_all()


async def test_a_supervisor_restarts_on_another_node_a_child_whose_node_was_killed(engine):
    nodes = Nodes(engine)
    member = await join(engine, nodes.cluster)
    try:
        nodes.start("host1@test")
        nodes.start("sup@test", role="sup")
        worker = await until(lambda: ask_or_none("sup@test", "worker"), "the first worker")
        assert worker.node == "host1@test"
        nodes.start("host2@test")
        await until(lambda: "host2@test" in beamish.nodes(), "host2 to connect")
        ref = beamish.monitor(worker)
        nodes.kill("host1@test")  # kill -9: no goodbye; its peers find out by the silence
        await assert_receive(Down(ref, worker, "noconnection"), timeout=TICK * 4)

        async def moved():
            pid = await ask_or_none("sup@test", "worker")
            return pid if isinstance(pid, beamish.Pid) and pid.node == "host2@test" else None

        replacement = await until(moved, "the worker restarted on host2")
        assert await GenServer.call(replacement, "hi") == ("worker", "host2@test")
    finally:
        await member.stop()
        nodes.stop_all()


async def test_a_paused_node_is_down_then_heals_with_names_resolved_and_presence_converged(
    engine,
):
    nodes = Nodes(engine)
    member = await join(engine, nodes.cluster)
    try:
        nodes.start("a@test")
        nodes.start("b@test")
        await until(lambda: {"a@test", "b@test"} <= set(beamish.nodes()), "both nodes")
        await until(lambda: _equal(ask("a@test", "nodes"), ["b@test", "tester@test"]),
                    "a to see b")
        await ask("a@test", ("track", "user-a"))
        await ask("b@test", ("track", "user-b"))
        await until(lambda: _equal(ask("a@test", "presences"), ["user-a", "user-b"]),
                    "presence on a")
        ok, held_by_b = await ask("b@test", ("register_global", "svc"))
        assert ok
        await until(lambda: _equal(ask("a@test", ("whereis_global", "svc")), held_by_b),
                    "a to learn b's global name")
        beamish.monitor_nodes(True)
        ref = beamish.monitor(("ctl", "b@test"))
        nodes.signal("b@test", signal.SIGSTOP)
        # past the heartbeat period: monitors fire noconnection
        await assert_receive(Down(ref, ("ctl", "b@test"), "noconnection"), timeout=TICK * 4)
        await assert_receive(NodeDown("b@test", "noconnection"))
        await until(lambda: _equal(ask("a@test", "presences"), ["user-a"]),
                    "b's presence to leave a's view")
        # meanwhile a takes the name b held
        ok, held_by_a = await ask("a@test", ("register_global", "svc"))
        assert ok
        nodes.signal("b@test", signal.SIGCONT)
        await assert_receive(NodeUp("b@test"), timeout=TICK * 6)
        # healed: one holder for the name on every node, the other killed; presence converges
        winner = min(held_by_a, held_by_b)
        loser = max(held_by_a, held_by_b)
        for node in ("a@test", "b@test"):
            await until(lambda node=node: _equal(ask(node, ("whereis_global", "svc")), winner),
                        f"{node} to resolve the name")
        await until(lambda: _equal(ask(loser.node, ("alive", loser)), False),
                    "the loser to be killed")
        for node in ("a@test", "b@test"):
            await until(lambda node=node: _equal(ask(node, "presences"), ["user-a", "user-b"]),
                        f"presence to converge on {node}")
    finally:
        await member.stop()
        nodes.stop_all()


async def _equal(awaitable, expected) -> bool:
    try:
        return bool(await awaitable == expected)
    except beamish.CallError:
        return False


@pytest.mark.parametrize(("url", "cookie", "says"), [
    ("nats://127.0.0.1:4222", None, "set BEAMISH_COOKIE"),
    ("nats://127.0.0.1:4222", "short", "at least 16 bytes"),
    ("redis://127.0.0.1:1", SECRET, "cannot connect to Redis at redis://127.0.0.1:1"),
])
def test_a_node_that_cannot_join_exits_with_code_6(url, cookie, says):
    env = {k: v for k, v in os.environ.items() if k != "BEAMISH_COOKIE"}
    if cookie is not None:
        env["BEAMISH_COOKIE"] = cookie
    done = subprocess.run(
        [BEAMISH, "run", "tests.cluster.nodeapp:NodeApp", "--cluster", url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 6, done.stderr
    assert says in done.stderr and "exit code 6" in done.stderr
    assert SECRET not in done.stderr  # the secret never reaches a log
