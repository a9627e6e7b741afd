"""Patterns for selective receive, compiled to predicates. Pure: no process involved.

A pattern describes which messages a ``receive`` takes; the message itself is then usually
taken apart with a ``match`` statement. The forms follow Python's own ``match`` semantics:

==========================  ===============================================================
pattern                     matches
==========================  ===============================================================
``ANY``                     any message
a class, e.g. ``Down``      instances of that class (``isinstance``)
a tuple ``(p1, p2, ...)``   a tuple of the same length whose items match ``p1``, ``p2``, ...
a dataclass instance        the same class, field by field: ``Down(ref, ANY, ANY)``
a dict ``{"k": p, ...}``    a mapping that has every key, each value matching its pattern
a function (not a class)    messages for which ``function(message)`` is true
``None``, ``True``, ``False``  that very object (``is``), as in ``match``
any other value             an equal message (``==``)
==========================  ===============================================================

Several patterns given to one ``receive`` match if any of them does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ANY", "Matcher", "compile_patterns"]

Matcher = Callable[[Any], bool]


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""The wildcard pattern: matches any value (like ``_`` in a ``match`` case)."""


def _always(_message: Any) -> bool:
    return True


def _compile(pattern: Any) -> Matcher:
    if pattern is ANY:
        return _always
    if isinstance(pattern, type):
        cls = pattern
        return lambda m: isinstance(m, cls)
    if type(pattern) is tuple:
        size = len(pattern)
        items = [(i, _compile(p)) for i, p in enumerate(pattern) if p is not ANY]
        if all(_is_plain(p) for p in pattern):
            # a tuple of plain values: compare in one go
            exact = pattern
            return lambda m: type(m) is tuple and len(m) == size and m == exact

        def match_tuple(m: Any) -> bool:
            if type(m) is not tuple or len(m) != size:
                return False
            return all(sub(m[i]) for i, sub in items)

        return match_tuple
    if type(pattern) is dict:
        entries = [(k, _compile(v)) for k, v in pattern.items()]
        missing = object()

        def match_mapping(m: Any) -> bool:
            if not isinstance(m, Mapping):
                return False
            for key, sub in entries:
                value = m.get(key, missing)
                if value is missing or not sub(value):
                    return False
            return True

        return match_mapping
    if _is_record_pattern(pattern):  # Down(ref, ANY, ANY): field by field, as match does
        cls = type(pattern)
        fields = [(f.name, _compile(getattr(pattern, f.name)))
                  for f in dataclasses.fields(pattern) if getattr(pattern, f.name) is not ANY]

        def match_record(m: Any) -> bool:
            return type(m) is cls and all(sub(getattr(m, name)) for name, sub in fields)

        return match_record
    if pattern is None or pattern is True or pattern is False:
        singleton = pattern
        return lambda m: m is singleton
    if callable(pattern):
        predicate = pattern
        return lambda m: bool(predicate(m))
    value = pattern
    return lambda m: bool(m == value)


def _is_record_pattern(pattern: Any) -> bool:
    """A dataclass instance with a pattern (ANY, a class...) in a field."""
    return (
        dataclasses.is_dataclass(pattern) and not isinstance(pattern, type)
        and not all(_is_plain(getattr(pattern, f.name)) for f in dataclasses.fields(pattern))
    )


def _is_plain(pattern: Any) -> bool:
    """A pattern that matches by plain equality (so a tuple of them compares at once)."""
    return not (
        pattern is ANY
        or pattern is None
        or pattern is True
        or pattern is False
        or isinstance(pattern, type)
        or callable(pattern)
        or type(pattern) in (tuple, dict)
    )


def compile_patterns(patterns: tuple[Any, ...]) -> Matcher | None:
    """One predicate for a receive's patterns; ``None`` when any message will do."""
    if not patterns or any(p is ANY for p in patterns):
        return None
    if len(patterns) == 1:
        return _compile(patterns[0])
    matchers = [_compile(p) for p in patterns]
    return lambda m: any(f(m) for f in matchers)
