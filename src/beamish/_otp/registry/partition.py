"""The processes behind a Registry: a supervisor and its partitions (hidden).

How it works. ``start_registry`` builds the registry's ``RegistryTable`` and starts, under
the registry's name, a ``Supervisor`` (``one_for_all``, ``max_restarts=0``, as Elixir's)
of ``partitions`` partition processes. The table is shared by reference, the way Elixir
shares its ETS tables: callers of ``Registry`` read and write it directly, from their own
process, with no message. The partitions own it:

- each traps exits; a registering process links itself to the partition its pid hashes to,
  and when that process exits, the ``Exit`` reaches the partition, which removes every entry
  of the dead owner (eventually: a lookup in between may still see it);
- each serves the locks (``Registry.lock``) of the lock keys that hash to it: it grants a
  key to one caller at a time, queues the others, and monitors them all, so a holder or a
  waiter that dies never leaves the key locked;
- if one partition dies the supervisor stops the others and exits (``max_restarts=0``), so
  the registry's own supervisor restarts it whole, with empty tables. Registered processes
  are linked to their partition: they go down with it, as in Elixir.

Callers find a table from the registry's name: it is an owned table (``_runtime/tables.py``)
of the registry's supervisor, named ``("beamish.registry", name)``, found with one dict
lookup and deleted when the supervisor exits.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

from beamish._errors import RegistryError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._otp.registry.table import RegistryTable
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._otp.supervisor.supervisor import Supervisor
from beamish._runtime.api import demonitor, monitor, trap_exit
from beamish._runtime.api import self as _self
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.request import ReplyTo, reply, request
from beamish._runtime.tables import find_table as _find_table
from beamish._runtime.tables import new_table

__all__ = ["find_table", "lock", "partition_name", "start_registry", "stopping"]

def _table_name(registry: str) -> tuple[str, str]:
    return ("beamish.registry", registry)


def find_table(name: str) -> RegistryTable | None:
    """The table of the registry running under ``name``, or None: an owned table of the
    registry's supervisor, so one dict lookup, and gone when the registry is."""
    found = _find_table(_table_name(name))
    table: RegistryTable | None = None if found is None else found.data
    return table


def partition_name(registry: str, index: int) -> str:
    return f"{registry}.Partition{index}"


async def start_registry(table: RegistryTable) -> Pid:
    """Start the registry's supervisor and partitions, linked to the caller."""
    children = [
        ChildSpec(id=("partition", i), start=(_start_partition, (table, i)), shutdown=5.0)
        for i in range(table.partitions)
    ]
    pid = await Supervisor.start_link(
        children, name=table.name, strategy="one_for_all", max_restarts=0
    )
    new_table(_table_name(table.name), table, owner=pid)
    return pid


async def _start_partition(table: RegistryTable, index: int) -> Pid:
    return await _Partition.start_link((table, index), name=partition_name(table.name, index))


async def lock(table: RegistryTable, key: Any, fn: Callable[[], Any]) -> Any:
    """``Registry.lock``: take the lock ``key`` from its partition, run ``fn``, give it back."""
    me = _self()
    partition = table.pids[table.key_index(key)]
    if partition is None:
        raise stopping(table.name)
    granted = await request(
        partition, ("lock", key), timeout=None, what="Registry.lock", server=table.name
    )
    if granted != "locked":
        raise RegistryError(
            ("reentrant_lock", key),
            f"Registry.lock({table.name!r}, {key!r}): {me!r} already holds this lock; locks "
            "are not re-entrant (it would wait for itself forever)",
        )
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        return result
    finally:
        GenServer.cast(partition, ("unlock", key, me))


def stopping(registry: str) -> RegistryError:
    return RegistryError(
        ("unknown_registry", registry),
        f"registry {registry!r} is shutting down (its partition process is gone)",
    )


class _Lock:
    """A held lock key: its holder, and the callers waiting for it, in order."""

    __slots__ = ("holder", "ref", "waiters")

    def __init__(self, holder: Pid, ref: Ref) -> None:
        self.holder = holder
        self.ref = ref
        self.waiters: deque[tuple[Pid, ReplyTo, Ref]] = deque()


class _Partition(GenServer):
    """One partition: cleans up after dead owners and serves lock keys."""

    __slots__ = ("_index", "_lock_refs", "_locks", "_table")

    _table: RegistryTable
    _index: int
    _locks: dict[Any, _Lock]
    _lock_refs: dict[Ref, Any]

    def init(self, arg: tuple[RegistryTable, int]) -> Any:
        trap_exit(True)
        self._table, self._index = arg
        self._locks = {}
        self._lock_refs = {}
        self._table.pids[self._index] = self.pid
        return Ok(None)

    def terminate(self, reason: Any, state: Any) -> None:
        self._table.clear_partition(self._index)

    def handle_info(self, message: Any, state: Any) -> Any:
        kind = type(message)
        if kind is Exit:
            if message.pid is not None:  # an owner exited: its entries go
                self._table.remove_owner(message.pid)
            return NoReply(state)
        if kind is Down:
            self._lock_down(message.ref)
            return NoReply(state)
        return super().handle_info(message, state)

    # -- locks --------------------------------------------------------------------------------

    def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        match request:
            case ("lock", key):
                return self._lock(key, from_, state)
        return super().handle_call(request, from_, state)

    def handle_cast(self, request: Any, state: Any) -> Any:
        match request:
            case ("unlock", key, pid):
                lock = self._locks.get(key)
                if lock is not None and lock.holder == pid:
                    demonitor(lock.ref, flush=True)
                    del self._lock_refs[lock.ref]
                    self._grant_next(key, lock)
                return NoReply(state)
        return super().handle_cast(request, state)

    def _lock(self, key: Any, from_: ReplyTo, state: Any) -> Any:
        pid = from_.pid
        if pid is None:  # pragma: no cover - Registry.lock checks it is in a process
            return Reply("not_in_process", state)
        lock = self._locks.get(key)
        if lock is not None and lock.holder == pid:
            return Reply("reentrant", state)
        ref = monitor(pid)
        self._lock_refs[ref] = key
        if lock is None:
            self._locks[key] = _Lock(pid, ref)
            return Reply("locked", state)
        lock.waiters.append((pid, from_, ref))
        return NoReply(state)

    def _lock_down(self, ref: Ref) -> None:
        key = self._lock_refs.pop(ref, None)
        if key is None:
            return
        lock = self._locks[key]
        if lock.ref == ref:  # the holder died holding it
            self._grant_next(key, lock)
        else:  # a waiter died waiting
            lock.waiters = deque(w for w in lock.waiters if w[2] != ref)

    def _grant_next(self, key: Any, lock: _Lock) -> None:
        while lock.waiters:
            pid, from_, ref = lock.waiters.popleft()
            if from_.active:
                lock.holder, lock.ref = pid, ref
                reply(from_, "locked")
                return
            demonitor(ref, flush=True)  # it stopped waiting (it is dying): skip it
            self._lock_refs.pop(ref, None)
        del self._locks[key]
