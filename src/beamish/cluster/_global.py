"""Global names: one name, one process, across the cluster (Erlang's ``global``).

Every node keeps the whole table (``whereis_name`` reads it without a message) and a name
server, ``"beamish.global"``, that keeps it in step with the other nodes':

- ``register_name(name, pid)`` answers at once from the local table: False if the name is
  held. Otherwise the name is taken here and announced to every node's server;
- a holder that exits, or is unregistered, is removed everywhere; the names held by
  processes of a node that goes down are removed on every other node;
- when two nodes meet (at start, or when a partition heals), each sends the other the names
  its own processes hold.

Conflicts. Two nodes can give one name to two processes: in a partition, or when both
register within the time a message takes between them (Erlang's ``global`` takes a cluster
lock to shut that window; beamish does not, so a registration never waits on the network).
Every node resolves a conflict the same way, so they agree without talking: the process with
the lower pid (ordered by node name, creation and number) keeps the name, and the other is
killed by its own node, with a warning naming both, as ``global``'s default resolver
(``random_exit_name``) kills one of the two.

Locks (Erlang's ``global:set_lock``/``del_lock``/``trans``), for code that must not race at
all: ``await set_lock(resource)`` takes the lock ``resource`` for the calling process on
every connected node (each node's name server grants it unless another process holds it
there; a refusal gives back what was granted, waits a random, growing while, and tries
again, ``retries`` times at most); ``del_lock`` gives it back, and a holder that exits (or
whose node goes down) loses its locks on every node. A lock is the calling process's, and
taking it again counts (as many ``del_lock`` as ``set_lock``). A lock is given back through
this node's name server, after whatever it announced before (a registration made under the
lock reaches every node before the lock is free there): ``Singleton`` registers its server
under one, so two nodes never start it at once while they are connected.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from beamish._errors import CallError, NotRegisteredError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import (
    current_runtime,
    demonitor,
    monitor,
    monitor_nodes,
    node,
    nodes,
    send,
)
from beamish._runtime.api import exit as _exit
from beamish._runtime.api import self as _self
from beamish._runtime.messages import Down, NodeDown, NodeUp
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.receive import sleep

__all__ = [
    "GlobalNames", "GlobalServer", "del_lock", "register_name", "registered_names",
    "send_global", "set_lock", "trans", "unregister_name", "whereis_name",
]

_log = logging.getLogger("beamish.cluster")
SERVER = "beamish.global"
LOCK_RETRIES = 50  # set_lock's default attempts after the first (a few seconds in all)
LOCK_BACKOFF = 0.005  # seconds: the first wait after a refusal; each doubles, up to:
LOCK_BACKOFF_MAX = 0.25
LOCK_CALL_TIMEOUT = 5.0  # seconds a node's name server has to answer a lock request


class GlobalNames:
    """The node's global name table, and the via protocol over it (``("global", name)``)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.names: dict[Any, Pid] = {}

    # -- the via protocol ---------------------------------------------------------------

    def register_name(self, name: Any, pid: Pid) -> bool:
        held = self.names.get(name)
        if held is not None and held != pid:
            return False
        self.check_wire(name)
        self.names[name] = pid
        send(SERVER, ("registered", name, pid))
        return True

    def check_wire(self, value: Any) -> None:
        """Raise here, not on another node, if ``value`` (a name, a lock's resource) cannot
        cross the wire."""
        member = self.runtime.distribution
        if member is not None:
            member.codec.encode(value)

    def unregister_name(self, name: Any) -> None:
        pid = self.names.pop(name, None)
        if pid is not None:
            send(SERVER, ("unregistered", name, pid))

    def whereis_name(self, name: Any) -> Pid | None:
        return self.names.get(name)

    def send(self, name: Any, message: Any) -> None:
        pid = self.names.get(name)
        if pid is None:
            raise NotRegisteredError(f"no process is registered globally as {name!r}")
        send(pid, message)

    def __repr__(self) -> str:
        return f"<global names of {self.runtime.node_id.name}: {len(self.names)}>"


class GlobalServer(GenServer):
    """Keeps this node's table in step with the other nodes' (see the module's doc)."""

    def init(self, table: GlobalNames) -> Ok:
        monitor_nodes(True)
        self.table = table
        self.watched: dict[Pid, Ref] = {}
        self.locks: dict[Any, list[Any]] = {}  # resource -> [holder, times taken]
        self.lockers: dict[Pid, Ref] = {}  # the holders of locks here, monitored
        for other in nodes():
            self._sync_to(other)
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        if request == "ping":  # sync_nodes: everything sent before it was taken in
            return Reply("pong", state)
        if request == "names":  # sync_nodes: the names this node's processes hold
            return Reply([(n, p) for n, p in self.table.names.items() if self._local(p)], state)
        match request:
            case ("lock", resource, Pid() as holder):  # set_lock, for this node's part
                held = self.locks.get(resource)
                if held is None:
                    self.locks[resource] = [holder, 1]
                    if holder not in self.lockers:
                        self.lockers[holder] = monitor(holder)
                elif held[0] == holder:
                    held[1] += 1
                else:
                    return Reply(False, state)
                return Reply(True, state)
        raise ValueError(f"the global name server does not understand {request!r}")

    def handle_info(self, message: Any, state: Any) -> NoReply:
        match message:
            case ("registered", name, Pid() as pid):  # from this node's register_name
                self._watch(pid)
                self._tell_all(("add", name, pid))
            case ("unregistered", name, Pid() as pid):
                self._tell_all(("del", name, pid))
            case ("add", name, Pid() as pid):  # from another node
                self._add(name, pid)
            case ("del", name, Pid() as pid):
                if self.table.names.get(name) == pid:
                    del self.table.names[name]
            case ("unlock", resource, Pid() as holder):  # from a holder's node's server
                self._unlock(resource, holder)
            case ("release", resource, Pid() as holder, list(at)):  # from this node's holder
                self._unlock(resource, holder)
                for other in at:  # after what this server announced before: in order
                    if other != node():
                        send((SERVER, other), ("unlock", resource, holder))
            case ("sync", list(entries)):
                for entry in entries:
                    if type(entry) is tuple and len(entry) == 2 and type(entry[1]) is Pid:
                        self._add(entry[0], entry[1])
            case Down(_, Pid() as pid, _):
                self.watched.pop(pid, None)
                for name in [n for n, p in self.table.names.items() if p == pid]:
                    del self.table.names[name]
                    self._tell_all(("del", name, pid))
                self._drop_locks(lambda holder: holder == pid)
            case NodeUp(up):
                self._sync_to(up)
            case NodeDown(down, _):
                for name in [n for n, p in self.table.names.items() if p.node == down]:
                    del self.table.names[name]
                self._drop_locks(lambda holder: holder.node == down)
            case _:
                _log.warning("global name server: an unexpected message %.200r", message)
        return NoReply(state)

    def _local(self, pid: Pid) -> bool:
        return pid.node_id == current_runtime().node_id

    def _watch(self, pid: Pid) -> None:
        if self._local(pid) and pid not in self.watched:
            self.watched[pid] = monitor(pid)

    def _add(self, name: Any, pid: Pid) -> None:
        held = self.table.names.get(name)
        if held is None or held == pid:
            self.table.names[name] = pid
            self._watch(pid)
            return
        winner, loser = (held, pid) if held < pid else (pid, held)
        self.table.names[name] = winner
        self._watch(winner)
        if self._local(loser):
            _log.warning(
                "global name conflict for %r: %r on %s keeps it, %r is killed",
                name, winner, winner.node, loser,
            )
            ref = self.watched.pop(loser, None)
            if ref is not None and not any(p == loser for p in self.table.names.values()):
                demonitor(ref, flush=True)
            _exit(loser, "kill")

    def _unlock(self, resource: Any, holder: Pid) -> None:
        held = self.locks.get(resource)
        if held is None or held[0] != holder:
            return
        held[1] -= 1
        if held[1] <= 0:
            del self.locks[resource]
            if not any(h[0] == holder for h in self.locks.values()):
                ref = self.lockers.pop(holder, None)
                if ref is not None:
                    demonitor(ref, flush=True)

    def _drop_locks(self, gone: Any) -> None:
        """The locks of holders that exited or whose node went down, given back."""
        for resource in [r for r, (holder, _) in self.locks.items() if gone(holder)]:
            del self.locks[resource]
        for holder in [h for h in self.lockers if gone(h)]:
            demonitor(self.lockers.pop(holder), flush=True)

    def _tell_all(self, message: Any) -> None:
        for other in nodes():
            send((SERVER, other), message)

    def _sync_to(self, other: str) -> None:
        mine = [(n, p) for n, p in self.table.names.items() if self._local(p)]
        send((SERVER, other), ("sync", mine))


def _table() -> GlobalNames:
    registry = current_runtime().global_registry
    if registry is None:
        raise NotRegisteredError(
            "global names need this node to be in a cluster: connect it first "
            "(beamish.cluster.connect, or beamish run --cluster URL)"
        )
    return registry  # type: ignore[no-any-return]


def register_name(name: Any, pid: Pid) -> bool:
    """Register ``pid`` under the global ``name``; False if the name is held."""
    return _table().register_name(name, pid)


def unregister_name(name: Any) -> None:
    """Remove the global ``name`` (a no-op if nobody holds it)."""
    _table().unregister_name(name)


def whereis_name(name: Any) -> Pid | None:
    """The pid holding the global ``name``, or None."""
    return _table().whereis_name(name)


def registered_names() -> list[Any]:
    """Every global name known to this node."""
    return list(_table().names)


def send_global(name: Any, message: Any) -> None:
    """Send to the holder of the global ``name``; raises NotRegisteredError if none."""
    _table().send(name, message)


# -- locks (Erlang's global:set_lock, del_lock, trans) ------------------------------------


async def set_lock(resource: Any, *, retries: int = LOCK_RETRIES) -> bool:
    """Take the lock ``resource`` for the calling process on this node and every connected
    node; False if another process still held it after ``retries`` more attempts (see the
    module's documentation). A node that does not answer is taken as gone: it is skipped."""
    table = _table()  # in a cluster, or NotRegisteredError says how to join one
    if type(retries) is not int or retries < 0:
        raise ValueError(f"retries is an int >= 0, got {retries!r}")
    table.check_wire(resource)
    me = _self()
    wait = LOCK_BACKOFF
    for attempt in range(retries + 1):
        granted: list[str] = []
        refused = False
        for at in [node(), *nodes()]:
            try:
                ok = await GenServer.call(SERVER if at == node() else (SERVER, at),
                                          ("lock", resource, me), timeout=LOCK_CALL_TIMEOUT)
            except CallError:
                if at == node():
                    raise
                continue  # its node went away meanwhile
            if not ok:
                refused = True
                break
            granted.append(at)
        if not refused:
            return True
        send(SERVER, ("release", resource, me, granted))
        if attempt < retries:
            await sleep(random.uniform(0, wait))
            wait = min(wait * 2, LOCK_BACKOFF_MAX)
    return False


def del_lock(resource: Any) -> None:
    """Give back the calling process's lock ``resource`` on every node (once: as many
    times as it was taken). Through this node's name server, after what it announced."""
    send(SERVER, ("release", resource, _self(), [node(), *nodes()]))


async def trans(resource: Any, fn: Any, *args: Any, retries: int = LOCK_RETRIES) -> Any:
    """Run ``fn(*args)`` (awaited if it returns an awaitable) holding the lock
    ``resource``, and give it back after; ``TimeoutError`` if the lock could not be taken
    (Erlang's ``global:trans`` answers ``aborted``)."""
    if not await set_lock(resource, retries=retries):
        raise TimeoutError(
            f"the global lock {resource!r} is held elsewhere and was not freed within "
            f"{retries} retries"
        )
    try:
        result = fn(*args)
        if hasattr(result, "__await__"):
            result = await result
        return result
    finally:
        del_lock(resource)
