"""Message isolation: a receiver never sees a sender's later change to a sent object.

The policy, applied by ``send`` to every message:

- **Immutable values pass by reference**: ``str``, ``bytes``, numbers, ``bool``, ``None``,
  pids, refs, enum members, exit records, and tuples, frozensets and frozen dataclasses whose
  contents are themselves immutable (checked all the way down).
- **Mutable values are deep-copied at send**: lists, dicts, sets, bytearrays, and tuples or
  frozen dataclasses holding any of them. The copy keeps shared references and cycles.
  Other objects are copied with :func:`copy.deepcopy`; one that cannot be copied (a lock, a
  socket, a generator) is refused with :class:`MessageCopyError` naming its type.
- Exceptions pass by reference: treat them as values, as Elixir treats its exception
  structs (many cannot be copied anyway: their ``__init__`` differs from their args).
- Functions, methods and partials pass by reference: what a closure captured is shared, as
  it is in the sender, so capture immutable values.
- A class whose instances are meant to be shared by reference, though they are not values
  (a connection, a pool's handle, an object that is thread-safe on purpose), says so with
  :func:`mark_shared`; its instances then pass by reference and are never copied. Messages
  that are values are records instead (``@message``): checked, and copied only when they hold
  something mutable.

``send`` inlines the common fast paths (an atomic value, or a short tuple of atomic values);
everything else comes here.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import types
from typing import Any, TypeVar

from beamish._errors import MessageCopyError
from beamish._runtime.messages import Crash, Down, Exit, NodeDown, NodeUp
from beamish._runtime.pid import Pid, Ref

__all__ = ["ATOMIC", "isolate", "is_shared", "mark_shared"]

T = TypeVar("T")

# Types whose instances are immutable and hold nothing mutable: passed by reference with one
# set lookup. ``send`` reads this set directly. Down and Exit qualify because the runtime
# isolates exit reasons where they enter (exit(), ProcessExit) before building them.
ATOMIC: set[type] = {
    str, int, float, complex, bool, bytes, type(None), type(Ellipsis), range,
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial, type,
    Pid, Ref, Crash, Down, Exit, NodeUp, NodeDown,
}

# Per-type classification, filled lazily.
_CONTAINER = 1  # tuple / frozenset: immutable shell, contents to check
_FROZEN_DC = 2  # frozen dataclass: fields to check
_OTHER = 3  # anything else: copied
_kinds: dict[type, int] = {}
_dc_fields: dict[type, tuple[str, ...]] = {}


def mark_shared(cls: type[T]) -> type[T]:
    """Declare that instances of ``cls`` are shared between processes by reference.

    For objects that are not values but handles meant to be shared (a connection, a pool's
    lease, a thread-safe cache): their instances pass as they are, without a check or a copy,
    and every process that receives one holds the same object::

        @mark_shared
        class Connection:
            ...

    The name says what happens, not that the object is immutable: the class promises that
    sharing it is safe.
    """
    if not isinstance(cls, type):
        raise TypeError(f"mark_shared() takes a class, got {cls!r}")
    ATOMIC.add(cls)
    return cls


def _kind(t: type) -> int:
    k = _kinds.get(t)
    if k is None:
        if issubclass(t, (tuple, frozenset)) and t not in (tuple, frozenset):
            # namedtuples and friends: treat like tuples (their class adds no state)
            k = _CONTAINER if not hasattr(t, "__dict__") or t.__dictoffset__ == 0 else _OTHER
        elif t is tuple or t is frozenset:
            k = _CONTAINER
        elif dataclasses.is_dataclass(t) and t.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            k = _FROZEN_DC
            _dc_fields[t] = tuple(f.name for f in dataclasses.fields(t))
        elif issubclass(t, enum.Enum | BaseException):
            # enum members are singletons; exceptions are values (Elixir's are immutable
            # structs) and many cannot be rebuilt from their args, so they are shared
            ATOMIC.add(t)
            k = 0
        else:
            k = _OTHER
        _kinds[t] = k
    return k


def is_shared(value: Any) -> bool:
    """True if ``value`` would pass by reference (it holds nothing that must be copied)."""
    t = type(value)
    if t in ATOMIC:
        return True
    k = _kind(t)
    if k == _CONTAINER:
        return all(is_shared(x) for x in value)
    if k == _FROZEN_DC:
        return all(is_shared(getattr(value, name)) for name in _dc_fields[t])
    return k == 0


def isolate(message: T) -> T:
    """Return ``message`` itself if it is immutable, else a deep copy of it."""
    if is_shared(message):
        return message
    copied: T = _copy(message, {})
    return copied


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    t = type(value)
    if t in ATOMIC:
        return value
    done = memo.get(id(value))
    if done is not None:
        return done
    if t is list:
        out_list: list[Any] = []
        memo[id(value)] = out_list
        out_list.extend([_copy(x, memo) for x in value])
        return out_list
    if t is dict:
        out_dict: dict[Any, Any] = {}
        memo[id(value)] = out_dict
        for k, v in value.items():
            out_dict[_copy(k, memo)] = _copy(v, memo)
        return out_dict
    if t is tuple:
        if is_shared(value):
            return value
        out_tuple = tuple([_copy(x, memo) for x in value])
        memo[id(value)] = out_tuple
        return out_tuple
    if t is set:
        out_set = {_copy(x, memo) for x in value}
        memo[id(value)] = out_set
        return out_set
    if t is frozenset and is_shared(value):
        return value
    if t is bytearray:
        return bytearray(value)
    if is_shared(value):
        return value
    if _kind(t) == _FROZEN_DC:  # field by field: deepcopy would be ~10x slower
        copied_dc = object.__new__(t)
        memo[id(value)] = copied_dc
        for name in _dc_fields[t]:
            object.__setattr__(copied_dc, name, _copy(getattr(value, name), memo))
        return copied_dc
    try:
        return copy.deepcopy(value, memo)
    except Exception as exc:
        raise MessageCopyError(
            f"cannot send a {t.__module__}.{t.__qualname__} between processes: it is mutable "
            f"and copying it failed ({exc}). Send immutable data (tuples, frozen dataclasses, "
            "str, numbers), or, if sharing it is safe, declare the class with "
            "beamish.mark_shared."
        ) from exc
