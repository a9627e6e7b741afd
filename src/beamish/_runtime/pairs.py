"""A process's monitors and watchers: ``None``, one ``(key, value)`` pair, or a dict.

Most processes that monitor anything monitor one process, and are monitored by one: a
connection's transport and its channel watch each other, a caller watches its server for
the length of a call. A dict holding one entry costs about 270 bytes; a pair costs 56. So
a table starts as ``None``, holds its first entry as a tuple, becomes a dict only at its
second, and goes back to ``None`` when its last entry leaves (an emptied dict would keep its
keys' array). The links beside them take the same shape (``signals._add_link``).

    >>> table = put(None, "r1", "pid1")
    >>> table
    ('r1', 'pid1')
    >>> table = put(table, "r2", "pid2")
    >>> sorted(entries(table))
    [('r1', 'pid1'), ('r2', 'pid2')]
    >>> table, value = take(table, "r1")
    >>> value, table
    ('pid1', {'r2': 'pid2'})
    >>> take(table, "r2")
    (None, 'pid2')

Only the owner of a table changes it, on the loop; the functions return the table to store
back, as ``proc.monitors = put(proc.monitors, ref, pid)``.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

# None, one (key, value) pair, or a dict of two or more (or, briefly, fewer) entries
Pairs = tuple[K, V] | dict[K, V] | None


def put(table: Pairs[K, V], key: K, value: V) -> Pairs[K, V]:
    """``table`` with ``key`` set to ``value``: store the result back."""
    if table is None:
        return (key, value)
    if type(table) is tuple:
        first = table[0]
        if first is key or first == key:
            return (key, value)
        return {first: table[1], key: value}
    table[key] = value  # type: ignore[index]
    return table


def take(table: Pairs[K, V], key: K) -> tuple[Pairs[K, V], V | None]:
    """``(table without key, its value or None)``: store the table back."""
    if table is None:
        return None, None
    if type(table) is tuple:
        first = table[0]
        if first is key or first == key:
            return None, table[1]
        return table, None
    value = table.pop(key, None)  # type: ignore[union-attr]
    return (table if table else None), value


def entries(table: Pairs[K, V]) -> list[tuple[K, V]]:
    """The ``(key, value)`` entries of ``table``, as a list the caller may keep."""
    if table is None:
        return []
    if type(table) is tuple:
        return [table]
    return list(table.items())  # type: ignore[union-attr]


def values(table: Pairs[K, V]) -> list[V]:
    """The values of ``table``."""
    return [value for _, value in entries(table)]
