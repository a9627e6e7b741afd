"""Signals that cross nodes: the kernel's half of distribution (a mixin of the Runtime).

How it works. Locally a link or a monitor lives in the two process records. Across nodes
each side keeps its own half, and the bookkeeping below lets a node that goes down take its
halves with it, as the BEAM does:

- ``_remote_links[node]``: the (local pid, remote pid) links with that node. A local process
  that exits sends each remote partner an exit signal over the wire; when the node goes down
  every local partner gets an exit signal ``"noconnection"``.
- ``_remote_monitors[ref]``: monitors held here on processes of other nodes (the watcher is
  a process, which gets ``Down``, or a callback such as a call's ``ReplyTo``). They fire with
  the reason the target's node sends, or ``"noconnection"`` when it goes down.
- ``_remote_watched[node]``: monitors that processes of ``node`` hold on local processes
  (stored in the target's watchers as a ``_RemoteWatcher``, which sends the down over the
  wire); dropped when the node goes down.
- ``_aliases``: calls of this node waiting for a reply from anywhere (EEP 53's aliases):
  a ``ReplyTo`` that crosses the wire is registered here under a number, and a reply that
  comes back for a number no longer here (the call timed out) is dropped.

Everything here runs in the kernel's cold branches only: a pid with no local record whose
node is not this one, or a ``(name, node)`` destination.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from beamish._runtime.messages import Down, NodeDown, NodeUp
from beamish._runtime.pairs import put, take
from beamish._runtime.pid import NodeId, Pid, Ref
from beamish._runtime.process import Process

if TYPE_CHECKING:
    from beamish._runtime.distribution import Distribution
    from beamish._runtime.request import ReplyTo

__all__ = ["Remote", "RemoteTarget", "node_of"]

_log = logging.getLogger("beamish.cluster")

RemoteTarget = Pid | tuple[str, str]  # a remote pid, or (registered name, node name)


def node_of(target: RemoteTarget) -> str:
    """The node name a remote target lives on."""
    if isinstance(target, Pid):
        return target.node
    return target[1]


class _RemoteWatcher:
    """A monitor held by a process of another node on a local process: it sends the down."""

    __slots__ = ("node", "runtime", "watcher")

    def __init__(self, runtime: Remote, node: NodeId, watcher: Pid) -> None:
        self.runtime = runtime
        self.node = node
        self.watcher = watcher

    def __call__(self, ref: Ref, pid: Pid, reason: Any) -> None:
        rt = self.runtime
        watched = rt._remote_watched.get(self.node)
        if watched is not None:
            watched.pop(ref, None)
        if rt.distribution is not None:
            rt.distribution.down(self.watcher, ref, pid, reason)


class Remote:
    """The distribution half of the Runtime (a mixin: it uses the Runtime's tables)."""

    node_id: NodeId
    system_pid: Pid
    wakeups: int
    _procs: dict[int, Process]
    _names: dict[str, Process]

    def _init_remote(self) -> None:
        self.distribution: Distribution | None = None
        self._aliases: dict[int, ReplyTo] = {}
        self._alias_ids = 0
        self._remote_links: dict[str, set[tuple[Pid, Pid]]] = {}
        self._remote_monitors: dict[Ref, tuple[RemoteTarget, Process | Any]] = {}
        self._remote_watched: dict[NodeId, dict[Ref, Pid]] = {}
        self._node_monitors: dict[str, list[Pid]] = {}
        self._nodes_monitors: set[Pid] = set()
        # the cluster's global name registry (a via registry), when the node is in a cluster
        self.global_registry: Any = None

    if TYPE_CHECKING:  # provided by the Runtime and its other mixins
        def _deliver(self, proc: Process, message: Any) -> None: ...
        def _exit_signal(
            self, target: Process, sender: Pid | None, reason: Any, *, link: bool
        ) -> None: ...
        def _kill(self, target: Process) -> None: ...
        def _watch(self, target: Process, ref: Ref, watcher: Any) -> None: ...

    # -- the distribution ---------------------------------------------------------------

    def attach_distribution(self, distribution: Distribution) -> None:
        """Make this runtime part of a cluster (``beamish.cluster.connect`` calls it)."""
        if self.distribution is not None and self.distribution is not distribution:
            raise RuntimeError(f"node {self.node_id.name} is already connected to a cluster")
        self.distribution = distribution

    def detach_distribution(self, distribution: Distribution) -> None:
        if self.distribution is distribution:
            self.distribution = None

    def connected_nodes(self) -> list[str]:
        dist = self.distribution
        return dist.nodes() if dist is not None else []

    def _is_local(self, target: RemoteTarget) -> bool:
        return (target._node == self.node_id if type(target) is Pid
                else target[1] == self.node_id.name)  # type: ignore[index]

    # -- outbound: the kernel's cold branches -------------------------------------------

    def _send_remote(self, dest: RemoteTarget, message: Any) -> None:
        """Send to a remote pid or ``(name, node)``; dropped when there is no cluster."""
        dist = self.distribution
        if dist is None:
            return
        if type(dest) is Pid:
            dist.send(dest, message)
        else:
            dist.send_name(dest[0], dest[1], message)  # type: ignore[index]

    def _link_remote(self, me: Process, other: Pid) -> bool:
        """Link ``me`` to a remote pid; False if its node is not connected (noconnection)."""
        dist = self.distribution
        if dist is None or not dist.is_connected(other.node):
            return False
        from beamish._runtime.signals import _add_link

        _add_link(me, other)
        self._remote_links.setdefault(other.node, set()).add((me.pid, other))
        dist.link(me.pid, other)
        return True

    def _unlink_remote(self, me: Process, other: Pid) -> None:
        links = self._remote_links.get(other.node)
        if links is not None and (me.pid, other) in links:
            links.discard((me.pid, other))
            if self.distribution is not None:
                self.distribution.unlink(me.pid, other)

    def _exit_remote(self, sender: Pid | None, target: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal to a remote pid: by ``exit()``, or a local partner's exit."""
        if link:
            links = self._remote_links.get(target.node)
            if links is None or (sender, target) not in links:
                return
            links.discard((sender, target))
        if self.distribution is not None:
            self.distribution.exit(sender, target, reason, link=link)

    def _monitor_remote(self, watcher: Process | Any, target: RemoteTarget, ref: Ref) -> None:
        """Watch a remote target; a node that is not connected answers at once."""
        dist = self.distribution
        if dist is None or not dist.is_connected(node_of(target)):
            self._fire_down(watcher, ref, target, "noconnection")
            return
        self._remote_monitors[ref] = (target, watcher)
        if type(watcher) is Process:
            watcher.monitors = put(watcher.monitors, ref, target)  # type: ignore[arg-type]
        dist.monitor(watcher.pid if type(watcher) is Process else None, target, ref)

    def _demonitor_remote(self, ref: Ref) -> bool:
        entry = self._remote_monitors.pop(ref, None)
        if entry is None:
            return False
        if self.distribution is not None:
            self.distribution.demonitor(entry[0], ref)
        return True

    def _fire_down(self, watcher: Process | Any, ref: Ref, target: Any, reason: Any) -> None:
        if type(watcher) is Process:
            if watcher.pid._proc is not None:
                watcher.monitors = take(watcher.monitors, ref)[0]
                self._deliver(watcher, Down(ref, target, reason))
        else:
            try:
                watcher(ref, target, reason)  # type: ignore[operator]
            except Exception:
                _log.exception("exit watcher %r of %r raised", watcher, target)

    def _alias(self, reply_to: ReplyTo) -> int:
        """The number under which replies from other nodes reach ``reply_to``."""
        alias = reply_to._alias
        if alias is None:
            self._alias_ids += 1
            alias = reply_to._alias = self._alias_ids
            self._aliases[alias] = reply_to
        return alias

    # -- inbound: what other nodes sent -------------------------------------------------

    def local_process(self, id: int) -> Process | None:
        return self._procs.get(id)

    def dist_send(self, dest: Pid, message: Any) -> None:
        proc = dest._proc
        if proc is not None:
            self._deliver(proc, message)

    def dist_send_name(self, name: str, message: Any) -> None:
        proc = self._names.get(name)
        if proc is not None:
            self._deliver(proc, message)

    def dist_reply(self, alias: int, value: Any) -> None:
        reply_to = self._aliases.get(alias)
        if reply_to is not None and reply_to._future is not None and not reply_to._future.done():
            reply_to._future.set_result(value)
            self.wakeups += 1

    def dist_link(self, remote: Pid, local: Pid) -> None:
        proc = local._proc
        if proc is None:  # the remote side learns of it as an exit signal, as on the BEAM
            if self.distribution is not None:
                self.distribution.exit(local, remote, "noproc", link=True)
            return
        from beamish._runtime.signals import _add_link

        _add_link(proc, remote)
        self._remote_links.setdefault(remote.node, set()).add((local, remote))

    def dist_unlink(self, remote: Pid, local: Pid) -> None:
        from beamish._runtime.signals import _drop_link

        links = self._remote_links.get(remote.node)
        if links is not None:
            links.discard((local, remote))
        proc = local._proc
        if proc is not None:
            _drop_link(proc, remote)

    def dist_exit(self, sender: Pid | None, target: Pid, reason: Any, link: bool) -> None:
        proc = target._proc
        if proc is None:
            return
        if link:
            from beamish._runtime.signals import _drop_link

            links = self._remote_links.get(sender.node) if sender is not None else None
            if links is None or (target, sender) not in links:
                return  # unlinked meanwhile: the signal is stale
            links.discard((target, sender))
            _drop_link(proc, sender)  # type: ignore[arg-type]
            self._exit_signal(proc, sender, reason, link=True)
        elif type(reason) is str and reason == "kill":
            self._kill(proc)
        else:
            self._exit_signal(proc, sender, reason, link=False)

    def dist_monitor(self, watcher: Pid, target: int | str, ref: Ref) -> None:
        proc = self._procs.get(target) if type(target) is int else self._names.get(target)  # type: ignore[arg-type]
        shown: Any = (Pid(self.node_id, target) if type(target) is int
                      else (target, self.node_id.name))
        if proc is None:
            if self.distribution is not None:
                self.distribution.down(watcher, ref, shown, "noproc")
            return
        self._remote_watched.setdefault(watcher._node, {})[ref] = proc.pid
        self._watch(proc, ref, _RemoteWatcher(self, watcher._node, watcher))

    def dist_demonitor(self, watcher_node: NodeId, ref: Ref) -> None:
        watched = self._remote_watched.get(watcher_node)
        pid = watched.pop(ref, None) if watched is not None else None
        proc = pid._proc if pid is not None else None
        if proc is not None:
            proc.watchers = take(proc.watchers, ref)[0]

    def dist_down(self, ref: Ref, target: Any, reason: Any) -> None:
        entry = self._remote_monitors.pop(ref, None)
        if entry is not None:
            self._fire_down(entry[1], ref, target, reason)

    # -- nodes --------------------------------------------------------------------------

    def node_up(self, node: NodeId) -> None:
        for pid in list(self._nodes_monitors):
            proc = pid._proc
            if proc is None:
                self._nodes_monitors.discard(pid)
            else:
                self._deliver(proc, NodeUp(node.name))

    def node_down(self, node: NodeId, reason: Any = "noconnection") -> None:
        """``node`` is gone: every link and monitor with it fires with ``noconnection``."""
        from beamish._runtime.signals import _drop_link

        name = node.name
        for local, remote in self._remote_links.pop(name, ()):
            if remote._node != node:
                continue
            proc = local._proc
            if proc is not None:
                _drop_link(proc, remote)
                self._exit_signal(proc, remote, "noconnection", link=True)
        for ref, (target, watcher) in list(self._remote_monitors.items()):
            if node_of(target) == name and (type(target) is not Pid or target._node == node):
                del self._remote_monitors[ref]
                self._fire_down(watcher, ref, target, "noconnection")
        for ref, pid in self._remote_watched.pop(node, {}).items():
            proc = pid._proc
            if proc is not None:
                proc.watchers = take(proc.watchers, ref)[0]
        for pid in self._node_monitors.pop(name, ()):
            proc = pid._proc
            if proc is not None:
                self._deliver(proc, NodeDown(name, reason))
        for pid in list(self._nodes_monitors):
            proc = pid._proc
            if proc is None:
                self._nodes_monitors.discard(pid)
            else:
                self._deliver(proc, NodeDown(name, reason))

    def monitor_node(self, watcher: Process, node: str) -> None:
        dist = self.distribution
        if node == self.node_id.name:
            return
        if dist is None or not dist.is_connected(node):
            self._deliver(watcher, NodeDown(node, "noconnection"))
            return
        self._node_monitors.setdefault(node, []).append(watcher.pid)

    def demonitor_node(self, watcher: Process, node: str) -> None:
        watchers = self._node_monitors.get(node)
        if watchers and watcher.pid in watchers:
            watchers.remove(watcher.pid)

    def monitor_nodes(self, watcher: Process, enabled: bool) -> None:
        if enabled:
            self._nodes_monitors.add(watcher.pid)
        else:
            self._nodes_monitors.discard(watcher.pid)

