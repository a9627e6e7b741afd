"""The node ``beamish run`` runs: a runtime, an application, signals and an exit code.

How it works. ``run_node`` makes an event loop (uvloop when installed) and a ``Runtime``,
starts the application controller and watches it, then starts the application and its
dependencies as *permanent*: if one of them stops on its own, the controller stops the
others and exits, and the node ends with ``CRASHED``. SIGTERM and SIGINT ask for a stop: the
services stop, then every application, the most recently started first (each runs
``prep_stop``, stops its tree in reverse order within the children's shutdown timeouts, and
runs ``stop``), all within ``shutdown_timeout``.

A signal that comes within ``DUPLICATE_WINDOW`` seconds of the one that began the stop is
taken as a copy of it: a process group signalled as a whole (systemd, container runtimes,
``make``, which passes its own SIGTERM on to its children) delivers the same signal twice
at once. A later signal, or the timeout, cuts the stop short: the services are ended at
once, the processes the stop was waiting for are named in the log (pid, name, behaviour,
what they were doing), and every process left is killed. No stop prints a traceback.

Services are the seam for what runs beside the applications once they are up (the web
endpoint): started in order after the applications, stopped in reverse before them. A
service whose ``start`` raises ``OSError`` could not take its address: its message is
logged as one line and the node exits with ``LISTEN_FAILED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from beamish._errors import StartError
from beamish._otp.application.application import (
    Application,
    ensure_all_started,
    ensure_controller,
    stop_all_applications,
)
from beamish._otp.application.controller import describe_reason
from beamish._runtime.api import wait_exit
from beamish._runtime.entry import new_event_loop
from beamish._runtime.introspection import ProcessInfo
from beamish._runtime.runtime import Runtime

__all__ = ["DUPLICATE_WINDOW", "ExitCode", "Service", "run_node", "waited_for"]

_log = logging.getLogger("beamish.cli")

DUPLICATE_WINDOW = 1.0  # seconds: a signal this soon after the first one is a copy of it
_NAMED = 5  # at most this many processes named when a stop is cut short


class ExitCode(enum.IntEnum):
    """What ``beamish run`` exits with."""

    OK = 0  # stopped cleanly: by SIGTERM/SIGINT, or every application stopped normally
    START_FAILED = 1  # the application or one of its dependencies failed to start
    USAGE = 2  # bad arguments, or the application could not be imported
    CRASHED = 3  # an application stopped on its own (e.g. its root supervisor gave up)
    STOP_TIMEOUT = 4  # the stop was cut short (timeout or second signal); the rest was killed
    LISTEN_FAILED = 5  # the web endpoint could not listen on its address (e.g. in use)
    CLUSTER_FAILED = 6  # the node could not join its cluster (engine unreachable, no secret)

    @property
    def meaning(self) -> str:
        return {
            0: "stopped cleanly",
            1: "the application failed to start",
            2: "usage error",
            3: "an application stopped on its own",
            4: "the stop was cut short and what was left was killed",
            5: "the web endpoint could not listen on its address",
            6: "the node could not join its cluster",
        }[self.value]


class ClusterOptions(NamedTuple):
    """``beamish run --cluster URL --cluster-name NAME --tick-time SECONDS``."""

    url: Any  # a URL, or the Transport made from it
    name: str = "beamish"
    tick_time: float = 60.0
    sync_nodes: tuple[str, ...] = ()  # met before the applications start (--sync-nodes)
    sync_timeout: float = 5.0


class Service(Protocol):
    """Something the node runs beside its applications once they are up (the web endpoint).

    ``start`` raises ``OSError`` when it cannot take its address (its message is logged as
    it is); ``stop`` ends quickly when it is cancelled (the node's stop was cut short).
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def run_node(
    app: Application, *, shutdown_timeout: float = 30.0, services: Sequence[Service] = (),
    node_name: str | None = None, cluster: ClusterOptions | None = None,
    ready_fd: int | None = None,
) -> ExitCode:
    """Run ``app`` until a signal or until it stops; returns the exit code. With
    ``cluster``, the node joins it before the application starts and leaves it (saying
    goodbye) after the application stopped."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        node = _Node(app, shutdown_timeout, services)
        node.node_name = node_name
        node.cluster = cluster
        node.ready_fd = ready_fd
        return runner.run(node.run())


class _Node:
    def __init__(
        self, app: Application, shutdown_timeout: float, services: Sequence[Service]
    ) -> None:
        self.app = app
        self.shutdown_timeout = shutdown_timeout
        self.services = list(services)
        self.running: list[Service] = []
        self.stopping: Service | None = None  # the service whose stop is under way
        self.ready_fd: int | None = None  # a --nodes parent's pipe: told once running
        self.signals: asyncio.Queue[int] = asyncio.Queue(maxsize=4)
        self.first_signal_at: float | None = None
        self.node_name: str | None = None
        self.cluster: ClusterOptions | None = None

    def _on_signal(self, signum: int) -> None:
        now = asyncio.get_running_loop().time()
        first = self.first_signal_at
        if first is not None and now - first < DUPLICATE_WINDOW:
            _log.info(
                "received %s again %.3gs after the first signal: taken as a copy of it "
                "(a second signal %gs or more after the first cuts the stop short)",
                signal.Signals(signum).name, now - first, DUPLICATE_WINDOW,
            )
            return
        if first is None:
            self.first_signal_at = now
        with contextlib.suppress(asyncio.QueueFull):  # one is enough to act on
            self.signals.put_nowait(signum)

    async def run(self) -> ExitCode:
        loop = asyncio.get_running_loop()
        remove = _handle_signals(loop, self._on_signal)
        options: dict[str, Any] = {"shutdown_timeout": self.shutdown_timeout}
        if self.node_name is not None:
            options["node"] = self.node_name
        try:
            async with Runtime(**options) as runtime:
                member = await self._join(runtime)
                if member is None and self.cluster is not None:
                    code = ExitCode.CLUSTER_FAILED if self.first_signal_at is None else ExitCode.OK
                else:
                    try:
                        code = await self._life(runtime, loop)
                    finally:
                        if member is not None:
                            await member.stop()  # what the stop sent goes out, then goodbye
        finally:
            remove()
        log = _log.info if code is ExitCode.OK else _log.error
        log("exit code %d: %s", code.value, code.meaning)
        return code

    async def _join(self, runtime: Runtime) -> Any:
        """Join the cluster, if asked to; None if not asked or if it failed (logged)."""
        if self.cluster is None:
            return None
        try:
            from beamish.cluster import ClusterConfigError, TransportError, connect
        except ModuleNotFoundError as exc:
            _log.error("--cluster needs the cluster extra (pip install 'beamish[cluster]'): "
                       "%s is missing", exc.name)
            return None
        joining = asyncio.ensure_future(connect(
            self.cluster.url, cluster=self.cluster.name, tick_time=self.cluster.tick_time,
            runtime=runtime,
        ))
        signalled = asyncio.ensure_future(self.signals.get())
        try:
            await asyncio.wait({joining, signalled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signalled.cancel()
        if not joining.done():  # a signal while joining: stop now
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
            _log.info("received %s while joining the cluster; stopping",
                      signal.Signals(signalled.result()).name)
            return None
        try:
            member = joining.result()
        except (ClusterConfigError, TransportError, ValueError) as exc:
            _log.error("could not join the cluster: %s", exc)
            return None
        _log.info("node %s joined cluster %r on %s", runtime.node_id.name, self.cluster.name,
                  _without_credentials(str(getattr(self.cluster.url, "url", self.cluster.url))))
        if self.cluster.sync_nodes:
            from beamish.cluster import sync_nodes

            async with runtime.as_process():
                await sync_nodes(self.cluster.sync_nodes, self.cluster.sync_timeout)
        return member

    async def _life(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> ExitCode:
        controller = await ensure_controller()
        ended: asyncio.Future[Any] = asyncio.ensure_future(wait_exit(controller))
        starting = asyncio.ensure_future(ensure_all_started(self.app, restart="permanent"))
        signalled = asyncio.ensure_future(self.signals.get())
        code = ExitCode.OK
        try:
            await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
            if not signalled.done():
                code = await self._started(starting)
                if code is ExitCode.OK:
                    _log.info(
                        "%r is running (pid %d); stop it with Ctrl-C or SIGTERM",
                        self.app.name, os.getpid(),
                    )
                    self._tell_ready()
                    await asyncio.wait({ended, signalled}, return_when=asyncio.FIRST_COMPLETED)
                    if ended.done():
                        code = _code_of(ended.result())
            if signalled.done():
                name = signal.Signals(signalled.result()).name
                _log.info("received %s; stopping (within %gs)", name, self.shutdown_timeout)
            return await self._stop(runtime, loop, starting, ended, code)
        finally:
            for task in (starting, signalled, ended):
                task.cancel()
            await asyncio.gather(starting, signalled, ended, return_exceptions=True)

    def _tell_ready(self) -> None:
        """For a ``--nodes`` parent: this node runs (it waits for that in a rolling restart)."""
        fd, self.ready_fd = self.ready_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"ready\n")
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _started(self, starting: asyncio.Future[Any]) -> ExitCode:
        failure = starting.exception()
        if failure is not None:
            if isinstance(failure, StartError):  # the controller logged why, once
                _log.error("%r did not start (the reason is logged above)", self.app.name)
            else:
                _log.error("could not start %r: %s", self.app.name, failure)
            return ExitCode.START_FAILED
        for service in self.services:
            try:
                await service.start()
            except OSError as exc:  # it could not take its address: the message says which
                _log.error("%s", exc)
                return ExitCode.LISTEN_FAILED
            except Exception:
                _log.exception("the %s service failed to start", service.name)
                return ExitCode.START_FAILED
            self.running.append(service)
        return ExitCode.OK

    async def _stop(
        self, runtime: Runtime, loop: asyncio.AbstractEventLoop, starting: asyncio.Future[Any],
        ended: asyncio.Future[Any], code: ExitCode,
    ) -> ExitCode:
        deadline = loop.time() + self.shutdown_timeout
        stopper = asyncio.ensure_future(self._stop_everything(starting, ended))
        again = asyncio.ensure_future(self.signals.get())
        try:
            await asyncio.wait({stopper, again}, timeout=self.shutdown_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            if stopper.done() and not again.done():
                await asyncio.wait({ended, again}, timeout=max(deadline - loop.time(), 0),
                                   return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                why = (f"received {signal.Signals(again.result()).name} again" if again.done()
                       else f"not stopped within {self.shutdown_timeout:g}s")
                _log.error("%s; killing every process left. %s", why, self._waiting_for(runtime))
                stopper.cancel()  # a service still stopping ends at once
                await asyncio.wait({stopper})
                await runtime.stop(timeout=0)
                return code if code is ExitCode.CRASHED else ExitCode.STOP_TIMEOUT
            # processes the applications left outside their trees
            await runtime.stop(timeout=max(deadline - loop.time(), 0))
            return code
        finally:
            for task in (stopper, again):
                task.cancel()
            await asyncio.gather(stopper, again, return_exceptions=True)

    def _waiting_for(self, runtime: Runtime) -> str:
        """What the stop was waiting for when it was cut short, in one sentence."""
        if self.stopping is not None:
            return f"The stop was waiting for the {self.stopping.name} service to stop."
        infos = [i for i in map(runtime.process_info, runtime.processes()) if i is not None]
        culprits = waited_for(infos)
        if not culprits:
            return "No process was left to wait for."
        by_pid = {i.pid: i for i in infos}
        named = "; ".join(_describe(i, by_pid) for i in culprits[:_NAMED])
        more = f" (and {len(culprits) - _NAMED} more)" if len(culprits) > _NAMED else ""
        return f"The stop was waiting for: {named}{more}."

    async def _stop_everything(
        self, starting: asyncio.Future[Any], ended: asyncio.Future[Any]
    ) -> None:
        if not starting.done():  # a signal during the start: start nothing more
            starting.cancel()
            await asyncio.wait({starting})
        for service in reversed(self.running):
            self.stopping = service
            try:
                await service.stop()
            except Exception:
                _log.exception("the %s service failed to stop", service.name)
            finally:
                self.stopping = None
        self.running.clear()
        if not ended.done():
            await stop_all_applications()


def waited_for(infos: Sequence[ProcessInfo]) -> list[ProcessInfo]:
    """The processes a stop that was cut short was waiting for.

    Applications stop newest first, so the one being stopped is the newest application
    process still alive (``application:NAME``); a tree stops from its leaves, so what it
    waits for are the processes of that application with no live process under them. Of
    those, the ones busy (not idle) come first.
    """
    by_parent: dict[Any, list[ProcessInfo]] = {}
    for info in infos:
        by_parent.setdefault(info.parent, []).append(info)
    masters = [i for i in infos if i.name is not None and i.name.startswith("application:")]
    if masters:
        top = max(masters, key=lambda i: i.pid)
        tree, todo = [], [top]
        while todo:
            info = todo.pop()
            tree.append(info)
            todo.extend(by_parent.get(info.pid, ()))
    else:
        tree = [i for i in infos if i.name != "application_controller"]
    leaves = [i for i in tree if not by_parent.get(i.pid)]
    leaves.sort(key=lambda i: (i.current_function.endswith("(idle)"), i.pid))
    return leaves


def _describe(info: ProcessInfo, by_pid: dict[Any, ProcessInfo]) -> str:
    name = f" {info.name!r}" if info.name else ""
    text = f"{info.pid}{name} ({info.initial_call}, in {info.current_function})"
    parent = by_pid.get(info.parent)
    if parent is not None:
        text += f" under {parent.pid}" + (f" {parent.name!r}" if parent.name else "")
    return text


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _code_of(reason: Any) -> ExitCode:
    """The exit code for the way the application controller exited."""
    if reason == "normal":
        return ExitCode.OK
    match reason:
        case ("shutdown", ("application_terminated", name, why)):
            if why == "normal":
                _log.info("application %r stopped", name)
                return ExitCode.OK
            _log.error("application %r stopped on its own: %s", name, describe_reason(why))
            return ExitCode.CRASHED
    _log.error("the application controller exited with reason %r", reason)
    return ExitCode.CRASHED


def _handle_signals(
    loop: asyncio.AbstractEventLoop, callback: Callable[[int], None]
) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``callback`` on the loop; returns the undo."""
    undo: list[Callable[[], object]] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, callback, signum)
            undo.append(functools.partial(loop.remove_signal_handler, signum))
        except (NotImplementedError, RuntimeError):  # no loop signal handlers (Windows)
            previous = signal.signal(
                signum, lambda s, _frame: loop.call_soon_threadsafe(callback, s)
            )
            undo.append(functools.partial(signal.signal, signum, previous))

    def remove() -> None:
        for step in undo:
            with contextlib.suppress(Exception):
                step()

    return remove
