"""The node table: one ``NodeId`` per node incarnation this node has heard of.

Pids and refs that arrive from the wire are rebuilt here: one of this node's own becomes the
live local pid (or a dead one), one of another node carries that node's interned ``NodeId``
with a small index for printing (``<3.42.0>``). An incarnation is interned once, so pids of
one remote node share their ``NodeId`` and compare fast. The table is bounded: past
``max_nodes`` incarnations the oldest that is not connected is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from beamish._runtime.pid import NodeId, Pid

__all__ = ["NodeTable"]


class NodeTable:
    __slots__ = ("_indices", "_next", "connected", "known", "local", "max_nodes", "runtime")

    def __init__(self, runtime: Any, *, max_nodes: int = 4096) -> None:
        self.runtime = runtime
        self.local: NodeId = runtime.node_id
        self.known: OrderedDict[tuple[str, int], NodeId] = OrderedDict()
        self.connected: set[NodeId] = set()
        self._indices: dict[str, int] = {}  # node name -> its index, stable across creations
        self._next = 1
        self.max_nodes = max_nodes

    def node(self, name: str, creation: int) -> NodeId:
        local = self.local
        if creation == local.creation and name == local.name:
            return local
        key = (name, creation)
        found = self.known.get(key)
        if found is not None:
            return found
        index = self._indices.get(name)
        if index is None:
            index = self._indices[name] = self._next
            self._next += 1
        node = self.known[key] = NodeId(name, creation, index)
        if len(self.known) > self.max_nodes:
            for old_key, old in list(self.known.items()):
                if old not in self.connected:
                    del self.known[old_key]
                    break
        return node

    def pid(self, node: NodeId, id: int) -> Pid:
        if node is self.local:
            proc = self.runtime._procs.get(id)
            return proc.pid if proc is not None else Pid(node, id)
        return Pid(node, id)
