"""Process groups across the cluster (Erlang's ``pg``).

A process joins a group by name; ``get_members(group)`` lists the members on every node.
As in ``pg``, only a local process can join (it joins through its own node), a process may
join a group more than once (and leaves once per join), and membership is eventually
consistent: each node's scope server tells the others what its own processes joined and left,
sends its whole membership to a node that comes up, and drops the members of a node that
goes down. A member that exits leaves all its groups. Reads take no message: they look at the
node's table.

The default scope is ``"beamish.pg"``, started with the node's cluster membership.
"""

from __future__ import annotations

import logging
from typing import Any

from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import current_runtime, monitor, monitor_nodes, nodes, send
from beamish._runtime.messages import Down, NodeDown, NodeUp
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.tables import find_table, new_table

__all__ = [
    "PgServer", "get_local_members", "get_members", "join", "leave", "which_groups",
]

_log = logging.getLogger("beamish.cluster")
SCOPE = "beamish.pg"


class PgServer(GenServer):
    """One node's side of a scope: its table, and the sync with the other nodes'."""

    def init(self, scope: str) -> Ok:
        monitor_nodes(True)
        self.scope = scope
        # group -> members (with repeats), for the whole cluster; read without a message
        self.groups: dict[Any, list[Pid]] = {}
        new_table(("beamish.pg", scope), self.groups)  # owned by this server: gone with it
        self.local: dict[Pid, tuple[Ref, list[Any]]] = {}  # member -> (monitor, its groups)
        for node in nodes():
            send((scope, node), ("sync", current_runtime().node_id.name, []))
        return Ok(None)

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        match request:
            case ("join", group, list(pids)):
                for pid in pids:
                    ref, joined = self.local.get(pid) or (monitor(pid), [])
                    joined.append(group)
                    self.local[pid] = (ref, joined)
                self.groups.setdefault(group, []).extend(pids)
                self._tell_all(("join", group, pids))
                return Reply("ok", state)
            case ("leave", group, list(pids)):
                left = [p for p in pids if self._leave_local(p, group)]
                if not left:
                    return Reply("not_joined", state)
                self._drop(group, left)
                self._tell_all(("leave", group, left))
                return Reply("ok", state)
        return Reply(("error", "unknown request"), state)

    def handle_info(self, message: Any, state: Any) -> NoReply:
        match message:
            case ("join", group, list(pids)):  # from another node's server
                self.groups.setdefault(group, []).extend(p for p in pids if type(p) is Pid)
            case ("leave", group, list(pids)):
                self._drop(group, pids)
            case ("sync", str(node), list(entries)):
                self._forget_node(node)
                for entry in entries:
                    if type(entry) is tuple and len(entry) == 2 and type(entry[1]) is list:
                        members = [p for p in entry[1] if type(p) is Pid and p.node == node]
                        self.groups.setdefault(entry[0], []).extend(members)
            case Down(_, Pid() as pid, _):
                entry = self.local.pop(pid, None)
                if entry is not None:
                    for group in set(entry[1]):
                        count = entry[1].count(group)
                        self._drop(group, [pid] * count)
                        self._tell_all(("leave", group, [pid] * count))
            case NodeUp(node):
                mine: dict[Any, list[Pid]] = {}
                for pid, (_, joined) in self.local.items():
                    for group in joined:
                        mine.setdefault(group, []).append(pid)
                me = current_runtime().node_id.name
                send((self.scope, node), ("sync", me, list(mine.items())))
            case NodeDown(node, _):
                self._forget_node(node)
            case _:
                _log.warning("pg scope %s: an unexpected message %.200r", self.scope, message)
        return NoReply(state)

    def _leave_local(self, pid: Pid, group: Any) -> bool:
        entry = self.local.get(pid)
        if entry is None or group not in entry[1]:
            return False
        entry[1].remove(group)
        if not entry[1]:
            from beamish._runtime.api import demonitor

            demonitor(entry[0], flush=True)
            del self.local[pid]
        return True

    def _drop(self, group: Any, pids: list[Any]) -> None:
        members = self.groups.get(group)
        if members is None:
            return
        for pid in pids:
            if pid in members:
                members.remove(pid)
        if not members:
            del self.groups[group]

    def _forget_node(self, node: str) -> None:
        for group in list(self.groups):
            kept = [p for p in self.groups[group] if p.node != node]
            if kept:
                self.groups[group] = kept
            else:
                del self.groups[group]

    def _tell_all(self, message: Any) -> None:
        for node in nodes():
            send((self.scope, node), message)


def _groups(scope: str) -> dict[Any, list[Pid]]:
    found = find_table(("beamish.pg", scope))
    groups: dict[Any, list[Pid]] | None = found.data if found is not None else None
    if groups is None:
        raise LookupError(
            f"no pg scope {scope!r} runs on this node: it starts with the node's cluster "
            "membership (beamish.cluster.connect)"
        )
    return groups


def _pids(pid_or_pids: Pid | list[Pid]) -> list[Pid]:
    pids = [pid_or_pids] if type(pid_or_pids) is Pid else list(pid_or_pids)  # type: ignore[arg-type]
    here = current_runtime().node_id
    for pid in pids:
        if type(pid) is not Pid or pid.node_id != here:
            raise ValueError(f"only a process of this node can join or leave a group, got {pid!r}")
    return pids


async def join(group: Any, pid_or_pids: Pid | list[Pid], *, scope: str = SCOPE) -> None:
    """Add the local process(es) to ``group`` (once more, if already a member)."""
    await GenServer.call(scope, ("join", group, _pids(pid_or_pids)))


async def leave(group: Any, pid_or_pids: Pid | list[Pid], *, scope: str = SCOPE) -> bool:
    """Remove one membership of each local process; False if none was a member."""
    return bool(await GenServer.call(scope, ("leave", group, _pids(pid_or_pids))) == "ok")


def get_members(group: Any, *, scope: str = SCOPE) -> list[Pid]:
    """Every member of ``group`` on every node (a process once per join)."""
    return list(_groups(scope).get(group, ()))


def get_local_members(group: Any, *, scope: str = SCOPE) -> list[Pid]:
    """The members of ``group`` on this node."""
    here = current_runtime().node_id
    return [p for p in _groups(scope).get(group, ()) if p.node_id == here]


def which_groups(*, scope: str = SCOPE) -> list[Any]:
    """The groups with at least one member anywhere."""
    return list(_groups(scope))
