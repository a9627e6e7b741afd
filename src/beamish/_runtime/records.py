"""Message records: the one rule for message types, in one process, across processes and
across nodes.

``@message`` makes a class a frozen slotted dataclass and registers it under a wire name
(``module.QualName`` unless given), so that:

- isolation passes it by reference when its fields are immutable (a frozen dataclass);
- the cluster's wire codec can send it to another node, where it arrives as the same class,
  and pattern matching on it works there as here::

      @beamish.message
      class Deposit:
          account: str
          amount: int

      match await receive():
          case Deposit(account, amount): ...

``register_wire_type(cls)`` registers an existing type instead: a frozen dataclass, an
``Enum``, or a class with ``__match_args__`` whose constructor takes those fields in order.
Both nodes must register the same types under the same names (define them in a module both
import). Nothing is ever pickled: a type that is not registered cannot cross the wire.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = [
    "WIRE_CALLABLES", "WIRE_CALLABLE_NAMES", "WIRE_NAMES", "WIRE_TYPES", "WireType", "message",
    "register_wire_callable", "register_wire_type", "remote",
]

T = TypeVar("T", bound=type)


class WireType:
    """How one registered type crosses the wire: its name, fields, and how to rebuild it."""

    __slots__ = ("build", "cls", "fields", "kind", "name")

    def __init__(self, cls: type, name: str, kind: str, fields: tuple[str, ...],
                 build: Callable[..., Any]) -> None:
        self.cls = cls
        self.name = name
        self.kind = kind  # "record" or "enum"
        self.fields = fields
        self.build = build


WIRE_TYPES: dict[str, WireType] = {}  # wire name -> type
WIRE_NAMES: dict[type, WireType] = {}  # type -> its registration
WIRE_CALLABLES: dict[str, Any] = {}  # wire name -> function or class
WIRE_CALLABLE_NAMES: dict[Any, str] = {}  # function or class -> wire name


def register_wire_callable(obj: Any, name: str | None = None) -> Any:
    """Let the function or class ``obj`` cross the wire *by name*: another node that
    registered the same name gets its own object of that name (nothing is imported or
    evaluated from the network). For code another node may start here, such as a
    ``Task.Supervisor`` child's function."""
    if not callable(obj):
        raise TypeError(f"register_wire_callable() takes a function or a class, got {obj!r}")
    wire = name if name is not None else (
        f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    )
    taken = WIRE_CALLABLES.get(wire)
    if taken is not None and taken != obj:
        raise ValueError(f"the wire name {wire!r} is taken by {taken!r}")
    WIRE_CALLABLES[wire] = obj
    WIRE_CALLABLE_NAMES[obj] = wire
    return obj


def remote(fn: Any = None, /, *, name: str | None = None) -> Any:
    """``@remote``: a function other nodes may ask this one to run (``Task.Supervisor``
    children started from another node), known on the wire by ``name`` (default
    ``module.QualName``). Every node that runs it must define it."""

    def wrap(f: Any) -> Any:
        return register_wire_callable(f, name)

    return wrap if fn is None else wrap(fn)


def register_wire_type(cls: T, name: str | None = None) -> T:
    """Let ``cls`` cross the wire under ``name`` (default ``module.QualName``).

    Accepted: a frozen dataclass, an ``Enum``, or a class with ``__match_args__`` whose
    constructor takes those fields positionally. Registering the same class again under the
    same name does nothing; another class under a taken name is refused.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_wire_type() takes a class, got {cls!r}")
    wire = name if name is not None else f"{cls.__module__}.{cls.__qualname__}"
    if type(wire) is not str or not wire:
        raise TypeError(f"a wire name must be a non-empty str, got {wire!r}")
    taken = WIRE_TYPES.get(wire)
    if taken is not None:
        if taken.cls is cls:
            return cls
        raise ValueError(
            f"the wire name {wire!r} is taken by {taken.cls.__module__}.{taken.cls.__qualname__}; "
            f"give {cls.__qualname__} another with register_wire_type(cls, name=...)"
        )
    if issubclass(cls, enum.Enum):
        entry = WireType(cls, wire, "enum", (), cls)
    elif dataclasses.is_dataclass(cls):
        if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(
                f"{cls.__qualname__} is a dataclass that is not frozen: a message must not "
                "change after it is sent. Declare it with @dataclass(frozen=True) or @message"
            )
        fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        entry = WireType(cls, wire, "record", fields, cls)
    elif isinstance(getattr(cls, "__match_args__", None), tuple):
        entry = WireType(cls, wire, "record", cls.__match_args__, cls)  # type: ignore[attr-defined]
    else:
        raise TypeError(
            f"{cls.__qualname__} cannot be registered for the wire: declare it with "
            "@beamish.message (a frozen dataclass), or give it __match_args__ naming the "
            "constructor's arguments"
        )
    WIRE_TYPES[wire] = entry
    WIRE_NAMES[cls] = entry
    return cls


@overload
def message(cls: T, /) -> T: ...
@overload
def message(*, name: str | None = None) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True)
def message(cls: Any = None, /, *, name: str | None = None) -> Any:
    """Declare a message record: a frozen slotted dataclass that can cross nodes.

    ``@message`` or ``@message(name="shop.Deposit")`` (a stable wire name, for a class that
    may move between modules).
    """

    def wrap(c: type) -> type:
        if not dataclasses.is_dataclass(c):
            c = dataclasses.dataclass(frozen=True, slots=True)(c)
        return register_wire_type(c, name)

    return wrap if cls is None else wrap(cls)
