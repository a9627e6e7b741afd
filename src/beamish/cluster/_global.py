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
"""

from __future__ import annotations

import logging
from typing import Any

from beamish._errors import NotRegisteredError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import current_runtime, demonitor, monitor, monitor_nodes, nodes, send
from beamish._runtime.api import exit as _exit
from beamish._runtime.messages import Down, NodeDown, NodeUp
from beamish._runtime.pid import Pid, Ref

__all__ = [
    "GlobalNames", "GlobalServer", "register_name", "registered_names", "send_global",
    "unregister_name", "whereis_name",
]

_log = logging.getLogger("beamish.cluster")
SERVER = "beamish.global"


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
        member = self.runtime.distribution
        if member is not None:
            member.codec.encode(name)  # a name that cannot cross the wire raises here
        self.names[name] = pid
        send(SERVER, ("registered", name, pid))
        return True

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
        for node in nodes():
            self._sync_to(node)
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        if request == "ping":  # sync_nodes: everything sent before it was taken in
            return Reply("pong", state)
        if request == "names":  # sync_nodes: the names this node's processes hold
            return Reply([(n, p) for n, p in self.table.names.items() if self._local(p)], state)
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
            case ("sync", list(entries)):
                for entry in entries:
                    if type(entry) is tuple and len(entry) == 2 and type(entry[1]) is Pid:
                        self._add(entry[0], entry[1])
            case Down(_, Pid() as pid, _):
                self.watched.pop(pid, None)
                for name in [n for n, p in self.table.names.items() if p == pid]:
                    del self.table.names[name]
                    self._tell_all(("del", name, pid))
            case NodeUp(node):
                self._sync_to(node)
            case NodeDown(node, _):
                for name in [n for n, p in self.table.names.items() if p.node == node]:
                    del self.table.names[name]
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

    def _tell_all(self, message: Any) -> None:
        for node in nodes():
            send((SERVER, node), message)

    def _sync_to(self, node: str) -> None:
        mine = [(n, p) for n, p in self.table.names.items() if self._local(p)]
        send((SERVER, node), ("sync", mine))


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
