"""The processes behind a Tracker: its shards (hidden).

How it works. ``Tracker.start_link`` starts a supervisor, registered under the tracker's
name, of ``pool_size`` shards; a topic always goes to the same shard (a stable hash of the
topic, equal on every node). Each shard is a GenServer that owns a ``TrackerState`` (the pure
CRDT of ``_tracker_state.py``) and:

- serves ``track``/``untrack``/``update`` calls, and monitors each tracked pid: a pid that
  exits leaves all its presences;
- every ``broadcast_period`` sends a heartbeat, through PubSub, to the same shard of the same
  tracker on the other nodes (topic ``beamish.tracker:<scope>:<shard>``): the delta of its
  changes since the last heartbeat, or, when nothing changed, only its clock (at least every
  ``max_silent_periods`` periods);
- merges the deltas it hears, when each follows the last one it merged from that replica.
  When one does not (a heartbeat was lost), or a heartbeat's clock is ahead of what it
  received, it asks that replica for its whole state (an *extract*, sent back by a direct
  broadcast to the asking node); a replica it hears of for the first time gets its extract
  unasked;
- marks a replica silent for ``down_period`` *down* (its presences leave, but are kept), *up*
  again when it speaks, and forgets it after ``permdown_period``. A replica that restarted
  comes back with a new version: the old one is forgotten at once. A shard that stops says
  goodbye, so the others forget it at once too;
- after each local change and each merge, calls the callback module's ``handle_diff``.

Each shard publishes its state in the tracker's ``Pool``, which readers reach through the
runtime's index (see ``_tracker.py``): the shard is the only writer.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beamish._errors import RegistryError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply, Stop
from beamish._runtime.api import demonitor, monitor, monotonic, send_after, trap_exit
from beamish._runtime.isolation import is_shared, mark_shared
from beamish._runtime.messages import Down, Exit, is_clean_exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.records import register_wire_type
from beamish._runtime.request import ReplyTo
from beamish.pubsub._pubsub import PubSub
from beamish.pubsub._tracker_state import (
    Delta,
    Diffs,
    Dots,
    Entry,
    TrackerState,
    merge_diffs,
)

__all__ = [
    "Options", "Peer", "Pool", "UserDiffs", "check_meta", "copy_meta", "start_shard",
]

_log = logging.getLogger("beamish.tracker")
_UNSET: Any = object()

UserDiffs = dict[str, tuple[list[tuple[Any, dict[str, Any]]], list[tuple[Any, dict[str, Any]]]]]
"""What ``handle_diff`` receives: per topic, ``(joins, leaves)`` of ``(key, meta)`` pairs."""


# -- what shards tell each other -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """One replica of a tracker shard: ``name`` (its node's, unless the tracker was given
    ``replica=``), ``vsn`` (when this incarnation started, in ns: a restart is a new
    version) and the PubSub ``node`` that reaches it."""

    name: str
    vsn: int
    node: str

    @property
    def id(self) -> str:
        """The replica id its dots carry: name and version."""
        return f"{self.name}#{self.vsn:x}"


@dataclass(frozen=True, slots=True)
class _Heartbeat:
    sender: Peer
    clock: int
    delta: Delta | None


@dataclass(frozen=True, slots=True)
class _TransferRequest:
    to: str
    sender: Peer


@dataclass(frozen=True, slots=True)
class _Transfer:
    to: str
    sender: Peer
    clock: int
    state: Delta


@dataclass(frozen=True, slots=True)
class _Goodbye:
    sender: Peer


# what replicas send each other crosses nodes
for _cls, _name in (
    (Peer, "Peer"), (_Heartbeat, "Heartbeat"), (_TransferRequest, "TransferRequest"),
    (_Transfer, "Transfer"), (_Goodbye, "Goodbye"), (Entry, "Entry"), (Dots, "Dots"),
    (Delta, "Delta"),
):
    register_wire_type(_cls, f"beamish.tracker.{_name}")


@mark_shared
class _Tick:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<tracker heartbeat tick>"


_TICK = _Tick()


# -- options and the pool ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """A tracker's options, checked (see ``Tracker``)."""

    name: str
    pubsub: str
    pool_size: int
    broadcast_period: float
    max_silent_periods: int
    down_period: float
    permdown_period: float
    replica: str | None
    scope: str


class Pool:
    """The shards of one tracker: their pids and states, shared with readers."""

    __slots__ = ("__weakref__", "name", "peers", "pids", "size", "states")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.pids: list[Pid | None] = [None] * size
        self.states: list[TrackerState | None] = [None] * size
        self.peers: list[dict[str, _PeerInfo] | None] = [None] * size


def copy_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A copy of a meta that shares only its immutable values."""
    return {k: v if is_shared(v) else copy.deepcopy(v) for k, v in meta.items()}


def check_meta(meta: Any) -> dict[str, Any]:
    """``meta`` as a new dict; a ``TypeError`` that shows the accepted form if it is not one."""
    if not isinstance(meta, Mapping):
        raise TypeError(
            f"a presence meta is a dict (the tracker adds its 'phx_ref' to it), got {meta!r} "
            f"({type(meta).__name__}); e.g. {{'online_at': 1700000000}}"
        )
    return dict(meta)


def _new_ref() -> str:
    return base64.b64encode(os.urandom(8)).decode()


# -- the shard process ---------------------------------------------------------------------------


class _PeerInfo:
    __slots__ = ("down", "heard", "peer", "requested")

    def __init__(self, peer: Peer, heard: float) -> None:
        self.peer = peer
        self.heard = heard
        self.down = False
        self.requested: float | None = None


async def start_shard(callbacks: type, arg: Any, opts: Options, pool: Pool, index: int) -> Pid:
    """Start shard ``index`` of a tracker, linked to the caller (its supervisor)."""
    return await _Shard.start_link(
        (callbacks, arg, opts, pool, index), name=f"{opts.name}.Shard{index}"
    )


class _Shard(GenServer):
    """One shard: owns a TrackerState, monitors tracked pids, replicates (see the module)."""

    __slots__ = (
        "_callbacks", "_gone", "_index", "_monitors", "_opts", "_peer", "_peers", "_pool",
        "_presences", "_silent", "_topic",
    )

    _callbacks: Any
    _opts: Options
    _pool: Pool
    _index: int
    _peer: Peer
    _presences: TrackerState
    _topic: str
    _monitors: dict[Pid, Ref]
    _peers: dict[str, _PeerInfo]
    _gone: set[str]
    _silent: int

    def init(self, arg: tuple[type, Any, Options, Pool, int]) -> Any:
        cls, user_arg, opts, pool, index = arg
        trap_exit(True)
        node = PubSub.node_name(opts.pubsub)  # a clear error if the PubSub is not running
        self._opts, self._pool, self._index = opts, pool, index
        self._peer = Peer(opts.replica or node, time.time_ns(), node)
        self._presences = TrackerState(self._peer.id)
        self._topic = f"beamish.tracker:{opts.scope}:{index}"
        self._monitors, self._peers, self._gone, self._silent = {}, {}, set(), 0
        self._callbacks = cls()
        return _then(self._callbacks.init(user_arg), self._started)

    def _started(self, result: Any) -> Any:
        state = _ok_state(result)
        if state is _UNSET:
            return Stop(("bad_return_value", result))
        PubSub.subscribe(self._opts.pubsub, self._topic)
        self._pool.pids[self._index] = self.pid
        self._pool.states[self._index] = self._presences
        self._pool.peers[self._index] = self._peers
        self._heartbeat(self._presences.take_delta())  # so that the others push us their state
        send_after(self.pid, _TICK, self._opts.broadcast_period)
        return Ok(state)

    def terminate(self, reason: Any, state: Any) -> None:
        if self._pool.pids[self._index] == self.pid:
            self._pool.pids[self._index] = None
            self._pool.states[self._index] = None
            self._pool.peers[self._index] = None
        with contextlib.suppress(RegistryError):  # the PubSub may have stopped first
            PubSub.broadcast_from(self._opts.pubsub, self.pid, self._topic, _Goodbye(self._peer))

    # -- local changes ------------------------------------------------------------------------

    def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        presences = self._presences
        match request:
            case ("track", pid, topic, key, meta):
                if presences.get_local(pid, topic, key) is not None:
                    return Reply(("error", ("already_tracked", pid, topic, key)), state)
                ref = _new_ref()
                meta["phx_ref"] = ref
                diffs = presences.join(pid, topic, key, meta)
                if pid not in self._monitors:
                    self._monitors[pid] = monitor(pid)
                return self._diffed(diffs, state, ("ok", ref))
            case ("untrack", pid, topic, key):
                diffs = presences.leave(pid, topic, key)
                self._unwatch(pid)
                return self._diffed(diffs, state, ("ok", None))
            case ("untrack_all", pid):
                diffs = presences.leave_pid(pid)
                self._unwatch(pid)
                return self._diffed(diffs, state, ("ok", None))
            case ("update", pid, topic, key, change):
                old = presences.get_local(pid, topic, key)
                if old is None:
                    return Reply(("error", "nopresence"), state)
                if callable(change):
                    try:
                        change = check_meta(change(copy_meta(old.meta)))
                    except Exception as exc:  # the caller's function: the caller's error
                        return Reply(("raise", exc), state)
                ref = _new_ref()
                meta = {**change, "phx_ref": ref, "phx_ref_prev": old.meta["phx_ref"]}
                return self._diffed(presences.update(pid, topic, key, meta), state, ("ok", ref))
        return super().handle_call(request, from_, state)

    def _unwatch(self, pid: Pid) -> None:
        if not self._presences.get_by_pid(pid):
            ref = self._monitors.pop(pid, None)
            if ref is not None:
                demonitor(ref, flush=True)

    # -- messages -----------------------------------------------------------------------------

    def handle_info(self, message: Any, state: Any) -> Any:
        kind = type(message)
        me = self._peer.id
        if kind is _Heartbeat:
            return self._diffed(self._heard(message.sender, message.clock, message.delta), state)
        if kind is _Tick:
            return self._tick(state)
        if kind is Down:
            if self._monitors.get(message.pid) == message.ref:
                del self._monitors[message.pid]
                return self._diffed(self._presences.leave_pid(message.pid), state)
            return NoReply(state)
        if kind is _Transfer:
            if message.to != me:
                return NoReply(state)
            return self._diffed(self._heard(message.sender, message.clock, message.state), state)
        if kind is _TransferRequest:
            if message.to == me:
                self._send_to(message.sender, self._transfer_to(message.sender))
            return NoReply(state)
        if kind is _Goodbye:
            info = self._peers.get(message.sender.name)
            if info is None or info.peer != message.sender:
                return NoReply(state)
            return self._diffed(self._forget(info, "stopped"), state)
        if kind is Exit:  # we trap exits: the PubSub we subscribed to went down
            if is_clean_exit(message.reason):
                return NoReply(state)
            return Stop(message.reason, state)
        result = self._callbacks.handle_info(message, state)
        return _then(result, lambda done: self._applied(done, state))

    # -- replication --------------------------------------------------------------------------

    def _heartbeat(self, delta: Delta | None) -> None:
        message = _Heartbeat(self._peer, self._presences.clock, delta)
        PubSub.broadcast_from(self._opts.pubsub, self.pid, self._topic, message)

    def _send_to(self, peer: Peer, message: Any) -> None:
        PubSub.direct_broadcast(peer.node, self._opts.pubsub, self._topic, message)

    def _transfer_to(self, peer: Peer) -> _Transfer:
        return _Transfer(peer.id, self._peer, self._presences.clock, self._presences.extract())

    def _heard(self, sender: Peer, clock: int, delta: Delta | None) -> Diffs:
        """A heartbeat or a transfer from ``sender``: who is up, what changed, what we miss."""
        if sender.name == self._peer.name or sender.id in self._gone:
            return {}  # ourselves (another incarnation's late message), or one that left
        diffs: Diffs = {}
        now = monotonic()
        info = self._peers.get(sender.name)
        if info is not None and info.peer.vsn != sender.vsn:
            # a new incarnation (the one it replaces is now in _gone, so that a late message
            # of the old one is ignored, whatever the wall clocks say)
            merge_diffs(diffs, self._forget(info, "restarted"))
            info = None
        if info is None:
            info = self._peers[sender.name] = _PeerInfo(sender, now)
            _log.debug("%s: replica %s is up", self._opts.name, sender.id)
            self._send_to(sender, self._transfer_to(sender))  # it needs ours as much
        elif info.down:
            info.down = False
            _log.info("%s: replica %s is up again", self._opts.name, sender.id)
            merge_diffs(diffs, self._presences.replica_up(sender.id))
        info.heard = now
        if delta is not None and self._presences.follows(delta):
            merge_diffs(diffs, self._presences.merge(delta))
        # else a delta was lost in between: merging this one would show a mix of old and
        # new; ask for the whole state instead
        if self._presences.missing(sender.id, clock):
            if info.requested is None or now - info.requested >= self._opts.broadcast_period:
                info.requested = now
                self._send_to(sender, _TransferRequest(sender.id, self._peer))
        else:
            info.requested = None
        return diffs

    def _forget(self, info: _PeerInfo, why: str) -> Diffs:
        peer = info.peer
        del self._peers[peer.name]
        if why != "permdown":  # restarted or stopped: it never comes back under this id
            self._gone.add(peer.id)
        _log.info("%s: replica %s is gone (%s)", self._opts.name, peer.id, why)
        return self._presences.remove_replica(peer.id)

    def _tick(self, state: Any) -> Any:
        opts = self._opts
        delta = self._presences.take_delta()
        if delta is not None or self._silent + 1 >= opts.max_silent_periods:
            self._heartbeat(delta)
            self._silent = 0
        else:
            self._silent += 1
        diffs: Diffs = {}
        now = monotonic()
        for info in list(self._peers.values()):
            quiet = now - info.heard
            if not info.down and quiet >= opts.down_period:
                info.down = True
                _log.info("%s: replica %s is down (silent for %.1fs)", opts.name,
                          info.peer.id, quiet)
                merge_diffs(diffs, self._presences.replica_down(info.peer.id))
            elif info.down and quiet >= opts.permdown_period:
                merge_diffs(diffs, self._forget(info, "permdown"))
        send_after(self.pid, _TICK, opts.broadcast_period)
        return self._diffed(diffs, state)

    # -- handle_diff ------------------------------------------------------------------------

    def _diffed(self, diffs: Diffs, state: Any, answer: Any = _UNSET) -> Any:
        """Tell the callback module what changed, then reply ``answer`` (if a call)."""
        if not diffs:
            return NoReply(state) if answer is _UNSET else Reply(answer, state)
        result = self._callbacks.handle_diff(_user_diffs(diffs), state)
        return _then(result, lambda done: self._applied(done, state, answer))

    @staticmethod
    def _applied(result: Any, state: Any, answer: Any = _UNSET) -> Any:
        new_state = _ok_state(result)
        if new_state is _UNSET:
            return Stop(("bad_return_value", result), state)
        return NoReply(new_state) if answer is _UNSET else Reply(answer, new_state)


# -- helpers -------------------------------------------------------------------------------------


def _then(result: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn(result)``, after awaiting ``result`` if a callback was ``async def``."""
    if inspect.isawaitable(result):
        awaitable = result

        async def finish() -> Any:
            return fn(await awaitable)

        return finish()
    return fn(result)


def _ok_state(result: Any) -> Any:
    if type(result) is Ok:
        return result.state
    if type(result) is tuple and len(result) == 2 and result[0] == "ok":
        return result[1]
    return _UNSET


def _user_diffs(diffs: Diffs) -> UserDiffs:
    return {
        topic: (_pairs(joins), _pairs(leaves)) for topic, (joins, leaves) in diffs.items()
    }


def _pairs(entries: list[Entry]) -> list[tuple[Any, dict[str, Any]]]:
    return [(e.key, copy_meta(e.meta)) for e in entries]
