"""A node in a cluster: the runtime's ``Distribution``, over a transport.

How it works. Every operation that leaves the node (a send, a link, a reply...) is encoded
at once by the wire codec, so a message that cannot cross raises in its sender, and is queued
in the outbox of its destination node. Once per loop turn the outboxes are flushed: each
destination gets its operations in order, packed into as few sealed frames as the engine's
``max_payload`` allows, on the destination's own subject. Per pair of nodes there is one
session and one ordered stream of frames, so per pair of processes order is kept, as on the
BEAM; nothing else is promised.

A frame that arrives is opened (its tag verified), checked by the sessions (``_session.py``:
handshake, replays, incarnations, heartbeats) and its operations are handed to the runtime's
``dist_*`` methods one by one; an operation that does not decode is logged and skipped, and
the rest go on.

Operations to a node whose handshake is under way wait in a bounded queue (``max_pending``
operations per node, default 10,000; past it they are dropped and logged once), as the BEAM
queues while it connects. To a node that is not known at all, or to an earlier incarnation
of a node, they are dropped, as on the BEAM.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
from typing import Any

import msgpack

from beamish._errors import RegistryError
from beamish._runtime import context as _context
from beamish._runtime.pid import NodeId, Pid, Ref
from beamish._runtime.tables import find_table, new_table
from beamish.cluster._codec import Codec, WireError
from beamish.cluster._nodes import NodeTable
from beamish.cluster._session import (
    BYE,
    DATA,
    DELIVER,
    DOWN,
    HELLO,
    SEND_HELLO,
    UP,
    FrameError,
    Peer,
    Sealer,
    Sessions,
)
from beamish.cluster._transport import FrameTooLarge, Transport, TransportBusy
from beamish.pubsub._adapter import REMOTE
from beamish.pubsub._pubsub import _ADAPTERS, PubSub, dispatcher_name, dispatcher_named

__all__ = ["ClusterNode"]

_log = logging.getLogger("beamish.cluster")

(_SEND, _SEND_NAME, _REPLY, _LINK, _UNLINK, _EXIT, _MONITOR, _DEMONITOR, _DOWN,
 _PUBSUB) = range(1, 11)
_FRAME_OVERHEAD = 256  # header, tag and msgpack framing, with room to spare
_EARLY_FLUSH = 1024  # operations queued for one node within one turn before they leave
_EARLY_FRAMES = 256  # frames kept while the node subscribes, handled once it runs
_MAX_OS_PIDS = 4_096  # OS pids of nodes remembered (as many as known incarnations)
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def subject_prefix(cluster: str) -> str:
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(
            f"a cluster name is 1 to 64 letters, digits, '_' or '-', got {cluster!r}"
        )
    return f"beamish.{cluster}"


class ClusterNode:
    """This node's membership in a cluster. Made and started by ``beamish.cluster.connect``."""

    def __init__(
        self, runtime: Any, transport: Transport, *, secret: bytes, cluster: str = "beamish",
        tick_time: float = 60.0, max_pending: int = 10_000, max_term: int = 8 * 1024 * 1024,
    ) -> None:
        if tick_time <= 0:
            raise ValueError(f"tick_time must be > 0 seconds, got {tick_time!r}")
        self.runtime = runtime
        self.transport = transport
        self.cluster = cluster
        self.tick_time = tick_time
        self.max_pending = max_pending
        self.local: NodeId = runtime.node_id
        self.table = NodeTable(runtime)
        self.codec = Codec(self.table, runtime, max_size=max_term)
        self.sealer = Sealer(secret, cluster)
        self.sessions = Sessions(self.local.name, self.local.creation, tick_time)
        prefix = subject_prefix(cluster)
        self._prefix = prefix
        self._broadcast = f"{prefix}.all"
        self._outboxes: dict[Peer, list[bytes]] = {}
        # a HELLO carries its node's OS pid, for engines that see processes die (ipc://)
        self._hello = str(os.getpid()).encode()
        self._os_pids: dict[tuple[str, int], int] = {}
        self._pending: dict[str, list[tuple[int, bytes]]] = {}
        self._overflowed: set[str] = set()
        self._flush_due = False
        self._after_tick = _AfterTick(self._flush_turn)
        self._subscriptions: list[Any] = []
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self.paused = False  # for tests: a stopped OS process does not tick
        self.frames_in = self.frames_out = self.dropped = 0
        self._early: list[bytes] | None = []  # frames that came while start() subscribed
        self._op_limit = transport.max_payload - _FRAME_OVERHEAD  # the largest encoded op

    def subject(self, name: str) -> str:
        digest = hashlib.blake2b(name.encode(), digest_size=12).hexdigest()
        return f"{self._prefix}.n.{digest}"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.transport.connected:
            await self.transport.connect()
        self._op_limit = self.transport.max_payload - _FRAME_OVERHEAD  # known once connected
        self.runtime.attach_distribution(self)
        self.transport.on_subscriber(self._announce)  # a newcomer hears of us at once
        self.transport.on_process_gone(self._process_gone)  # a sibling killed with -9
        self._subscriptions.append(
            await self.transport.subscribe(self.subject(self.local.name), self._arrived)
        )
        self._subscriptions.append(await self.transport.subscribe(self._broadcast, self._arrived))
        self.running = True
        early, self._early = self._early, None
        for frame in early or ():  # said to us while we subscribed (a peer that heard us)
            self._arrived(frame)
        await self._start_services()
        self._announce()
        self._ticker = self._loop.create_task(self._tick_loop(), name="beamish-cluster-ticker")

    async def _start_services(self) -> None:
        """The cluster's own processes: the global name server and the default pg scope,
        under one supervisor."""
        from beamish._otp.supervisor.child_spec import ChildSpec
        from beamish._otp.supervisor.supervisor import Supervisor
        from beamish.cluster._global import SERVER, GlobalNames, GlobalServer
        from beamish.cluster._pg import SCOPE, PgServer

        table = GlobalNames(self.runtime)
        self.runtime.global_registry = table
        token = _context.CURRENT.set(self.runtime)
        try:
            global_server = functools.partial(GlobalServer.start_link, name=SERVER)
            pg_scope = functools.partial(PgServer.start_link, name=SCOPE)
            self._services = await Supervisor.start([
                ChildSpec(id="global", start=(global_server, (table,))),
                ChildSpec(id="pg", start=(pg_scope, (SCOPE,))),
            ], name="beamish.cluster")
            # PubSub's default adapter finds the cluster here while the services run
            new_table(REMOTE, self.pubsub_broadcast, owner=self._services)
        finally:
            _context.CURRENT.reset(token)

    async def stop(self) -> None:
        """Leave the cluster: what was sent is flushed, then every peer is told goodbye."""
        if not self.running:
            return
        services = getattr(self, "_services", None)
        if services is not None and services._proc is not None:
            from beamish._otp.supervisor.supervisor import Supervisor

            with contextlib.suppress(Exception):
                await Supervisor.stop(services)
        self.running = False
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._flush()
        now = self._now()
        for peer in [p for p in self.sessions.peers.values() if p.up]:
            self._publish(peer, self.sessions.direct_header(peer, BYE, now), b"")
        with contextlib.suppress(Exception):
            self.transport.publish(
                self._broadcast, self.sealer.seal(self.sessions.broadcast_header(BYE), b"")
            )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.flush(), 2.0)
        for peer in self.sessions.goodbye():
            self._node_down(peer, "disconnect")
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.cancel()
        self._subscriptions.clear()
        self.runtime.detach_distribution(self)
        self.runtime.global_registry = None
        await self.transport.close()  # the node owns its transport

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def _tick_loop(self) -> None:
        period = self.tick_time / 4
        while True:
            await asyncio.sleep(period)
            if self.paused:
                continue
            self._announce()
            self._act(self.sessions.tick(self._now()), b"")

    def _announce(self) -> None:
        frame = self.sealer.seal(self.sessions.broadcast_header(HELLO), self._hello)
        try:
            self.transport.publish(self._broadcast, frame)
        except (TransportBusy, FrameTooLarge) as exc:
            _log.warning("cluster: could not announce node %s: %s", self.local.name, exc)

    # -- the Distribution protocol (outbound) -----------------------------------------------

    def is_connected(self, node: str) -> bool:
        return node in self.sessions.current

    def nodes_up(self) -> list[str]:
        return sorted(self.sessions.current)

    def nodes(self) -> list[str]:
        return sorted(self.sessions.current)

    def send(self, dest: Pid, message: Any) -> None:
        self._queue(dest._node.name, dest._node.creation, self._encode([_SEND, dest.id, message]))

    def send_name(self, name: str, node: str, message: Any) -> None:
        self._queue(node, 0, self._encode([_SEND_NAME, name, message]))

    def reply(self, node: NodeId, alias: int, value: Any) -> None:
        self._queue(node.name, node.creation, self._encode([_REPLY, alias, value]))

    def link(self, local: Pid, remote: Pid) -> None:
        node = remote._node
        self._queue(node.name, node.creation, self._encode([_LINK, local, remote.id]))

    def unlink(self, local: Pid, remote: Pid) -> None:
        node = remote._node
        self._queue(node.name, node.creation, self._encode([_UNLINK, local, remote.id]))

    def exit(self, sender: Pid | None, target: Pid, reason: Any, *, link: bool) -> None:
        node = target._node
        op = self._encode_signal([_EXIT, sender, target.id, reason, link], 3)
        self._queue(node.name, node.creation, op)

    def monitor(self, watcher: Pid | None, target: Pid | tuple[str, str], ref: Ref) -> None:
        watcher = watcher if watcher is not None else self.runtime.system_pid
        if type(target) is Pid:
            node = target._node
            self._queue(node.name, node.creation,
                        self._encode([_MONITOR, watcher, target.id, ref]))
        else:
            self._queue(target[1], 0, self._encode([_MONITOR, watcher, target[0], ref]))  # type: ignore[index]

    def demonitor(self, target: Pid | tuple[str, str], ref: Ref) -> None:
        if type(target) is Pid:
            self._queue(target._node.name, target._node.creation, self._encode([_DEMONITOR, ref]))
        else:
            self._queue(target[1], 0, self._encode([_DEMONITOR, ref]))  # type: ignore[index]

    def down(self, watcher: Pid, ref: Ref, target: Any, reason: Any) -> None:
        node = watcher._node
        self._queue(node.name, node.creation, self._encode_signal([_DOWN, ref, target, reason], 3))

    def pubsub_broadcast(self, node: str | None, pubsub: str, topic: str, message: Any,
                         dispatcher: Any, from_pid: Pid | None) -> None:
        """A PubSub broadcast for the other nodes (``node=None``) or one: encoded once, one
        operation per node, fanned out there by that node's PubSub."""
        try:
            name = dispatcher_name(dispatcher)
        except TypeError as exc:
            raise WireError(str(exc)) from None
        op = self._encode([_PUBSUB, pubsub, topic, message, name, from_pid])
        if node is not None:
            self._queue(node, 0, op)
            return
        for peer in list(self.sessions.current.values()):
            self._queue(peer.name, peer.creation, op)

    # -- encoding and queueing ----------------------------------------------------------------

    def _encode(self, op: list[Any]) -> bytes:
        data = self.codec.encode(op)
        if len(data) > self._op_limit:
            raise WireError(
                f"a message of {len(data)} bytes encoded is over what the cluster's engine "
                f"carries in one frame ({self._op_limit} bytes: its max_payload less the "
                "framing); send large data in parts, or a reference to where it is stored"
            )
        return data

    def _encode_signal(self, op: list[Any], at: int) -> bytes:
        """An exit or down whose reason cannot cross is sent with a description instead:
        the signal itself must not be lost."""
        try:
            return self._encode(op)
        except WireError:
            op[at] = ("unencodable_reason", repr(op[at])[:200])
            return self._encode(op)

    def _queue(self, name: str, creation: int, op: bytes) -> None:
        if not self.running:
            return
        peer = self.sessions.current.get(name)
        if peer is not None and (creation == 0 or creation == peer.creation):
            box = self._outboxes.get(peer)
            if box is None:
                box = self._outboxes[peer] = []
            box.append(op)
            if len(box) >= _EARLY_FLUSH:  # a sender that does not yield: frames leave now,
                self._flush()  # and the transport's bounded outbox takes over
                scheduler = self.runtime.scheduler
                if scheduler.current is not None:  # and the tick ends, for the engine's
                    scheduler.cut = True  # client to write them while the rest wait a turn
            elif not self._flush_due:
                self._flush_due = True
                scheduler = self.runtime.scheduler
                if scheduler.current is not None:
                    # an actor sends, inside the scheduler's tick: the frames leave at the
                    # tick's end (with the calls it arms), a loop turn sooner than call_soon
                    scheduler.arming.append(self._after_tick)
                else:
                    assert self._loop is not None
                    self._loop.call_soon(self._flush_turn)
            return
        if peer is None and any(
            p.name == name and (creation == 0 or p.creation == creation)
            for p in self.sessions.peers.values()
        ):  # the handshake is under way: wait for it, boundedly
            pending = self._pending.setdefault(name, [])
            if len(pending) < self.max_pending:
                pending.append((creation, op))
                return
            if name not in self._overflowed:
                self._overflowed.add(name)
                _log.warning(
                    "cluster: node %s is connecting and %d operations already wait for it "
                    "(max_pending); further ones are dropped until it is up", name,
                    self.max_pending,
                )
        self.dropped += 1

    def _flush_turn(self) -> None:
        self._flush_due = False
        self._flush()

    def _flush(self) -> None:
        if not self._outboxes:
            return
        boxes, self._outboxes = self._outboxes, {}
        limit = self.transport.max_payload - _FRAME_OVERHEAD
        now = self._now()
        for peer, ops in boxes.items():
            if not peer.up:
                continue
            start, size = 0, 0
            for i, op in enumerate(ops):
                if size + len(op) + 8 > limit and i > start:
                    if not self._send_data(peer, ops[start:i], now):
                        break
                    start, size = i, 0
                size += len(op) + 8
            else:
                self._send_data(peer, ops[start:], now)

    def _send_data(self, peer: Peer, ops: list[bytes], now: float) -> bool:
        payload = msgpack.packb(ops, use_bin_type=True)
        return self._publish(peer, self.sessions.direct_header(peer, DATA, now), payload)

    def _publish(self, peer: Peer, header: Any, payload: bytes) -> bool:
        try:
            self.transport.publish(self.subject(peer.name), self.sealer.seal(header, payload))
        except (TransportBusy, FrameTooLarge) as exc:
            # A lost frame is a lost connection: the session ends, links and monitors fire,
            # and the two nodes meet again, as on the BEAM after a broken connection.
            _log.error("cluster: lost frames to node %s (%s); disconnecting it", peer.name, exc)
            events: list[Any] = []
            self.sessions._down(peer, events, "noconnection")
            self._act(events, b"")
            return False
        self.frames_out += 1
        return True

    # -- inbound ----------------------------------------------------------------------------

    def _arrived(self, frame: bytes) -> None:
        if not self.running:
            early = self._early
            if early is not None and len(early) < _EARLY_FRAMES:
                early.append(frame)  # while subscribing: a peer's answer to our subscription
            return
        try:
            header, payload = self.sealer.open(frame)
        except FrameError as exc:
            self.dropped += 1
            _log.debug("cluster: dropped a frame: %s", exc)
            return
        self.frames_in += 1
        if header.kind == HELLO and payload:
            self._note_os_pid(header, payload)
        events = self.sessions.accept(header, self._now())
        if events:
            self._act(events, payload)

    def _note_os_pid(self, header: Any, payload: bytes) -> None:
        key = (header.name, header.creation)
        if key not in self._os_pids and payload.isdigit() and len(payload) <= 10:
            if len(self._os_pids) >= _MAX_OS_PIDS:  # bounded: the oldest is forgotten
                del self._os_pids[next(iter(self._os_pids))]
            self._os_pids[key] = int(payload)

    def _process_gone(self, os_pid: int) -> None:
        """A node on this machine died without a goodbye: it is down now, not a tick later."""
        for key in [k for k, pid in self._os_pids.items() if pid == os_pid]:
            del self._os_pids[key]
            events = self.sessions.died(*key)
            if events:
                _log.info("cluster: node %s's process (%d) is gone", key[0], os_pid)
                self._act(events, b"")

    def _act(self, events: list[Any], payload: bytes) -> None:
        token = _context.CURRENT.set(self.runtime)
        try:
            for event in events:
                kind = event[0]
                if kind == DELIVER:
                    self._deliver(event[1], payload)
                elif kind == SEND_HELLO:
                    peer = event[1]
                    self._publish(peer, self.sessions.direct_header(peer, HELLO, self._now()),
                                  self._hello)
                elif kind == UP:
                    self._node_up(event[1])
                elif kind == DOWN:
                    self._node_down(event[1], event[2])
        finally:
            _context.CURRENT.reset(token)

    def _node_up(self, peer: Peer) -> None:
        node = self.table.node(peer.name, peer.creation)
        self.table.connected.add(node)
        _log.info("cluster: node %s is up", peer.name)
        pending = self._pending.pop(peer.name, None)
        self._overflowed.discard(peer.name)
        if pending:
            for creation, op in pending:
                if creation == 0 or creation == peer.creation:
                    self._queue(peer.name, creation, op)
        self.runtime.node_up(node)

    def _node_down(self, peer: Peer, reason: str) -> None:
        node = self.table.node(peer.name, peer.creation)
        self.table.connected.discard(node)
        self._outboxes.pop(peer, None)
        _log.info("cluster: node %s is down (%s)", peer.name, reason)
        self.runtime.node_down(node, reason)

    def _deliver(self, peer: Peer, payload: bytes) -> None:
        try:
            ops = msgpack.unpackb(payload, raw=False, use_list=True)
            if type(ops) is not list:
                raise ValueError("not a list")
        except Exception:
            _log.warning("cluster: a malformed data frame from node %s was dropped", peer.name)
            return
        node = self.table.node(peer.name, peer.creation)
        rt = self.runtime
        local = self.local
        decode = self.codec.decode
        for raw in ops:
            try:
                if type(raw) is not bytes:
                    raise WireError("an operation that is not bytes")
                op = decode(raw)
                kind = op[0]
                if kind == _SEND_NAME:  # the most frequent first
                    rt.dist_send_name(op[1], op[2])
                elif kind == _SEND:
                    rt.dist_send(self.table.pid(local, _id(op[1])), op[2])
                elif kind == _REPLY:
                    rt.dist_reply(op[1], op[2])
                elif kind == _LINK:
                    rt.dist_link(_remote(op[1], node), self.table.pid(local, _id(op[2])))
                elif kind == _UNLINK:
                    rt.dist_unlink(_remote(op[1], node), self.table.pid(local, _id(op[2])))
                elif kind == _EXIT:
                    sender = op[1] if op[1] is None else _remote(op[1], node)
                    rt.dist_exit(sender, self.table.pid(local, _id(op[2])), op[3], bool(op[4]))
                elif kind == _MONITOR:
                    if type(op[2]) not in (int, str):
                        raise WireError("a monitor of neither an id nor a name")
                    rt.dist_monitor(_remote(op[1], node), op[2], _ref(op[3]))
                elif kind == _DEMONITOR:
                    rt.dist_demonitor(node, _ref(op[1]))
                elif kind == _DOWN:
                    rt.dist_down(_ref(op[1]), op[2], op[3])
                elif kind == _PUBSUB:
                    _pubsub_in(op, node)
                else:
                    raise WireError(f"an unknown operation {kind!r}")
            except Exception as exc:
                _log.warning(
                    "cluster: an operation from node %s was dropped: %s: %s", peer.name,
                    type(exc).__name__, str(exc)[:200],
                )


class _AfterTick:
    """Run at the end of the scheduler's tick, beside the calls it arms (``_arm``)."""

    __slots__ = ("_arm",)

    def __init__(self, flush: Any) -> None:
        self._arm = flush


def _pubsub_in(op: list[Any], node: NodeId) -> None:
    """A broadcast from another node, fanned out to this node's subscribers."""
    _, pubsub, topic, message, name, from_pid = op
    if type(pubsub) is not str or type(topic) is not str:
        raise WireError("a broadcast without a PubSub name or topic")
    if find_table((_ADAPTERS, pubsub)) is None:
        return  # this node does not run that PubSub: nobody here subscribes to it
    dispatcher = dispatcher_named(name)
    try:
        if from_pid is None:
            PubSub.local_broadcast(pubsub, topic, message, dispatcher)
        else:
            sender = _remote(from_pid, node)
            PubSub.local_broadcast_from(pubsub, sender, topic, message, dispatcher)
    except RegistryError:
        return  # the PubSub is stopping here: its subscribers are going too


def _remote(pid: Any, node: NodeId) -> Pid:
    """A pid that must belong to the sending node (a node cannot speak for another)."""
    if type(pid) is not Pid or pid._node != node:
        raise WireError(f"a pid {pid!r} that is not of the sending node")
    return pid


def _id(id: Any) -> int:
    if type(id) is not int:
        raise WireError(f"expected a process id (int), got {type(id).__name__}")
    return id


def _ref(ref: Any) -> Ref:
    if type(ref) is not Ref:
        raise WireError(f"expected a Ref, got {type(ref).__name__}")
    return ref
