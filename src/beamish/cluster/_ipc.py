"""The sibling transport (``ipc://DIRECTORY``): nodes on one machine, with no server.

``beamish run --nodes N`` starts its nodes on it, so a cluster of siblings needs nothing
installed beside them. It is built on ZeroMQ (``pyzmq``): each node binds a publishing
socket (``XPUB``) at ``DIRECTORY/<pid>-<random>.sock`` and connects one subscribing socket
(``SUB``) to every socket it finds in the directory, its own included; subscriptions travel
from subscribers to publishers, so a frame crosses only to the nodes that subscribed to its
subject. Nodes that come later are found by a scan of the directory (every ``scan_interval``
seconds); the socket of a node that died without removing it (``kill -9``) is removed by the
next scan that finds its process gone.

Order and bounds. ZeroMQ keeps the order of one publisher's frames to one subscriber. Each
pipe holds at most ``hwm`` frames on each side; a publisher never drops (``XPUB_NODROP``):
when a subscriber's pipe is full, frames for that subject wait in the transport, per
subject, bounded in bytes by ``max_outbox`` (then ``TransportBusy``), and a frame for a node
that keeps up never waits behind them. A frame lost anyway (a node restarted between two
frames) shows as a gap in the session's sequence numbers, which ends the session.

Who may connect. The directory is created with mode 0700 and must belong to this user and
be closed to others (it is refused otherwise): only processes of the same user can open the
sockets in it. Frames are sealed with the cluster's secret, as on every engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections import deque
from pathlib import Path
from typing import Any

from beamish.cluster._transport import (
    Handler,
    Subscription,
    Transport,
    TransportError,
    _cancel,
)

__all__ = ["IpcTransport"]

_log = logging.getLogger("beamish.cluster")

_WELCOME = b""  # an empty frame: a publisher's "I have your subscription" (never a real frame)


class IpcTransport(Transport):
    max_payload = 1024 * 1024

    def __init__(self, url: str, *, hwm: int = 1024, scan_interval: float = 0.2,
                 subscribe_timeout: float = 2.0, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self.directory = Path(url.partition("://")[2] or ".")
        self.hwm = hwm
        self.scan_interval = scan_interval
        self.subscribe_timeout = subscribe_timeout
        self.path: Path | None = None  # this node's socket
        self._zmq: Any = None
        self._ctx: Any = None
        self._pub: Any = None
        self._sub: Any = None
        self._peers: set[str] = set()  # the sockets our SUB is connected to
        self._handlers: dict[bytes, Handler] = {}
        self._topics: dict[str, bytes] = {}
        self._held: dict[bytes, deque[bytes]] = {}  # frames waiting for a full pipe, per topic
        self._welcomed: dict[bytes, set[bytes]] = {}  # topic -> publishers that have it
        self._id = b""
        self._scanner: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._subscriber_callbacks: list[Any] = []
        self._gone_callbacks: list[Any] = []

    def preload(self) -> None:
        import zmq  # noqa: F401

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        import zmq

        self._zmq = zmq
        self._check_directory()
        self._ctx = zmq.Context()
        token = secrets.token_hex(4)
        self._id = f"{os.getpid()}-{token}".encode()
        self.path = self.directory / f"{os.getpid()}-{token}.sock"
        pub = self._pub = self._ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.XPUB_NODROP, 1)
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, not only a topic's first
        pub.setsockopt(zmq.SNDHWM, self.hwm)
        pub.setsockopt(zmq.LINGER, 1000)  # what is queued at close has a second to leave
        sub = self._sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, self.hwm)
        sub.setsockopt(zmq.LINGER, 0)
        try:
            pub.bind(f"ipc://{self.path}")
        except zmq.ZMQError as exc:
            self._ctx.destroy(linger=0)
            raise TransportError(f"cannot bind {self.path}: {exc}") from None
        os.chmod(self.path, 0o600)
        loop = asyncio.get_running_loop()
        loop.add_reader(sub.getsockopt(zmq.FD), self._readable)
        self._scan()
        self._scanner = loop.create_task(self._scan_loop(), name="beamish-ipc-scanner")
        self._set_state(True)

    def _check_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
        except OSError as exc:
            raise TransportError(f"cannot use {self.directory} for the sibling sockets: {exc}") \
                from None
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TransportError(
                f"{self.directory} must belong to this user and be closed to others (mode "
                f"0700; it is {stat.filemode(info.st_mode)}, owner uid {info.st_uid}): any "
                "process that can open its sockets can read the cluster's frames"
            )

    async def close(self) -> None:
        await _cancel(self._scanner, self._retry)
        self._scanner = self._retry = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sub.getsockopt(self._zmq.FD))
            self._sub.close(linger=0)
            self._sub = None
        if self._pub is not None:
            self._pub.close()  # lingers up to a second for what is queued
            self._pub = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        self._set_state(False)

    def on_subscriber(self, callback: Any) -> None:
        """``callback()`` when another node subscribes here (it may have just started)."""
        self._subscriber_callbacks.append(callback)

    def on_process_gone(self, callback: Any) -> None:
        """``callback(os_pid)`` when a node's socket went and its process is not alive."""
        self._gone_callbacks.append(callback)

    # -- the directory ----------------------------------------------------------------------

    async def _scan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval)
            self._scan()
            self._readable()  # a ZeroMQ FD signals edges: never wait on one that was missed

    def _scan(self) -> None:
        """Connect to the sockets that appeared, forget those gone, remove the dead's."""
        found: set[str] = set()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if not entry.name.endswith(".sock"):
                    continue
                pid = entry.name.partition("-")[0]
                if pid.isdigit() and not _alive(int(pid)):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)  # a node killed without closing: gone for good
                    continue
                found.add(entry.path)
        for path in found - self._peers:
            self._sub.connect(f"ipc://{path}")
        gone: list[int] = []
        for path in self._peers - found:
            with contextlib.suppress(self._zmq.ZMQError):
                self._sub.disconnect(f"ipc://{path}")
            owner = os.path.basename(path).partition("-")[0]
            if owner.isdigit() and not _alive(int(owner)):  # killed (this scan or another's)
                gone.append(int(owner))
        self._peers = found
        for os_pid in gone:
            for callback in self._gone_callbacks:
                try:
                    callback(os_pid)
                except Exception:
                    _log.exception("ipc transport: process-gone callback %r raised", callback)
        self._notifications()

    def _notifications(self) -> None:
        """Subscriptions made to our publisher: welcome each, and tell who wants to know."""
        zmq = self._zmq
        new = False
        while True:
            try:
                note = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if note[:1] == b"\x01":
                new = True
                with contextlib.suppress(zmq.Again):
                    self._pub.send_multipart((note[1:], _WELCOME, self._id), zmq.NOBLOCK)
        if new:
            for callback in self._subscriber_callbacks:
                try:
                    callback()
                except Exception:
                    _log.exception("ipc transport: subscriber callback %r raised", callback)

    # -- receiving --------------------------------------------------------------------------

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        topic = subject.encode()
        self._handlers[topic] = handler
        welcomed = self._welcomed[topic] = set()
        self._sub.setsockopt(self._zmq.SUBSCRIBE, topic)
        # wait until every live publisher has it (each welcomes it), or a bound of time: one
        # that is stopped or gone does not hold us, and sessions cover what it missed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.subscribe_timeout
        while loop.time() < deadline:
            self._scan()
            self._readable()
            live = {Path(p).name.removesuffix(".sock").encode() for p in self._peers}
            if live <= welcomed:
                break
            await asyncio.sleep(0.005)
        self._welcomed.pop(topic, None)

        async def cancel() -> None:
            if self._handlers.pop(topic, None) is not None and self._sub is not None:
                self._sub.setsockopt(self._zmq.UNSUBSCRIBE, topic)

        return Subscription(subject, cancel)

    def _readable(self) -> None:
        sub = self._sub
        if sub is None:
            return
        zmq = self._zmq
        handlers = self._handlers
        while True:
            try:
                parts = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) == 2:
                handler = handlers.get(parts[0])
                if handler is not None:
                    try:
                        handler(parts[1])
                    except Exception:  # one frame's failure must not stop the reading
                        _log.exception("ipc transport: the handler of %r raised", parts[0])
            elif len(parts) == 3 and parts[1] == _WELCOME:
                welcomed = self._welcomed.get(parts[0])
                if welcomed is not None:
                    welcomed.add(parts[2])

    # -- sending ----------------------------------------------------------------------------

    def publish(self, subject: str, frame: bytes) -> None:
        size = len(frame)
        self._check_size(size)
        if self._pub is None:
            raise TransportError("the ipc transport is not connected")
        topic = self._topics.get(subject)
        if topic is None:
            topic = self._topics[subject] = subject.encode()
        held = self._held.get(topic)
        if held is None:
            try:
                self._pub.send_multipart((topic, frame), self._zmq.NOBLOCK)
                return
            except self._zmq.Again:  # a subscriber's pipe is full: this subject waits
                held = self._held[topic] = deque()
        if self._outbox_bytes + size > self.max_outbox:
            if not held:
                del self._held[topic]
            raise self._busy(f"a subscriber of {subject} does not keep up")
        held.append(frame)
        self._outbox_bytes += size
        if self._retry is None:
            self._retry = asyncio.get_running_loop().create_task(
                self._send_held(), name="beamish-ipc-retry"
            )

    async def _send_held(self) -> None:
        """Frames that wait for a full pipe, sent as it empties (ZeroMQ tells a publisher
        nothing when one does: polled, from 1 ms to 50 ms apart)."""
        zmq = self._zmq
        pause = 0.001
        try:
            while self._held:
                moved = False
                for topic in list(self._held):
                    held = self._held[topic]
                    while held:
                        try:
                            self._pub.send_multipart((topic, held[0]), zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._outbox_bytes -= len(held.popleft())
                        moved = True
                    if not held:
                        del self._held[topic]
                pause = 0.001 if moved else min(pause * 2, 0.05)
                if self._held:
                    await asyncio.sleep(pause)
        finally:
            self._retry = None

    async def flush(self) -> None:
        if self._retry is not None:
            await asyncio.wait({self._retry})

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:  # pragma: no cover
        raise AssertionError("the ipc transport publishes without the shared writer")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
