"""Owned tables: state a process keeps that any process of the node reads without a message
(a light ETS).

A table has a name (any hashable), an owner (a live process) and its data (any object: a
dict, a record of dicts...). ``find_table(name)`` is one dict lookup, so readers on hot paths
(a PubSub broadcast reading its registry, a pool checkout) pay no message and no process
switch. When the owner exits the table is deleted with it, as an ETS table without an heir
is; a supervisor restarting the owner makes a new one. Each runtime has its own tables, so
two runtimes never share one.

As with ETS, the data is shared, not copied: the owner writes it, and readers must only read
(or use the owner's documented functions). Writes from other processes are the owner's
protocol to define.
"""

from __future__ import annotations

from typing import Any

from beamish._runtime import context as _context
from beamish._runtime.pid import Pid, Ref

__all__ = ["Table", "delete_table", "find_table", "new_table", "table_names"]


class Table:
    """One owned table: ``name``, ``owner`` (a pid) and ``data``."""

    __slots__ = ("data", "name", "owner", "ref")

    def __init__(self, name: Any, owner: Pid, data: Any, ref: Ref) -> None:
        self.name = name
        self.owner = owner
        self.data = data
        self.ref = ref

    def __repr__(self) -> str:
        return f"<Table {self.name!r} owned by {self.owner!r}>"


def new_table(name: Any, data: Any, *, owner: Pid | None = None) -> Table:
    """Make the table ``name`` holding ``data``, owned by ``owner`` (default: the caller).

    Raises ``ValueError`` if a table of that name exists (its owner is alive), and
    ``NoProcessError`` if the owner is not alive.
    """
    from beamish._errors import NoProcessError

    me = _context.current_process()
    runtime = me.runtime if me is not None else _context.current_runtime()
    pid = owner if owner is not None else (me.pid if me is not None else None)
    if pid is None:
        raise TypeError("new_table() outside a process needs owner=")
    proc = pid._proc
    if proc is None:
        raise NoProcessError(f"cannot give table {name!r} to {pid!r}: it is not alive")
    taken = runtime._tables.get(name)
    if taken is not None:
        raise ValueError(f"a table named {name!r} exists, owned by {taken.owner!r}")
    ref = runtime.make_ref()
    table = runtime._tables[name] = Table(name, pid, data, ref)
    tables = runtime._tables

    def owner_exited(_ref: Ref, _pid: Pid, _reason: Any) -> None:
        if tables.get(name) is table:
            del tables[name]

    runtime._watch(proc, ref, owner_exited)
    return table


def find_table(name: Any) -> Table | None:
    """The table ``name`` of the current runtime, or None."""
    return _context.current_runtime()._tables.get(name)


def delete_table(name: Any) -> None:
    """Delete the table ``name`` (a no-op if there is none)."""
    runtime = _context.current_runtime()
    table = runtime._tables.pop(name, None)
    if table is not None:
        runtime._unwatch(table.owner, table.ref)


def table_names() -> list[Any]:
    """The names of the current runtime's tables."""
    return list(_context.current_runtime()._tables)
