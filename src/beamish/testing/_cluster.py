"""``local_cluster``: several nodes in one interpreter, for tests of distributed code.

The current runtime (a test's, named with ``@pytest.mark.beamish(node="a@test")``) and one
new runtime per name given join one cluster over an in-process transport (``LocalHub``)::

    @pytest.mark.beamish(node="a@test")
    async def test_remote_echo():
        async with local_cluster("b@test") as cluster:
            b = cluster.node("b@test")
            echo = await b.spawn(echo_loop)        # a pid of b, as this node sees it
            send(echo, ("hi", self()))
            await assert_receive(("hi", ANY))

Terms cross between the nodes' code only through the wire codec, as between machines:
``spawn`` and ``run`` translate their arguments and results, so a pid handed back is a
remote pid here, never the other runtime's own object. ``partition(a, b)`` cuts the link
between two nodes, ``pause(name)``/``resume(name)`` stand for SIGSTOP/SIGCONT, and
``restart(name)`` starts a new incarnation of a node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from beamish._runtime import context as _context
from beamish._runtime.runtime import Runtime
from beamish.cluster._connect import connect
from beamish.cluster._local import LocalHub, LocalTransport
from beamish.cluster._node import ClusterNode

__all__ = ["LocalCluster", "LocalNode", "local_cluster"]

TEST_SECRET = b"beamish-test-secret-0123456789"


class LocalNode:
    """One node of a ``LocalCluster``: its runtime, its cluster membership, its transport."""

    def __init__(self, cluster: LocalCluster, runtime: Runtime, member: ClusterNode,
                 transport: LocalTransport, owned: bool) -> None:
        self.cluster = cluster
        self.runtime = runtime
        self.member = member
        self.transport = transport
        self.owned = owned

    @property
    def name(self) -> str:
        return self.runtime.node_id.name

    def __repr__(self) -> str:
        return f"LocalNode({self.name!r})"

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` (sync or async) as a process on this node; its result, as the
        calling node sees it. Arguments go over as they would over the wire."""
        here = _context.current_runtime()
        args = self.cluster.translate(args, here, self.runtime)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def body() -> None:
            try:
                result = fn(*args)
                if isinstance(result, Awaitable):
                    result = await result
            except BaseException as exc:  # handed to the caller, who raises it
                if not done.done():
                    done.set_exception(exc)
                raise
            if not done.done():
                done.set_result(result)

        self.runtime.spawn(body, ())
        result = await asyncio.wait_for(done, timeout)
        return self.cluster.translate(result, self.runtime, here)

    async def spawn(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args)`` as a process on this node; its pid, as the caller sees it."""
        here = _context.current_runtime()
        args = self.cluster.translate(args, here, self.runtime)
        token = _context.CURRENT.set(self.runtime)
        try:
            pid = self.runtime.spawn(fn, args)
        finally:
            _context.CURRENT.reset(token)
        return self.cluster.translate(pid, self.runtime, here)


class LocalCluster:
    def __init__(self, hub: LocalHub, tick_time: float, secret: bytes) -> None:
        self.hub = hub
        self.tick_time = tick_time
        self.secret = secret
        self.nodes: dict[str, LocalNode] = {}

    def node(self, name: str) -> LocalNode:
        return self.nodes[name]

    def translate(self, term: Any, source: Runtime, target: Runtime) -> Any:
        """``term`` as it arrives on ``target`` when ``source`` sends it."""
        if source is target:
            return term
        encoder = self._member(source).codec
        decoder = self._member(target).codec
        return decoder.decode(encoder.encode(term))

    def _member(self, runtime: Runtime) -> ClusterNode:
        for node in self.nodes.values():
            if node.runtime is runtime:
                return node.member
        raise LookupError(f"{runtime.node_id.name} is not a node of this cluster")

    async def add(self, runtime: Runtime, *, owned: bool) -> LocalNode:
        transport = LocalTransport(self.hub)
        member = await connect(
            transport, secret=self.secret, tick_time=self.tick_time, runtime=runtime
        )
        node = self.nodes[runtime.node_id.name] = LocalNode(self, runtime, member, transport, owned)
        return node

    async def start_node(self, name: str, **options: Any) -> LocalNode:
        """Start a new node (a new runtime) and join it to the cluster."""
        here = _context.CURRENT.get()
        runtime = Runtime(node=name, **options)
        await runtime.start()
        _context.CURRENT.set(here)  # start() made the new runtime current: undo that
        return await self.add(runtime, owned=True)

    async def connected(self, timeout: float = 5.0) -> None:
        """Wait until every node sees every other."""
        names = set(self.nodes)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(set(n.member.nodes()) != names - {name} for name, n in self.nodes.items()):
            if loop.time() > deadline:
                seen = {name: n.member.nodes() for name, n in self.nodes.items()}
                raise TimeoutError(f"the local cluster did not connect in {timeout}s: {seen}")
            await asyncio.sleep(0.005)

    def partition(self, a: str, b: str) -> None:
        """Cut the link between nodes ``a`` and ``b`` (both directions) until ``heal()``."""
        self.hub.partition(self.nodes[a].transport, self.nodes[b].transport)

    def heal(self) -> None:
        self.hub.heal()

    def pause(self, name: str) -> None:
        """Stop node ``name`` as SIGSTOP would: it hears nothing and says nothing."""
        node = self.nodes[name]
        node.transport.pause()
        node.member.paused = True

    def resume(self, name: str) -> None:
        node = self.nodes[name]
        node.member.paused = False
        node.transport.resume()

    async def stop_node(self, name: str) -> None:
        """Stop node ``name``: its runtime, then its membership (it says goodbye)."""
        node = self.nodes.pop(name)
        here = _context.CURRENT.get()
        if node.owned:
            await node.runtime.stop()
        await node.member.stop()
        _context.CURRENT.set(here)

    async def restart(self, name: str) -> LocalNode:
        """A new incarnation of node ``name``: stopped without a goodbye, started anew."""
        node = self.nodes.pop(name)
        node.member.running = False  # dies: no goodbye, its peers find out by the silence
        for sub in node.member._subscriptions:
            await sub.cancel()
        if node.member._ticker is not None:
            node.member._ticker.cancel()
        await node.transport.close()
        here = _context.CURRENT.get()
        await node.runtime.stop()
        _context.CURRENT.set(here)
        node.runtime.detach_distribution(node.member)
        return await self.start_node(name)

    async def close(self) -> None:
        for name in list(self.nodes):
            await self.stop_node(name)


@contextlib.asynccontextmanager
async def local_cluster(
    *names: str, tick_time: float = 1.0, secret: bytes = TEST_SECRET, join_current: bool = True,
) -> AsyncIterator[LocalCluster]:
    """The current runtime (if ``join_current``) and a new node per name, in one cluster."""
    cluster = LocalCluster(LocalHub(), tick_time, secret)
    try:
        if join_current:
            await cluster.add(_context.current_runtime(), owned=False)
        for name in names:
            await cluster.start_node(name)
        await cluster.connected()
        yield cluster
    finally:
        await cluster.close()
