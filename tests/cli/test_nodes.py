"""``beamish run --nodes N``: N nodes on one listening address, one cluster, supervised by a
parent that restarts a node that dies, restarts them one at a time on SIGHUP and stops them
all on SIGTERM. Real OS processes, real HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.phx import PhxClient
from tests.integration.support import Lines, require

ROOT = Path(__file__).resolve().parents[2]
RUNNING = re.compile(r"'web_app' is running \(pid (\d+)\)")
ALL_RUNNING = re.compile(r"(\d+) nodes of 'web_app' are running")


def reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Parent:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beamish", "run", "tests.cluster.webapp:WebApp",
             "--port", str(self.port), "--shutdown-timeout", "5", "--tick-time", "2", *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stderr is not None
        self.log = Lines(self.proc.stderr)
        self.url = f"http://127.0.0.1:{self.port}"

    def running(self, count: int) -> list[int]:
        """Waits for the parent to say its nodes run; the nodes' pids, as they said."""
        self.log.until(ALL_RUNNING.search, f"{count} nodes running")
        return [int(m.group(1)) for line in self.log.seen if (m := RUNNING.search(line))]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def output(self) -> str:
        """Everything logged, to the end (once the parent and its nodes have exited)."""
        try:
            self.log.until(lambda _: False, "the end of the log", timeout=10)
        except AssertionError as ended:
            assert "the stream ended" in str(ended), ended
        return self.log.text

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # its nodes get SIGTERM from the kernel (PR_SET_PDEATHSIG)
            self.proc.wait(timeout=10)
        self.log.close()  # read to the end: every node has closed the pipe
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@pytest.fixture
def parent():
    made: list[Parent] = []

    def make(*args: str, **kw) -> Parent:
        made.append(Parent(*args, **kw))
        return made[-1]

    yield make
    for p in made:
        p.close()


async def answers(url: str, tries: int = 40) -> set[str]:
    """The node names that answered ``GET /node`` over ``tries`` new connections."""
    names = set()
    for _ in range(tries):
        async with httpx.AsyncClient() as client:
            names.add((await client.get(f"{url}/node", timeout=5)).text)
    return names


async def until(check, what: str, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"waited {timeout}s for {what}"
        await asyncio.sleep(0.2)
    return result


@pytest.mark.parametrize("engine", ["siblings", "nats"])
async def test_two_nodes_share_the_port_and_a_broadcast_crosses_them(parent, engine):
    if engine == "nats":  # with --cluster, the nodes join that engine's cluster instead
        require(reachable(4222), "NATS is not running at 127.0.0.1:4222 (`.ci/run` starts it)")
        p = parent("--nodes", "2", "--cluster", "nats://127.0.0.1:4222", "--cluster-name",
                   f"nodes{os.urandom(4).hex()}",
                   env={"BEAMISH_COOKIE": "nodes-test-secret-0123456789"})
    else:
        p = parent("--nodes", "2")
    assert len(p.running(2)) == 2
    assert await answers(p.url) == {f"web_app-1@{socket.gethostname()}",
                                    f"web_app-2@{socket.gethostname()}"}
    seen: dict = {}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(40):  # the kernel picks the node: connect until both are reached
            client = await stack.enter_async_context(PhxClient.connect(p.url))
            status, reply = await client.join("room:lobby", {})
            assert status == "ok"
            seen.setdefault(reply["node"], client)
            if len(seen) == 2:
                break
        assert len(seen) == 2, f"every connection reached {set(seen)}"
        (a_node, a), (b_node, b) = seen.items()
        # siblings meet within a scan of their directory, not the next heartbeat (15 s)
        got = await until(lambda: _shout_crosses(a, b), "a broadcast to cross the nodes",
                          timeout=5.0)
        assert got["via"] == a_node and b_node != a_node
        # a broadcast from an HTTP request's process reaches the sockets of both nodes
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{p.url}/shout", content=b"from http")).text == "ok"
        for client in (a, b):
            heard = await client.receive("room:lobby", "shout",
                                         lambda m: m["text"] == "from http", timeout=5)
            assert heard["via"] in seen
    assert p.stop() == 0
    assert p.output().count("exit code 0: stopped cleanly") == 2  # each node's own word


async def _shout_crosses(a: PhxClient, b: PhxClient) -> dict | None:
    """A shout from ``a`` as ``b`` received it, or None (the nodes may still be meeting)."""
    text = os.urandom(4).hex()
    await a.push("room:lobby", "shout", {"text": text})
    try:
        return await b.receive("room:lobby", "shout", lambda m: m["text"] == text, timeout=0.5)
    except AssertionError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_node_killed_is_started_again_and_serves(parent):
    p = parent("--nodes", "2")
    first, second = p.running(2)
    os.kill(first, signal.SIGKILL)
    found = p.log.until(RUNNING.search, "the node started again")
    again = int(found.group(1))
    assert again not in (first, second)
    assert "exited on its own (code -9)" in p.log.text
    # the new node joins the cluster and the port: both names answer again
    await until(lambda: _both_answer(p.url), "both nodes to answer")
    assert p.stop() == 0
    assert not alive(second) and not alive(again)


async def _both_answer(url: str) -> bool:
    return len(await answers(url, tries=20)) == 2


async def test_sighup_restarts_the_nodes_one_at_a_time_while_the_port_keeps_serving(parent):
    p = parent("--nodes", "2")
    old = set(p.running(2))
    failures, served = [], []

    async def load() -> None:  # a client that keeps asking during the rolling restart
        while True:
            try:
                async with httpx.AsyncClient() as client:
                    served.append((await client.get(f"{p.url}/node", timeout=5)).text)
            except httpx.HTTPError as exc:
                failures.append(exc)
            await asyncio.sleep(0.02)

    loading = asyncio.ensure_future(load())
    try:
        p.proc.send_signal(signal.SIGHUP)
        await asyncio.to_thread(  # the load runs meanwhile
            p.log.until, lambda line: "rolling restart done" in line, "the rolling restart")
        await asyncio.sleep(0.5)
    finally:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)  # its client closes first
    new = {int(m.group(1)) for line in p.log.seen if (m := RUNNING.search(line))} - old
    assert len(new) == 2 and not any(alive(pid) for pid in old)
    # one node at a time: "restarting" never comes twice without a start in between
    steps = [line for line in p.log.seen if "restarting node" in line or RUNNING.search(line)]
    assert [("restarting" in s) for s in steps[-4:]] == [True, False, True, False]
    assert len(served) > 20
    assert len(failures) <= 2, failures  # a request on a connection the stopping node had
    assert p.stop() == 0


def test_a_port_in_use_is_exit_code_5_before_any_node_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "beamish", "run", "tests.cluster.webapp:WebApp",
             "--nodes", "2", "--port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 5, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "is running" not in done.stderr


def test_nodes_must_be_a_count_or_auto():
    done = subprocess.run(
        [sys.executable, "-m", "beamish", "run", "tests.cluster.webapp:WebApp", "--nodes", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "a number of nodes (1 or more) or 'auto', got '0'" in done.stderr


async def test_nodes_stop_when_their_parent_is_killed(parent):
    p = parent("--nodes", "2")
    pids = p.running(2)
    p.proc.kill()
    p.proc.wait(10)
    deadline = asyncio.get_running_loop().time() + 20
    while any(alive(pid) for pid in pids):
        assert asyncio.get_running_loop().time() < deadline, "the nodes outlived their parent"
        await asyncio.sleep(0.1)


async def ask_singleton(url: str) -> tuple[str, int] | None:
    """(node, OS pid) of the Clock, over a new connection; None if no answer."""
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{url}/singleton", timeout=5)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    node, pid, _ = answer.text.split()
    return node, int(pid)


async def test_a_singletons_node_killed_hands_it_over_at_once_and_its_restart_finds_it(parent):
    """SIGKILL to the node that runs the cluster's one Clock: the sibling learns of the death
    from the sibling engine (not after --tick-time, 60 s here) and runs the Clock; the killed
    node, started again, meets its sibling before its applications start, so it finds the
    Clock where it runs instead of starting a second one. At no time do both nodes start a
    Clock: the guards start it under a cluster lock."""
    p = parent("--nodes", "2", "--tick-time", "60")
    pids = p.running(2)
    holder = await ask_singleton(p.url)
    assert holder is not None and holder[1] in pids
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    os.kill(holder[1], signal.SIGKILL)

    async def moved():
        now = await ask_singleton(p.url)
        return now is not None and now[1] != holder[1] and now

    survivor = await until(moved, "the Clock to run on the other node", timeout=10)
    assert loop.time() - killed_at < 5 and survivor[1] in pids
    p.log.until(lambda line: (m := RUNNING.search(line)) is not None
                and int(m.group(1)) not in pids, "the node started again")
    await until(lambda: _both_answer(p.url), "both nodes to answer")
    for _ in range(10):  # whichever node a request lands on: the survivor's Clock
        assert await ask_singleton(p.url) == survivor
    assert p.stop() == 0
    # never a second Clock: not at the start, and the restarted node found the survivor's
    assert "global name conflict" not in p.output()
