"""PartitionSupervisor: N copies of one child, and a way to route work to one by key.

The seed's *load balancing*: instead of one process that every caller queues on (one
DynamicSupervisor, one cache server), start N partitions and send each caller to the
partition its key picks. Routing reads a table, with no message::

    await PartitionSupervisor.start_link(child_spec=DynamicSupervisor, name="rooms_sups")
    sup = PartitionSupervisor.via("rooms_sups", room_id)      # a name: use it anywhere
    await DynamicSupervisor.start_child(sup, (Room, room_id))

How it works. The process is a ``Supervisor`` (one_for_one) whose child ``i`` is the given
child spec, started by a wrapper that records the pid it got in a table of partitions; a
restart runs the wrapper again and records the new pid. The table is an owned table of the
supervisor (``_runtime/tables.py``), found by the supervisor's name. A key picks partition
``hash(key) % partitions`` (an int key: ``abs(key) % partitions``), so a pid or a user id
always lands on the same partition.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from beamish._errors import InvalidNameError, NotRegisteredError
from beamish._otp.supervisor.child_spec import ChildSpec, to_child_spec
from beamish._otp.supervisor.supervisor import ChildCounts, ChildInfo, Supervisor
from beamish._runtime.api import is_alive, send
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish._runtime.tables import find_table, new_table

__all__ = ["PartitionSupervisor"]



class _Partitions:
    """The pids of one PartitionSupervisor's partitions, by index (None while down)."""

    __slots__ = ("name", "pids")

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.pids: list[Pid | None] = [None] * count


def _table(name: str) -> _Partitions:
    found = find_table(("beamish.partition_supervisor", name)) if type(name) is str else None
    table: _Partitions | None = None if found is None else found.data
    if table is None:
        raise NotRegisteredError(
            f"no PartitionSupervisor is running under {name!r}; start it first with "
            f"PartitionSupervisor.start_link(child_spec=..., name={name!r})",
            name=name,
        )
    return table


def _pick(key: Any, count: int) -> int:
    if type(key) is int:
        return abs(key) % count
    return hash(key) % count


async def _start_partition(
    table: _Partitions, index: int, start: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    result = await start(*args)
    pid = result[0] if type(result) is tuple else result
    table.pids[index] = pid
    return result


@mark_shared
class _Via:
    """The via-protocol object of ``PartitionSupervisor.via(name, key)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def register_name(self, key: Any, pid: Pid) -> bool:
        raise InvalidNameError(
            f"a process cannot be named through PartitionSupervisor {self.name!r}: a via name "
            "of a PartitionSupervisor only addresses its partitions"
        )

    def unregister_name(self, key: Any) -> None:
        return None

    def whereis_name(self, key: Any) -> Pid | None:
        table = _table(self.name)
        pid = table.pids[_pick(key, len(table.pids))]
        return pid if pid is not None and is_alive(pid) else None

    def send(self, key: Any, message: Any) -> None:
        pid = self.whereis_name(key)
        if pid is None:
            raise NotRegisteredError(
                f"partition of {key!r} in {self.name!r} is not running", name=(self.name, key)
            )
        send(pid, message)

    def __repr__(self) -> str:
        return f"PartitionSupervisor({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is _Via and other.name == self.name

    def __hash__(self) -> int:
        return hash(("PartitionSupervisor", self.name))


class PartitionSupervisor:
    """Starts ``partitions`` copies of a child and routes each key to one of them.

    Options of ``start_link``: ``child_spec`` (any child form), ``name`` (a str, required:
    it is how callers route), ``partitions`` (default: the number of CPU cores),
    ``with_arguments`` (``fn(args, index) -> args``: change each copy's start arguments by
    its partition index; by default they are left alone), plus ``max_restarts`` and
    ``max_seconds``.
    """

    @staticmethod
    async def start_link(
        *, child_spec: Any, name: str, partitions: int | None = None,
        with_arguments: Callable[[tuple[Any, ...], int], tuple[Any, ...]] | None = None,
        max_restarts: int = 3, max_seconds: float = 5.0,
    ) -> Pid:
        """Start the partitions under a supervisor named ``name``, linked to the caller."""
        if type(name) is not str or not name:
            raise InvalidNameError(
                f"a PartitionSupervisor needs a str name to route by, got {name!r}"
            )
        count = partitions if partitions is not None else (os.cpu_count() or 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
        spec = to_child_spec(child_spec)
        table = _Partitions(name, count)
        children = []
        for index in range(count):
            start, args = spec.start
            if with_arguments is not None:
                args = tuple(with_arguments(tuple(args), index))
            children.append(spec.replace(
                id=index, start=(_start_partition, (table, index, start, tuple(args)))
            ))
        pid = await Supervisor.start_link(
            children, name=name, strategy="one_for_one", max_restarts=max_restarts,
            max_seconds=max_seconds,
        )
        new_table(("beamish.partition_supervisor", name), table, owner=pid)
        return pid

    @staticmethod
    def child_spec(options: dict[str, Any]) -> ChildSpec:
        """For a supervisor's children: ``(PartitionSupervisor, {"child_spec": ..., ...})``."""
        if not isinstance(options, dict) or "name" not in options or "child_spec" not in options:
            raise TypeError(
                "PartitionSupervisor's child spec takes a dict with at least child_spec and "
                f"name, got {options!r}"
            )
        return ChildSpec(
            id=options["name"], start=(_start_from_options, (dict(options),)),
            type="supervisor", modules=(PartitionSupervisor,),
        )

    @staticmethod
    def via(name: str, key: Any) -> tuple[str, _Via, Any]:
        """A name for the partition of ``key``: use it wherever a server name goes."""
        return ("via", _Via(name), key)

    @staticmethod
    def whereis(name: str, key: Any) -> Pid | None:
        """The pid of the partition of ``key`` (None while it is restarting)."""
        return _Via(name).whereis_name(key)

    @staticmethod
    def partitions(name: str) -> int:
        return len(_table(name).pids)

    @staticmethod
    async def which_children(name: str) -> list[ChildInfo]:
        return await Supervisor.which_children(name)

    @staticmethod
    async def count_children(name: str) -> ChildCounts:
        return await Supervisor.count_children(name)

    @staticmethod
    async def stop(name: str, reason: Any = "normal", timeout: float | None = None) -> None:
        await Supervisor.stop(name, reason, timeout)


async def _start_from_options(options: dict[str, Any]) -> Pid:
    return await PartitionSupervisor.start_link(**options)
