"""``beamish run --nodes N``: a node per core, one application.

The parent process runs no application itself. It reserves the listening address, then
starts N ``beamish run`` nodes (OS processes) that listen on it together (``SO_REUSEPORT``:
the kernel spreads new connections over them) and form one cluster: over the engine given
with ``--cluster``, or else over sibling sockets in a private directory (``ipc://``), with
a secret made for them when ``BEAMISH_COOKIE`` is not set. It then supervises them:

- a node that exits on its own is started again, as a supervisor restarts a child, unless
  that happened more than ``max_restarts`` times within ``max_seconds``: then the parent
  stops the others and exits with code 3;
- SIGTERM or SIGINT stops every node (each drains its connections, as ``beamish run``
  does) and the parent exits with the worst code they gave: 0 when all stopped cleanly;
- SIGHUP restarts the nodes one at a time (a rolling restart, for a deploy): a node is
  stopped (its connections drained; its clients reconnect to the others), started again,
  and the next waits until it is running, so no more than one node's sockets drop at once.

A node that fails to start the first time (exit codes 1, 2, 5, 6) stops the whole start:
the parent stops the others and exits with that node's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from beamish.cli._node import ExitCode

__all__ = ["SiblingOptions", "run_siblings"]

_log = logging.getLogger("beamish.cli")

START_TIMEOUT = 60.0  # seconds a node may take to say it is running


@dataclass
class SiblingOptions:
    target: str
    count: int
    app_name: str
    env: dict[str, str]  # the nodes' options, as the BEAMISH_* variables `beamish run` reads
    host: str
    port: int | None  # None: the application serves no web endpoint
    shutdown_timeout: float
    node_name: str | None = None
    cluster_url: str | None = None
    max_restarts: int = 3
    max_seconds: float = 5.0


@dataclass
class _Node:
    index: int
    name: str
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Future[bool] | None = None
    expected_exit: bool = False
    watcher: asyncio.Task[None] | None = None


def run_siblings(options: SiblingOptions) -> ExitCode:
    """Run the nodes until a signal, or until one cannot be kept running."""
    with asyncio.Runner() as runner:
        return runner.run(_Parent(options).run())


class _Parent:
    def __init__(self, options: SiblingOptions) -> None:
        self.options = options
        self.nodes: list[_Node] = []
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1024)
        self.stopping = False
        self.rolling: asyncio.Task[None] | None = None
        self.restarts: deque[float] = deque()
        self.directory: str | None = None
        self.reserved: socket.socket | None = None
        self.env: dict[str, str] = {}

    # -- setting up ---------------------------------------------------------------------------

    def _prepare(self) -> ExitCode | None:
        o = self.options
        env = {**os.environ, **o.env, "BEAMISH_NODES": "1", "BEAMISH_REUSE_PORT": "1"}
        if o.port is not None:
            try:
                self.reserved = _reserve(o.host, o.port)
            except OSError as exc:
                _log.error("cannot listen on %s:%s: %s", o.host, o.port, exc.strerror or exc)
                return ExitCode.LISTEN_FAILED
            env["BEAMISH_PORT"] = str(self.reserved.getsockname()[1])
        if o.cluster_url is None:
            self.directory = tempfile.mkdtemp(prefix=f"beamish-{o.app_name}-")  # mode 0700
            env["BEAMISH_CLUSTER"] = f"ipc://{self.directory}"
            if not env.get("BEAMISH_COOKIE"):
                env["BEAMISH_COOKIE"] = secrets.token_urlsafe(32)  # for these siblings alone
        host = socket.gethostname()
        base = o.node_name.partition("@")[0] if o.node_name else o.app_name
        where = o.node_name.partition("@")[2] if o.node_name and "@" in o.node_name else host
        self.nodes = [_Node(i, f"{base}-{i + 1}@{where}") for i in range(o.count)]
        # each node meets its siblings before its applications start (a Singleton then
        # finds its server where it runs, also after a node's restart)
        if not env.get("BEAMISH_SYNC_NODES"):
            env["BEAMISH_SYNC_NODES"] = ",".join(node.name for node in self.nodes)
        self.env = env
        return None

    # -- the nodes --------------------------------------------------------------------------

    async def _spawn(self, node: _Node) -> None:
        read, write = os.pipe()
        env = {**self.env, "BEAMISH_NODE_NAME": node.name, "BEAMISH_READY_FD": str(write)}
        try:
            node.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "beamish", "run", self.options.target, env=env,
                pass_fds=(write,), stdin=subprocess.DEVNULL, preexec_fn=_stop_with_parent,
            )
        finally:
            os.close(write)
        node.expected_exit = False
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bool] = loop.create_future()
        node.ready = ready

        def readable() -> None:
            loop.remove_reader(read)
            try:
                said = os.read(read, 64)
            except OSError:
                said = b""
            os.close(read)
            if not ready.done():
                ready.set_result(said.startswith(b"ready"))

        loop.add_reader(read, readable)
        node.watcher = loop.create_task(self._watch(node, node.proc))

    async def _watch(self, node: _Node, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        with contextlib.suppress(asyncio.QueueFull):
            self.events.put_nowait(("exit", (node, proc, code)))

    async def _start(self, node: _Node) -> int | None:
        """Start a node and wait until it runs; its exit code if it did not."""
        await self._spawn(node)
        assert node.ready is not None and node.proc is not None
        try:
            running = await asyncio.wait_for(asyncio.shield(node.ready), START_TIMEOUT)
        except TimeoutError:
            _log.error("node %s did not start within %gs", node.name, START_TIMEOUT)
            await self._stop_one(node)
            return int(ExitCode.START_FAILED)
        if running:
            return None
        return await node.proc.wait()

    async def _stop_one(self, node: _Node) -> int:
        proc = node.proc
        if proc is None:
            return 0
        if proc.returncode is not None:
            return proc.returncode
        node.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            # the node keeps to --shutdown-timeout itself; a few seconds more for its exit
            return await asyncio.wait_for(proc.wait(), self.options.shutdown_timeout + 5)
        except TimeoutError:
            _log.error("node %s did not stop in time: killed", node.name)
            proc.kill()
            await proc.wait()
            return int(ExitCode.STOP_TIMEOUT)

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> ExitCode:
        failed = self._prepare()
        if failed is not None:
            self._cleanup()
            return failed
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._signalled, signum)
        try:
            return await self._supervise()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            self._cleanup()

    def _signalled(self, signum: int) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.events.put_nowait(("signal", signum))

    async def _supervise(self) -> ExitCode:
        o = self.options
        started = await asyncio.gather(*(self._start(node) for node in self.nodes))
        failures = [code for code in started if code is not None]
        if failures:
            _log.error("a node did not start (exit code %d): stopping the others", failures[0])
            await self._stop_all()
            try:
                return ExitCode(failures[0])
            except ValueError:  # killed by a signal: a start that failed all the same
                return ExitCode.START_FAILED
        _log.info("%d nodes of %r are running (pid %d); SIGHUP restarts them one at a time, "
                  "SIGTERM or Ctrl-C stops them", o.count, o.app_name, os.getpid())
        while True:
            kind, value = await self.events.get()
            if kind == "signal":
                if value == signal.SIGHUP:
                    if self.rolling is not None and not self.rolling.done():
                        _log.warning("SIGHUP: a rolling restart is already under way")
                    else:
                        self.rolling = asyncio.get_running_loop().create_task(self._roll())
                    continue
                _log.info("received %s; stopping the %d nodes", signal.Signals(value).name,
                          o.count)
                return await self._stop_all()
            node, proc, code = value
            if node.proc is not proc or node.expected_exit:
                continue  # a rolling restart's, or one we stopped
            _log.error("node %s exited on its own (code %d)", node.name, code)
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > o.max_seconds:
                self.restarts.popleft()
            if len(self.restarts) > o.max_restarts:
                _log.error("more than %d restarts within %gs: giving up, stopping the others",
                           o.max_restarts, o.max_seconds)
                await self._stop_all()
                return ExitCode.CRASHED
            if await self._start(node) is not None:
                _log.error("node %s did not start again: stopping the others", node.name)
                await self._stop_all()
                return ExitCode.CRASHED

    async def _roll(self) -> None:
        _log.info("rolling restart of %d nodes", len(self.nodes))
        for node in self.nodes:
            if self.stopping:
                return
            _log.info("restarting node %s", node.name)
            await self._stop_one(node)
            if self.stopping:
                return
            failed = await self._start(node)
            if failed is not None:
                _log.error("node %s did not start again (code %d): the rolling restart stops "
                           "here", node.name, failed)
                return
        _log.info("rolling restart done")

    async def _stop_all(self) -> ExitCode:
        self.stopping = True
        if self.rolling is not None and not self.rolling.done():
            self.rolling.cancel()
            with contextlib.suppress(BaseException):
                await self.rolling
        codes = await asyncio.gather(*(self._stop_one(node) for node in self.nodes))
        bad = [c for c in codes if c not in (0, -signal.SIGTERM)]
        if not bad:
            return ExitCode.OK
        return ExitCode.STOP_TIMEOUT if ExitCode.STOP_TIMEOUT in bad else ExitCode.CRASHED

    def _cleanup(self) -> None:
        if self.reserved is not None:
            self.reserved.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _stop_with_parent() -> None:
    """In the node, before it runs: SIGTERM when the parent dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so a killed parent never leaves its nodes serving alone."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to host:port with SO_REUSEPORT, not listening: it holds the address
    for the nodes (they bind it too) without taking connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
