"""The distribution seam: what the kernel asks of a cluster, and nothing more.

The kernel reaches a process of another node only in its cold branches: a pid with no local
record whose node is not this one, or a ``(name, node)`` destination. There it hands the
work to the runtime's ``distribution`` (None on a node that is not in a cluster, where such
messages are dropped as the BEAM drops messages to an unreachable node). The cluster layer
(``beamish.cluster``) implements this protocol; in the other direction it calls the
runtime's ``dist_*`` methods (``_runtime/remote.py``) with what arrived from other nodes.

Every method is non-blocking: it encodes at once (so a message that cannot cross the wire
raises in the sender) and queues for the next flush.
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._runtime.pid import NodeId, Pid, Ref

__all__ = ["Distribution"]


class Distribution(Protocol):
    def send(self, dest: Pid, message: Any) -> None:
        """Send ``message`` to the remote pid ``dest``."""

    def send_name(self, name: str, node: str, message: Any) -> None:
        """Send ``message`` to the process registered as ``name`` on ``node``."""

    def reply(self, node: NodeId, alias: int, value: Any) -> None:
        """Answer the call waiting on ``node`` under ``alias``."""

    def link(self, local: Pid, remote: Pid) -> None:
        """Tell ``remote``'s node that ``local`` linked to it."""

    def unlink(self, local: Pid, remote: Pid) -> None:
        """Tell ``remote``'s node that ``local`` removed its link to it."""

    def exit(self, sender: Pid | None, target: Pid, reason: Any, *, link: bool) -> None:
        """An exit signal from ``sender`` to the remote ``target`` (over a link or not)."""

    def monitor(self, watcher: Pid | None, target: Pid | tuple[str, str], ref: Ref) -> None:
        """Ask the target's node to send a down for ``ref`` when ``target`` exits."""

    def demonitor(self, target: Pid | tuple[str, str], ref: Ref) -> None:
        """Tell the target's node to forget the monitor ``ref``."""

    def down(self, watcher: Pid, ref: Ref, target: Any, reason: Any) -> None:
        """Tell ``watcher``'s node that the target it monitored under ``ref`` exited."""

    def is_connected(self, node: str) -> bool:
        """True if ``node`` (a name) is connected now."""

    def nodes(self) -> list[str]:
        """The names of the connected nodes."""
