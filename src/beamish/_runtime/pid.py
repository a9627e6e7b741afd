"""Process identifiers and references.

A ``Pid`` names one process for its whole life and after it: it is immutable, hashable,
ordered by creation, and carries the node it belongs to so that it can later cross machines.
A live local pid also holds a private pointer to its process record, which is how ``send``
reaches a mailbox without a table lookup; the runtime clears the pointer when the process
exits, so every holder of the pid sees the death at once.

A ``Ref`` is a unique reference (monitors, timers, calls). Both are passed between processes
by reference: copying one returns the same object.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beamish._runtime.process import Process

__all__ = ["NodeId", "Pid", "Ref", "new_creation"]


class NodeId:
    """The identity of one node incarnation: its name and its creation number.

    Two node ids are equal when name and creation are: a node restarted under the same name
    has a new creation, so the pids of its previous life never reach the new one. Creations
    are random 32-bit numbers (``new_creation``), unique across OS processes and restarts
    with overwhelming likelihood, where the BEAM keeps them in epmd.

    ``index`` is how this node is shown in pids: 0 for the node that owns the object, a small
    positive number for each node known through a cluster (``<3.42.0>``).
    """

    __slots__ = ("creation", "index", "name")

    def __init__(self, name: str, creation: int, index: int = 0) -> None:
        self.name = name
        self.creation = creation
        self.index = index

    def __repr__(self) -> str:
        return f"NodeId({self.name!r}, creation={self.creation})"

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is NodeId and other.creation == self.creation and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((self.name, self.creation))

    def __copy__(self) -> NodeId:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> NodeId:
        return self


def new_creation() -> int:
    """A random non-zero 32-bit creation number for a new node incarnation."""
    return secrets.randbits(32) or 1


class Pid:
    """An opaque process identifier, printed as ``<0.42.0>``.

    Obtain pids from ``spawn`` and ``self()``; do not construct them.
    """

    __slots__ = ("_node", "_proc", "id")

    _node: NodeId
    _proc: Process | None
    id: int

    def __init__(self, node: NodeId, id: int, proc: Process | None = None) -> None:
        self._node = node
        self.id = id
        self._proc = proc

    @property
    def node(self) -> str:
        """The name of the node this process lives on."""
        return self._node.name

    @property
    def node_id(self) -> NodeId:
        """The node incarnation this process lives on (name and creation)."""
        return self._node

    def __repr__(self) -> str:
        return f"<{self._node.index}.{self.id}.0>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Pid and other.id == self.id
            and (other._node is self._node or other._node == self._node)
        )

    def __lt__(self, other: Pid) -> bool:
        if type(other) is not Pid:
            return NotImplemented
        a, b = self._node, other._node
        if a is b:
            return self.id < other.id
        return (a.name, a.creation, self.id) < (b.name, b.creation, other.id)

    def __copy__(self) -> Pid:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Pid:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a Pid such as {self!r} cannot be pickled; send it between processes as it is "
            "(pids pass by reference), or across nodes through the cluster transport"
        )


class Ref:
    """A unique reference, printed as ``#Ref<0.17>``.

    Returned by ``make_ref()``, ``monitor()`` and ``send_after()``. Two refs are equal only
    if they are the same reference.
    """

    __slots__ = ("_node", "id")

    _node: NodeId
    id: int

    def __init__(self, node: NodeId, id: int) -> None:
        self._node = node
        self.id = id

    def __repr__(self) -> str:
        return f"#Ref<{self._node.index}.{self.id}>"

    def __hash__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Ref and other.id == self.id
            and (other._node is self._node or other._node == self._node)
        )

    def __copy__(self) -> Ref:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Ref:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(f"a Ref such as {self!r} cannot be pickled")
