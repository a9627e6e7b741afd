"""Registry: a local key-value store of processes, with unique or duplicate keys.

The user-facing side. Every function here runs in the calling process: reads (``lookup``,
``dispatch``, ``match``, ``count``, ...) and writes (``register``, ``unregister``,
``update_value``) go straight to the registry's tables, with no message, the way Elixir's
callers use the registry's ETS tables. Only ``lock`` talks to a partition process. The
processes and the tables live in ``registry_partition.py`` and ``registry_table.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from beamish._errors import NoRuntimeError, NotRegisteredError, RegistryError
from beamish._otp.registry.partition import (
    find_table,
    lock,
    start_registry,
    stopping,
)
from beamish._otp.registry.table import Entry, RegistryTable, check_registry_name, new_table
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._runtime.api import is_alive, link, send, unlink
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import isolate, mark_shared
from beamish._runtime.patterns import ANY, compile_patterns
from beamish._runtime.pid import Pid

__all__ = ["Registry", "RegistryError"]

_OPTIONS = ("keys", "name", "partitions", "listeners", "meta")


class Registry:
    """A local, partitioned key-value store of processes, with unique or duplicate keys.

    ::

        await Registry.start_link(keys="unique", name="rooms")
        Registry.register("rooms", "lobby", {"topic": "hello"})   # the caller is the owner
        Registry.lookup("rooms", "lobby")        # [(<0.1.0>, {'topic': 'hello'})]

    A key's entries belong to the process that registered them and are removed when it
    exits. ``keys="unique"``: a key has at most one owner (names: see ``via``).
    ``keys="duplicate"``: any number of entries per key, several per process (groups,
    PubSub topics). All reads and writes run in the caller, without a message; see the
    guide (``docs/guides/registry.md``) for partitions, supervision and debugging.
    """

    # -- starting ---------------------------------------------------------------------------

    @staticmethod
    async def start_link(
        *, keys: Any, name: str, partitions: int = 1, listeners: Iterable[str] = (),
        meta: Mapping[Any, Any] | None = None,
    ) -> Pid:
        """Start a registry named ``name``, linked to the caller; returns its pid.

        - ``keys``: ``"unique"``, ``"duplicate"`` (= ``("duplicate", "pid")``: entries sit
          with their owner, reads of a key look in every partition) or
          ``("duplicate", "key")`` (entries sit with their key: reads look in one);
        - ``partitions``: how many partition processes share the entries (default 1);
        - ``listeners``: names of processes told of each ``register``
          (``("register", registry, key, pid, value)``) and ``unregister``
          (``("unregister", registry, key, pid)``), not of exits: monitor if you care;
        - ``meta``: initial metadata (see ``meta``).

        Raises ``StartError`` with ``("already_started", pid)`` if the name is taken.
        """
        return await start_registry(new_table(keys, name, partitions, listeners, meta))

    @classmethod
    def child_spec(cls, options: Mapping[str, Any] | None = None) -> ChildSpec:
        """``(Registry, {"keys": "unique", "name": "rooms"})`` in a supervisor's children.

        The child's id is the registry's name; it is a ``"supervisor"`` child (shutdown
        ``"infinity"``): a registry supervises its partition processes, as in Elixir.
        """
        if not isinstance(options, Mapping):
            raise TypeError(
                "Registry.child_spec needs the registry's options: give the child as "
                '(Registry, {"keys": "unique", "name": "my_registry"}), got '
                f"{options!r}"
            )
        options = dict(options)
        unknown = sorted(set(options) - set(_OPTIONS), key=repr)
        if unknown:
            raise TypeError(
                f"unknown Registry option(s) {', '.join(map(repr, unknown))}; the options are "
                f"{', '.join(_OPTIONS)}"
            )
        new_table(**options)  # fail now, not when the supervisor starts it
        return ChildSpec(
            id=options["name"], start=(_start_with, (options,)), type="supervisor",
            modules=(cls,),
        )

    # -- names ---------------------------------------------------------------------------

    @staticmethod
    def via(registry: str, key: Any, value: Any = None) -> tuple[str, Any, Any]:
        """A server name kept by a unique registry: ``name=Registry.via("rooms", "lobby")``.

        Works wherever a server name does: ``GenServer.start_link(name=...)``,
        ``GenServer.call``/``cast``/``stop``/``whereis``. The server registers itself
        under ``key`` with ``value`` when it starts; a second server started under the same
        name fails with ``StartError(("already_started", pid))``.
        """
        check_registry_name(registry)
        _check_key(key)
        try:
            table = find_table(registry)
        except NoRuntimeError:
            table = None  # built before the runtime runs: checked when the server starts
        if table is not None:
            _require_unique(table, "via")
        return ("via", _Via(registry, isolate(value)), key)

    # -- writes (the caller is the owner) -------------------------------------------------

    @staticmethod
    def register(registry: str, key: Any, value: Any = None) -> Pid:
        """Register the caller under ``key`` with ``value``; returns the owner partition.

        The caller is linked to the partition (once, however many keys it registers) so
        that its entries are removed when it exits. On a unique registry a key held by a
        live process raises ``RegistryError(("already_registered", pid))``; a key whose
        holder is dead (its cleanup still pending) is taken over.
        """
        table = _table(registry)
        me = _self()
        _check_key(key)
        if table.unique:
            holder = table.holder(key)
            if holder is not None and is_alive(holder[0]):
                raise RegistryError(
                    ("already_registered", holder[0]),
                    f"cannot register {key!r} in {registry!r}: the key is already registered "
                    f"to {holder[0]!r}" + (" (the caller)" if holder[0] == me else "")
                    + "; keys are unique in this registry",
                )
        owner = table.pids[table.owner_index(me)]
        if owner is None or not is_alive(owner):
            raise stopping(registry)
        if table.insert(key, me, value):
            link(owner)
        _notify(table, ("register", registry, key, me, value))
        return owner

    @staticmethod
    def unregister(registry: str, key: Any) -> None:
        """Remove the caller's entries under ``key`` (a no-op if it has none)."""
        table = _table(registry)
        me = _self()
        _check_key(key)
        removed, _left, done = table.remove(key, me)
        if done:
            _unlink_owner(table, me)
        if removed:
            _notify(table, ("unregister", registry, key, me))

    @staticmethod
    def unregister_match(
        registry: str, key: Any, pattern: Any, guard: Callable[[Any], Any] | None = None
    ) -> None:
        """Remove the caller's entries under ``key`` whose value matches ``pattern``."""
        table = _table(registry)
        me = _self()
        _check_key(key)
        removed, left, done = table.remove(key, me, _matcher(pattern, guard))
        if done:
            _unlink_owner(table, me)
        if removed and not left:
            _notify(table, ("unregister", registry, key, me))

    @staticmethod
    def update_value(
        registry: str, key: Any, fn: Callable[[Any], Any]
    ) -> tuple[Any, Any] | None:
        """Set the caller's value under a unique ``key`` to ``fn(old)``; returns ``(new, old)``.

        Returns None, without calling ``fn``, if the caller does not hold ``key``. Raises
        ``RegistryError`` on a duplicate registry.
        """
        table = _table(registry)
        _require_unique(table, "update_value")
        me = _self()
        holder = table.holder(key)
        if holder is None or holder[0] != me:
            return None
        old = isolate(holder[1])
        new = fn(old)
        table.update(key, me, new)
        return new, old

    # -- reads (from any process, no message) --------------------------------------------

    @staticmethod
    def lookup(registry: str, key: Any) -> list[Entry]:
        """The ``(pid, value)`` entries under ``key``, in no particular order.

        Unique: ``[]`` or one entry (a dead holder reads as absent). Duplicate: every entry;
        an owner that just exited may still be listed until its partition cleans up.
        """
        table = _table(registry)
        if table.unique:
            return _unique_entries(table, key)
        return table.lookup(key)

    @staticmethod
    def dispatch(registry: str, key: Any, fn: Callable[[list[Entry]], Any]) -> None:
        """Call ``fn(entries)`` with the ``(pid, value)`` entries under ``key``.

        ``fn`` runs in the caller, once per partition that has entries (never with an empty
        list); it is how PubSub broadcasts. Errors in ``fn`` propagate to the caller.
        """
        table = _table(registry)
        if table.unique:
            entries = _unique_entries(table, key)
            if entries:
                fn(entries)
            return
        for bucket in table.buckets(key):
            fn(bucket)

    @staticmethod
    def match(
        registry: str, key: Any, pattern: Any, guard: Callable[[Any], Any] | None = None
    ) -> list[Entry]:
        """The entries under ``key`` whose value matches ``pattern`` (and ``guard(value)``).

        ``pattern`` is a receive pattern (``ANY``, a class, a tuple or dict of patterns, a
        predicate, a value); ``key`` itself is always compared as a plain value.
        """
        matches = _matcher(pattern, guard)
        entries = Registry.lookup(registry, key)
        return entries if matches is None else [e for e in entries if matches(e[1])]

    @staticmethod
    def count_match(
        registry: str, key: Any, pattern: Any, guard: Callable[[Any], Any] | None = None
    ) -> int:
        """How many entries ``match`` would return."""
        return len(Registry.match(registry, key, pattern, guard))

    @staticmethod
    def count(registry: str) -> int:
        """How many entries the registry holds, all keys and owners together."""
        return _table(registry).count()

    @staticmethod
    def keys(registry: str, pid: Pid) -> list[Any]:
        """The keys ``pid`` registered, in order (repeated for duplicate entries)."""
        table = _table(registry)
        if not is_alive(pid):
            return []
        return [registration[0] for registration in table.registrations(pid)]

    @staticmethod
    def values(registry: str, key: Any, pid: Pid) -> list[Any]:
        """The values ``pid`` registered under ``key``, in order."""
        table = _table(registry)
        if not is_alive(pid):
            return []
        found = []
        for registration in table.registrations(pid):
            if registration[0] == key:
                entry = table.entry_of(registration)
                if entry is not None:
                    found.append(isolate(entry[1]))
        return found

    @staticmethod
    def select(
        registry: str, pattern: Any = ANY, guard: Callable[[Any, Pid, Any], Any] | None = None
    ) -> list[tuple[Any, Pid, Any]]:
        """Every ``(key, pid, value)`` matching ``pattern``, a 3-tuple of patterns or ANY.

        ``guard(key, pid, value)``, if given, must be true too. Reshape the result with a
        comprehension: ``[key for key, _, _ in Registry.select("rooms")]``.
        """
        table = _table(registry)
        if pattern is not ANY and not (type(pattern) is tuple and len(pattern) == 3):
            raise ValueError(
                "Registry.select() takes a pattern of the shape (key, pid, value), each a "
                f"pattern such as ANY, e.g. (ANY, ANY, ANY) or (\"room\", ANY, ANY); got "
                f"{pattern!r}"
            )
        matches = compile_patterns((pattern,))
        return [
            (key, pid, isolate(value)) for key, pid, value in table.all_entries()
            if (matches is None or matches((key, pid, value)))
            and (guard is None or guard(key, pid, value))
        ]

    # -- metadata ------------------------------------------------------------------------

    @staticmethod
    def meta(registry: str, key: Any, default: Any = None) -> Any:
        """The registry's metadata under ``key`` (``default`` if there is none)."""
        return isolate(_table(registry).meta.get(key, default))

    @staticmethod
    def put_meta(registry: str, key: Any, value: Any) -> None:
        """Store metadata on the registry (shared by every process that uses it)."""
        _table(registry).meta[key] = isolate(value)

    @staticmethod
    def delete_meta(registry: str, key: Any) -> None:
        """Remove the metadata under ``key`` (a no-op if there is none)."""
        _table(registry).meta.pop(key, None)

    # -- locks ---------------------------------------------------------------------------

    @staticmethod
    async def lock(registry: str, key: Any, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` in the caller while no other process holds the lock ``key``.

        Waits its turn (first come, first served); returns what ``fn`` returns (awaited if
        it is a coroutine). The lock is released when ``fn`` returns or raises, or when the
        caller dies; a caller that dies while waiting gives up its turn. Lock keys are apart
        from the registry's keys. Not re-entrant: locking a key the caller holds raises
        ``RegistryError``.
        """
        _check_key(key)
        return await lock(_table(registry), key, fn)


@mark_shared
class _Via:
    """The registry object of a via name: implements the via protocol (see naming.py)."""

    __slots__ = ("registry", "value")

    def __init__(self, registry: str, value: Any) -> None:
        self.registry = registry
        self.value = value

    def register_name(self, key: Any, pid: Pid) -> bool:
        if pid != _self():
            raise ValueError(
                f"{self!r}.register_name({key!r}, {pid!r}) must be called by {pid!r} itself "
                "(a server registers its own via name when it starts)"
            )
        _require_unique(_table(self.registry), "via")
        try:
            Registry.register(self.registry, key, self.value)
        except RegistryError as refused:
            if refused.reason[0] == "already_registered":
                return False
            raise
        return True

    def unregister_name(self, key: Any) -> None:
        Registry.unregister(self.registry, key)

    def whereis_name(self, key: Any) -> Pid | None:
        table = _table(self.registry)
        _require_unique(table, "via")
        entries = _unique_entries(table, key)
        return entries[0][0] if entries else None

    def send(self, key: Any, message: Any) -> None:
        pid = self.whereis_name(key)
        if pid is None:
            raise NotRegisteredError(
                f"cannot send to {key!r} in registry {self.registry!r}: no process is "
                "registered under that key", name=key,
            )
        send(pid, message)

    def __eq__(self, other: object) -> bool:
        return type(other) is _Via and (other.registry, other.value) == (
            self.registry, self.value
        )

    def __hash__(self) -> int:
        return hash(self.registry)

    def __repr__(self) -> str:
        value = "" if self.value is None else f", value={self.value!r}"
        return f"Registry({self.registry!r}{value})"


# -- helpers ----------------------------------------------------------------------------------


def _table(registry: str) -> RegistryTable:
    table = find_table(registry)
    if table is None:
        raise RegistryError(
            ("unknown_registry", registry),
            f"unknown registry {registry!r}: no registry is running under that name. Start "
            f"it first, e.g. Registry.start_link(keys=\"unique\", name={registry!r}), or put "
            f'(Registry, {{"keys": "unique", "name": {registry!r}}}) in a supervisor before '
            "the children that use it",
        )
    return table


def _unique_entries(table: RegistryTable, key: Any) -> list[Entry]:
    holder = table.holder(key)
    if holder is None or not is_alive(holder[0]):
        return []
    return [(holder[0], isolate(holder[1]))]


def _matcher(pattern: Any, guard: Callable[[Any], Any] | None) -> Callable[[Any], bool] | None:
    matches = compile_patterns((pattern,))
    if guard is None:
        return matches
    if not callable(guard):
        raise TypeError(f"a guard is a function of the value, got {guard!r}")
    if matches is None:
        return lambda value: bool(guard(value))
    pattern_matches = matches
    return lambda value: pattern_matches(value) and bool(guard(value))


def _notify(table: RegistryTable, event: tuple[Any, ...]) -> None:
    for listener in table.listeners:
        # a listener that is not running (restarting, say) misses the event
        with contextlib.suppress(NotRegisteredError):
            send(listener, event)


def _unlink_owner(table: RegistryTable, me: Pid) -> None:
    owner = table.pids[table.owner_index(me)]
    if owner is not None:
        unlink(owner)


def _require_unique(table: RegistryTable, operation: str) -> None:
    if not table.unique:
        raise RegistryError(
            ("not_supported", operation, "duplicate"),
            f"{'a via name' if operation == 'via' else 'Registry.' + operation + '()'} is not "
            f"supported for duplicate registries: {table.name!r} has {table.kind} keys. Use a "
            'registry started with keys="unique"',
        )


def _check_key(key: Any) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"a registry key must be hashable, got {key!r} ({type(key).__name__}); use a "
            "tuple instead of a list, a frozenset instead of a set, or a frozen dataclass"
        ) from None


async def _start_with(options: dict[str, Any]) -> Pid:
    return await Registry.start_link(**options)
