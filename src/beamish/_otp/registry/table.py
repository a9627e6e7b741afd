"""The tables of a Registry: plain data and plain functions, no process involved.

A registry's entries live in one ``RegistryTable``, cut into partitions like Elixir's ETS
tables. Each partition has two tables:

- a **key table** (``KeyTable``): key -> entries. In a unique registry an entry is a
  ``(pid, value)`` pair; in a duplicate registry a key maps to ``{entry_id: (pid, value)}``,
  a dict kept in registration order, so reading every entry of a key is one C-level copy;
- an **owner table** (``OwnerTable``): owner pid -> its registrations, in order, each
  ``(key, entry_id, key_table)``, so that the owner's keys are listed, and its entries
  removed when it exits, without a scan.

Where things go: an owner's registrations always sit in the partition its pid hashes to
(so an owner is linked to one partition of the registry, whatever its keys). Its entries sit
in the partition the *key* hashes to for ``"unique"`` and ``("duplicate", "key")`` registries
(a read of one key looks in one partition), and in its own pid's partition for
``"duplicate"`` = ``("duplicate", "pid")`` registries (reading a key looks in all of them).

Values are isolated as messages are: a mutable value is copied when it is stored, and again
each time it is read, so no process sees another's later changes; immutable values (the
usual case: ``None``, str, tuples, frozen dataclasses) are shared and cost nothing.
``mutable`` counts, per key, the entries that need that copy, so a read of a key that has
none (every PubSub topic) copies nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from beamish._errors import InvalidNameError
from beamish._runtime.isolation import is_shared, isolate, mark_shared
from beamish._runtime.pid import Pid

__all__ = [
    "KINDS", "Entry", "KeyTable", "OwnerTable", "RegistryTable", "check_registry_name",
    "new_table", "parse_kind",
]

Entry = tuple[Pid, Any]
Registration = tuple[Any, int, "KeyTable"]

KINDS = ('"unique"', '"duplicate"', '("duplicate", "pid")', '("duplicate", "key")')


def parse_kind(keys: Any) -> tuple[bool, bool]:
    """``(unique, by_key)`` for a ``keys=`` option; ValueError listing the accepted forms."""
    if keys == "unique":
        return True, True
    if keys == "duplicate" or keys == ("duplicate", "pid"):
        return False, False
    if keys == ("duplicate", "key"):
        return False, True
    raise ValueError(
        f"keys must be one of {', '.join(KINDS)}, got {keys!r}. Use \"unique\" for names "
        "(one process per key) and \"duplicate\" for groups such as PubSub topics"
    )


def check_registry_name(name: Any) -> None:
    if type(name) is not str or not name:
        raise InvalidNameError(
            f"a registry is named by a non-empty str, got {name!r} ({type(name).__name__})"
        )


def new_table(
    keys: Any = None, name: Any = None, partitions: Any = 1, listeners: Any = (),
    meta: Any = None,
) -> RegistryTable:
    """A table for ``Registry.start_link``'s options, or an error naming the bad one."""
    check_registry_name(name)
    parse_kind(keys)
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be an int >= 1, got {partitions!r}")
    if isinstance(listeners, str) or not all(type(n) is str for n in listeners):
        raise TypeError(
            f"listeners must be a list of registered names (str), got {listeners!r}"
        )
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict of metadata, got {meta!r}")
    return RegistryTable(name, keys, partitions, listeners=listeners, meta=meta)


class KeyTable:
    """One partition's entries by key (see the module docstring for the two shapes)."""

    __slots__ = ("entries", "mutable", "size")

    def __init__(self) -> None:
        self.entries: dict[Any, Any] = {}
        self.mutable: dict[Any, int] = {}
        self.size = 0

    def note(self, key: Any, value: Any, delta: int) -> None:
        """Count an entry in or out (``delta`` +1 or -1), and its value if it is mutable."""
        self.size += delta
        if not is_shared(value):
            left = self.mutable.get(key, 0) + delta
            if left > 0:
                self.mutable[key] = left
            else:
                self.mutable.pop(key, None)


class OwnerTable:
    """One partition's registrations by owner pid, in the order they were made."""

    __slots__ = ("owners",)

    def __init__(self) -> None:
        self.owners: dict[Pid, list[Registration]] = {}


@mark_shared  # a handle, like an ETS table id: shared between processes on purpose
class RegistryTable:
    """All partitions of one registry, and what callers need to know about it.

    ``pids`` holds the partition processes (filled in as they start), ``listeners`` the
    names told of registrations, ``meta`` the registry's metadata. Every method is a plain
    function of the tables: links, liveness and messages are the caller's business.
    """

    __slots__ = (
        "__weakref__", "_ids", "by_key", "keys", "listeners", "meta", "name", "owners",
        "partitions", "pids", "unique",
    )

    def __init__(
        self, name: str, keys: Any, partitions: int, *, listeners: Iterable[str] = (),
        meta: Mapping[Any, Any] | None = None,
    ) -> None:
        self.name = name
        self.unique, self.by_key = parse_kind(keys)
        self.partitions = partitions
        self.keys = [KeyTable() for _ in range(partitions)]
        self.owners = [OwnerTable() for _ in range(partitions)]
        self.pids: list[Pid | None] = [None] * partitions
        self.listeners = tuple(listeners)
        self.meta: dict[Any, Any] = {k: isolate(v) for k, v in (meta or {}).items()}
        self._ids = itertools.count(1)

    @property
    def kind(self) -> str:
        if self.unique:
            return "unique"
        return "duplicate (partitioned by key)" if self.by_key else "duplicate"

    # -- where an entry goes ---------------------------------------------------------------

    def owner_index(self, pid: Pid) -> int:
        """The partition that holds ``pid``'s registrations (and is linked to it)."""
        return 0 if self.partitions == 1 else hash(pid) % self.partitions

    def key_index(self, key: Any) -> int:
        """The partition of a key (unique and by-key registries), of a lock key (all)."""
        return 0 if self.partitions == 1 else hash(key) % self.partitions

    def key_tables(self, key: Any) -> list[KeyTable]:
        """The key tables that may hold entries of ``key``."""
        if self.by_key:
            return [self.keys[self.key_index(key)]]
        return self.keys

    # -- writes ------------------------------------------------------------------------------

    def holder(self, key: Any) -> Entry | None:
        """The ``(pid, value)`` under a unique key, dead or alive, or None."""
        found: Entry | None = self.keys[self.key_index(key)].entries.get(key)
        return found

    def insert(self, key: Any, pid: Pid, value: Any) -> bool:
        """Add an entry owned by ``pid``; True if it is the owner's first in its partition.

        For a unique registry the caller has checked that nobody (alive) holds ``key``.
        """
        value = isolate(value)
        owners = self.owners[self.owner_index(pid)].owners
        mine = owners.get(pid)
        first = mine is None
        if mine is None:
            mine = owners[pid] = []
        if self.unique:
            table = self.keys[self.key_index(key)]
            previous = table.entries.get(key)
            if previous is not None:  # a dead holder whose cleanup has not run yet
                self._drop_registration(previous[0], key, 0)
                table.note(key, previous[1], -1)
            table.entries[key] = (pid, value)
            entry_id = 0
        else:
            table = self.keys[self.key_index(key) if self.by_key else self.owner_index(pid)]
            entry_id = next(self._ids)
            bucket = table.entries.get(key)
            if bucket is None:
                bucket = table.entries[key] = {}
            bucket[entry_id] = (pid, value)
        table.note(key, value, +1)
        mine.append((key, entry_id, table))
        return first

    def update(self, key: Any, pid: Pid, value: Any) -> None:
        """Replace the value of the unique ``key`` that ``pid`` holds."""
        table = self.keys[self.key_index(key)]
        old = table.entries[key]
        table.note(key, old[1], -1)
        value = isolate(value)
        table.entries[key] = (pid, value)
        table.note(key, value, +1)

    def remove(
        self, key: Any, pid: Pid, matches: Callable[[Any], bool] | None = None
    ) -> tuple[int, int, bool]:
        """Remove ``pid``'s entries under ``key`` whose value ``matches`` (all if None).

        Returns ``(removed, left_under_key, owner_done)``: how many went, how many of
        ``pid``'s entries under ``key`` remain, and whether ``pid`` has no registration left
        in its partition (then its link to the partition can go).
        """
        owners = self.owners[self.owner_index(pid)].owners
        mine = owners.get(pid)
        if not mine:
            return 0, 0, True
        kept: list[Registration] = []
        removed = left = 0
        for registration in mine:
            reg_key, entry_id, table = registration
            if reg_key != key:
                kept.append(registration)
                continue
            entry = _entry(table, key, entry_id, self.unique)
            if entry is None:
                continue  # already gone (taken over after this owner died)
            if matches is not None and not matches(entry[1]):
                kept.append(registration)
                left += 1
                continue
            _delete(table, key, entry_id, entry, self.unique)
            removed += 1
        if kept:
            owners[pid] = kept
        else:
            del owners[pid]
        return removed, left, not kept

    def remove_owner(self, pid: Pid) -> int:
        """Remove every entry of ``pid`` (it exited); returns how many there were."""
        mine = self.owners[self.owner_index(pid)].owners.pop(pid, None)
        if not mine:
            return 0
        removed = 0
        for key, entry_id, table in mine:
            entry = _entry(table, key, entry_id, self.unique)
            if entry is not None and entry[0] == pid:
                _delete(table, key, entry_id, entry, self.unique)
                removed += 1
        return removed

    def _drop_registration(self, pid: Pid, key: Any, entry_id: int) -> None:
        owners = self.owners[self.owner_index(pid)].owners
        mine = owners.get(pid)
        if mine is None:
            return
        rest = [r for r in mine if not (r[1] == entry_id and r[0] == key)]
        if rest:
            owners[pid] = rest
        else:
            del owners[pid]

    def clear_partition(self, index: int) -> None:
        """Forget partition ``index``'s tables (its process is stopping)."""
        self.keys[index] = KeyTable()
        self.owners[index] = OwnerTable()
        self.pids[index] = None

    # -- reads -------------------------------------------------------------------------------

    def lookup(self, key: Any) -> list[Entry]:
        """Duplicate registries: every entry of ``key`` (mutable values copied)."""
        if self.by_key:
            n = self.partitions
            table = self.keys[0 if n == 1 else hash(key) % n]
            bucket = table.entries.get(key)
            if not bucket:
                return []
            if key in table.mutable:
                return [(pid, isolate(value)) for pid, value in bucket.values()]
            return list(bucket.values())
        found: list[Entry] = []
        for table in self.keys:
            bucket = table.entries.get(key)
            if bucket:
                if key in table.mutable:
                    found.extend([(pid, isolate(value)) for pid, value in bucket.values()])
                else:
                    found.extend(bucket.values())
        return found

    def buckets(self, key: Any) -> list[list[Entry]]:
        """Duplicate registries: the entries of ``key``, one non-empty list per partition."""
        if self.by_key:
            found = self.lookup(key)
            return [found] if found else []
        lists = []
        for table in self.keys:
            bucket = table.entries.get(key)
            if bucket:
                if key in table.mutable:
                    lists.append([(pid, isolate(value)) for pid, value in bucket.values()])
                else:
                    lists.append(list(bucket.values()))
        return lists

    def registrations(self, pid: Pid) -> list[Registration]:
        return self.owners[self.owner_index(pid)].owners.get(pid) or []

    def entry_of(self, registration: Registration) -> Entry | None:
        key, entry_id, table = registration
        return _entry(table, key, entry_id, self.unique)

    def count(self) -> int:
        return sum(table.size for table in self.keys)

    def key_counts(self, limit: int) -> tuple[dict[Any, int], bool]:
        """Entries by key, for at most ``limit`` keys (a bucket counted, not read), and
        whether keys were left out."""
        found: dict[Any, int] = {}
        for table in self.keys:
            for key, entry in table.entries.items():
                if key not in found and len(found) >= limit:
                    return found, True
                found[key] = found.get(key, 0) + (1 if self.unique else len(entry))
        return found, False

    def all_entries(self) -> Iterator[tuple[Any, Pid, Any]]:
        """Every ``(key, pid, value)``, values as stored (copy mutable ones before sharing)."""
        for table in self.keys:
            if self.unique:
                for key, (pid, value) in table.entries.items():
                    yield key, pid, value
            else:
                for key, bucket in table.entries.items():
                    for pid, value in bucket.values():
                        yield key, pid, value


def _entry(table: KeyTable, key: Any, entry_id: int, unique: bool) -> Entry | None:
    found = table.entries.get(key)
    if found is None or unique:
        return found
    entry: Entry | None = found.get(entry_id)
    return entry


def _delete(table: KeyTable, key: Any, entry_id: int, entry: Entry, unique: bool) -> None:
    if unique:
        del table.entries[key]
    else:
        bucket = table.entries[key]
        del bucket[entry_id]
        if not bucket:
            del table.entries[key]
    table.note(key, entry[1], -1)
