"""Settings: an application's configuration, read from environment variables.

Pure: plain classes and functions, no process. Declare the settings as a class with typed
attributes and defaults; it becomes a frozen, keyword-only dataclass::

    class ShopSettings(Settings):
        port: int = 4000
        debug: bool = False
        hosts: tuple[str, ...] = ("localhost",)
        secret: str                          # no default: the variable is required

    ShopSettings.from_env("SHOP_")           # reads SHOP_PORT, SHOP_DEBUG, SHOP_HOSTS, SHOP_SECRET
    ShopSettings(secret="s3cret", port=8080) # or build one directly (tests)

Each variable is converted to its attribute's type. The types a variable can hold:

- ``str``, ``int``, ``float``, ``pathlib.Path``;
- ``bool``: ``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case);
- an ``Enum``: a member's name or value; ``Literal["a", "b"]``: one of the values;
- ``tuple[T, ...]``: a comma-separated list of ``T`` (an empty variable is ``()``);
- ``T | None``: ``T``, or an empty variable for ``None``.

An attribute annotated ``Any`` takes the type of its default. A variable that is not set
leaves the default; one that cannot be read raises ``SettingsError``, which names every
variable that failed and the type it expected.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, Literal, Self, dataclass_transform, get_args, get_origin

from beamish._errors import SettingsError

__all__ = ["Reader", "Settings", "Variable", "reader_for"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SUPPORTED = (
    "str, int, float, bool, pathlib.Path, an Enum, Literal[...], tuple[T, ...] and T | None"
)


@dataclass(frozen=True, slots=True)
class Reader:
    """How to read one variable: ``parse(text)`` raises ValueError when it cannot."""

    expected: str  # "an int", "a comma-separated list of int", ...
    parse: Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable a settings class reads (see ``Settings.variables``)."""

    name: str
    field: str
    expected: str
    required: bool
    default: Any  # None when required


def _parse_int(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ValueError(text) from None  # the type is the message: no detail to add


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(text) from None


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(text)


def _enum_reader(cls: type[enum.Enum]) -> Reader:
    members = list(cls)

    def parse(text: str) -> enum.Enum:
        word = text.strip()
        for member in members:
            if member.name == word or str(member.value) == word:
                return member
        for member in members:
            if member.name.lower() == word.lower():
                return member
        raise ValueError(text)

    return Reader("one of " + ", ".join(repr(m.name) for m in members), parse)


def _literal_reader(values: tuple[Any, ...]) -> Reader | None:
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        return None

    def parse(text: str) -> Any:
        word = text.strip()
        for value in values:
            if str(value) == word:
                return value
        raise ValueError(text)

    return Reader("one of " + ", ".join(repr(v) for v in values), parse)


def _tuple_reader(item: Reader) -> Reader:
    expected = f"a comma-separated list of {_bare(item.expected)}"

    def parse(text: str) -> tuple[Any, ...]:
        if not text.strip():
            return ()
        values = []
        for part in text.split(","):
            try:
                values.append(item.parse(part.strip()))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not {item.expected}") from None
        return tuple(values)

    return Reader(expected, parse)


def _optional_reader(inner: Reader) -> Reader:
    def parse(text: str) -> Any:
        return None if not text.strip() else inner.parse(text)

    return Reader(f"{inner.expected}, or empty for None", parse)


def _bare(expected: str) -> str:
    """'an int' -> 'int', for 'a list of int'."""
    for article in ("an ", "a "):
        if expected.startswith(article):
            return expected[len(article):]
    return expected


def reader_for(tp: Any) -> Reader | None:
    """The reader for an annotation, or None if a variable cannot hold that type."""
    if tp is str:
        return Reader("a str", str)
    if tp is bool:
        return Reader("a bool (true/false, yes/no, on/off, 1/0)", _parse_bool)
    if tp is int:
        return Reader("an int", _parse_int)
    if tp is float:
        return Reader("a float", _parse_float)
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return Reader("a path", tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_reader(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return _literal_reader(args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = reader_for(args[0])
        return _tuple_reader(item) if item is not None else None
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = reader_for(rest[0])
            return _optional_reader(inner) if inner is not None else None
    return None


# -- the settings class ------------------------------------------------------------------------


@dataclass_transform(kw_only_default=True, frozen_default=True)
@dataclass(frozen=True, kw_only=True)
class Settings:
    """Typed configuration read from environment variables; subclass it.

    A subclass is made a frozen, keyword-only dataclass: its annotated attributes are the
    settings, their defaults the values used when a variable is not set. An attribute with
    no default is required. Read them with ``from_env(prefix)``, or build an instance
    directly (``ShopSettings(port=1)``) in tests.
    """

    _readers: ClassVar[dict[str, Reader] | None] = None

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        cls._readers = None
        dataclass(frozen=True, kw_only=True)(cls)

    @classmethod
    def from_env(cls, prefix: str = "", environ: Mapping[str, str] | None = None) -> Self:
        """Read each setting from the variable ``prefix + NAME`` (the attribute, upper case).

        ``environ`` defaults to ``os.environ``. Raises ``SettingsError`` listing every
        variable that is missing (required settings) or cannot be read as its type.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for variable, reader in zip(cls.variables(prefix), cls._field_readers().values(),
                                    strict=True):
            text = env.get(variable.name)
            if text is None:
                if variable.required:
                    problems.append((
                        variable.name, f"required ({variable.expected}) but not set",
                    ))
                continue
            try:
                values[variable.field] = reader.parse(text)
            except ValueError as exc:
                detail = "" if str(exc) == text else f": {exc}"
                problems.append((
                    variable.name, f"expected {variable.expected}, got {text!r}{detail}",
                ))
        if problems:
            raise SettingsError(cls.__qualname__, problems)
        return cls(**values)

    @classmethod
    def variables(cls, prefix: str = "") -> list[Variable]:
        """The variables ``from_env(prefix)`` reads, in declaration order (for help texts)."""
        readers = cls._field_readers()
        found = []
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and (
                f.default_factory is dataclasses.MISSING
            )
            default: Any = None
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            found.append(Variable(
                prefix + f.name.upper(), f.name, readers[f.name].expected, required, default,
            ))
        return found

    @classmethod
    def _field_readers(cls) -> dict[str, Reader]:
        readers = cls.__dict__.get("_readers")
        if readers is not None:
            return readers  # type: ignore[no-any-return]
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:
            raise TypeError(
                f"cannot read the annotations of {cls.__qualname__} ({exc}); define the "
                "settings class, and the types it uses, at module level"
            ) from exc
        readers = {}
        for f in dataclasses.fields(cls):
            tp = hints.get(f.name, Any)
            if tp is Any and f.default is not dataclasses.MISSING:
                tp = type(f.default)
            reader = reader_for(tp)
            if reader is None:
                raise TypeError(
                    f"{cls.__qualname__}.{f.name} is annotated {_type_name(tp)}, which an "
                    f"environment variable cannot hold; use one of {_SUPPORTED}"
                )
            readers[f.name] = reader
        cls._readers = readers
        return readers


def _type_name(tp: Any) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)
