"""Loading new code into a running interpreter, all or nothing.

Two steps, so that nothing changes unless everything can:

1. ``stage(names)`` runs each module's new source from disk in a namespace of its own (the
   running module is untouched; ``sys.modules`` names it again once the source has run). A
   syntax error, or any exception the module's top-level code raises, stops the staging
   with an ``UpgradeError`` naming the module: nothing has changed.
2. ``apply(staged)`` moves the running objects onto the new code **in place**: a class
   defined in the module keeps its identity and gets the new class's methods and
   attributes; a function keeps its identity and gets the new code (``__code__``,
   defaults). So everything that holds the old objects (instances, a supervisor's child
   spec, a socket's channel table, ``from module import Counter`` elsewhere, a route's
   handler) runs the new code from its next call on. Its ``Patch`` undoes all of it.

What ``apply`` does with each top-level name of the new source:

- a class or function the module defined before: patched in place (above);
- a new name, or a constant (numbers, text, bytes, tuples, frozensets, None): the new value;
- any other object the running module holds (a dict, a router, an endpoint, a logger):
  **kept**, because it holds what the node has done so far (routes, caches, registrations);
  its changes take effect at the next restart.

A class whose ``__slots__`` changed cannot be patched (its running instances' layout is
fixed): the upgrade fails and says so. Classes whose metaclass is not ``type`` (an Enum,
say) get their functions patched, not their data.
"""

from __future__ import annotations

import builtins
import enum
import sys
import types
from abc import ABCMeta
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from beamish._errors import BeamishError

__all__ = ["Patch", "Staged", "UpgradeError", "apply", "stage"]

_CONSTANTS = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, range)
# class attributes that belong to the class object itself, never copied from the new one
_OWN = frozenset({"__dict__", "__weakref__", "__module__", "__slots__", "__qualname__",
                  "__abstractmethods__", "_abc_impl"})
_MISSING: Any = object()


class UpgradeError(BeamishError, RuntimeError):
    """An upgrade could not be made; nothing was changed (the message says why)."""


@dataclass
class Staged:
    """One module's new code, run apart from the running module."""

    name: str
    module: types.ModuleType  # the running module: everything that imported it holds it
    namespace: dict[str, Any]  # the new source's top-level names


@dataclass
class Patch:
    """What ``apply`` changed, to undo it (in reverse order)."""

    undo_steps: list[Callable[[], None]] = field(default_factory=list)
    classes: dict[type, type] = field(default_factory=dict)  # running class -> new class
    functions: int = 0

    def undo(self) -> None:
        steps, self.undo_steps = self.undo_steps, []
        for step in reversed(steps):
            step()


def stage(names: Iterable[str]) -> list[Staged]:
    """Run each module's source from disk apart from the running module (see the module)."""
    staged = []
    for name in names:
        module = sys.modules.get(name)
        if module is None:
            raise UpgradeError(
                f"module {name!r} is not loaded in this node: there is nothing of it to "
                "upgrade (a module the node never imported takes effect when it is imported)"
            )
        origin = origin_of(module)
        if origin is None:
            raise UpgradeError(f"module {name!r} has no Python source file to load from")
        try:
            with open(origin, "rb") as file:
                code = compile(file.read(), origin, "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise UpgradeError(
                f"module {name!r} has a syntax error, {origin} line {exc.lineno}: {exc.msg}"
            ) from None
        except OSError as exc:
            raise UpgradeError(f"module {name!r}: cannot read {origin}: {exc}") from None
        fresh = types.ModuleType(name, module.__doc__)
        for attribute in ("__file__", "__spec__", "__loader__", "__package__", "__path__",
                          "__cached__"):
            if hasattr(module, attribute):
                setattr(fresh, attribute, getattr(module, attribute))
        sys.modules[name] = fresh  # the source may look itself up (dataclasses do)
        try:
            exec(code, fresh.__dict__)
        except BaseException as exc:
            raise UpgradeError(
                f"module {name!r} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            sys.modules[name] = module
        staged.append(Staged(name, module, fresh.__dict__))
    return staged


def apply(staged: list[Staged]) -> Patch:
    """Move the running modules onto their staged code, in place; the ``Patch`` undoes it.
    If a class cannot be patched, what was done is undone and ``UpgradeError`` raised."""
    patch = Patch()
    try:
        pairs = [(s, _pair(s)) for s in staged]
        for s, mapping in pairs:
            _Mover(s, mapping, patch).move()
    except BaseException:
        patch.undo()
        raise
    return patch


# -- the move ------------------------------------------------------------------------------


def _pair(s: Staged) -> dict[int, Any]:
    """New object id -> the running object it becomes (classes and functions defined here,
    nested classes included)."""
    mapping: dict[int, Any] = {}
    old_ns = s.module.__dict__
    for name, new in s.namespace.items():
        old = old_ns.get(name, _MISSING)
        if _same_kind_here(old, new, s.name):
            mapping[id(new)] = old
            if isinstance(new, type):
                _pair_nested(old, new, s.name, mapping)
    return mapping


def _pair_nested(old: type, new: type, module: str, mapping: dict[int, Any]) -> None:
    for key, value in vars(new).items():
        current = vars(old).get(key, _MISSING)
        if isinstance(value, type) and _same_kind_here(current, value, module):
            mapping[id(value)] = current
            _pair_nested(current, value, module, mapping)


def _same_kind_here(old: Any, new: Any, module: str) -> bool:
    if isinstance(new, type):
        return (isinstance(old, type) and old.__module__ == module == new.__module__
                and old.__qualname__ == new.__qualname__)
    return (isinstance(new, types.FunctionType) and isinstance(old, types.FunctionType)
            and old.__module__ == module == new.__module__)


class _Mover:
    def __init__(self, s: Staged, mapping: dict[int, Any], patch: Patch) -> None:
        self.s = s
        self.old_ns = s.module.__dict__
        self.new_ns = s.namespace
        self.mapping = mapping
        self.patch = patch
        self.seen: set[int] = set()

    def move(self) -> None:
        old_ns, new_ns = self.old_ns, self.new_ns
        saved = dict(old_ns)

        def restore() -> None:
            old_ns.clear()
            old_ns.update(saved)

        self.patch.undo_steps.append(restore)
        final: dict[str, Any] = {}
        for name, new in new_ns.items():
            if name in ("__builtins__", "__name__", "__file__", "__spec__", "__loader__",
                        "__package__", "__path__", "__cached__"):
                continue
            old = old_ns.get(name, _MISSING)
            if id(new) in self.mapping:
                final[name] = self.moved(new, old)
            elif old is _MISSING or _replaceable(old):
                final[name] = self.convert(new, _MISSING)
            else:
                final[name] = old  # state the node holds (see the module)
        old_ns.update(final)
        new_ns.update(old_ns)  # one world: the new source's functions see the same names

    def moved(self, new: Any, old: Any) -> Any:
        if isinstance(new, type):
            self.patch_class(old, new)
            return old
        return self.function(new, old)

    def patch_class(self, old: type, new: type) -> None:
        if id(old) in self.seen:
            return
        self.seen.add(id(old))
        what = f"{self.s.name}.{old.__qualname__}"
        if _slots(old) != _slots(new):
            raise UpgradeError(
                f"class {what} changed its __slots__ ({sorted(_slots(old))} -> "
                f"{sorted(_slots(new))}): the layout of its running instances cannot change "
                "in place; restart the node for this change"
            )
        bases = tuple(self.mapping.get(id(b), b) for b in new.__bases__)
        saved = dict(vars(old))
        saved_bases = old.__bases__

        def restore() -> None:
            if old.__bases__ != saved_bases:
                old.__bases__ = saved_bases
            for key in [k for k in vars(old) if k not in saved and k not in _OWN]:
                delattr(old, key)
            for key, value in saved.items():
                if key not in _OWN and vars(old).get(key, _MISSING) is not value:
                    setattr(old, key, value)

        self.patch.undo_steps.append(restore)
        self.patch.classes[old] = new
        if bases != old.__bases__:
            try:
                old.__bases__ = bases
            except TypeError as exc:
                raise UpgradeError(
                    f"class {what} changed its bases and they cannot be swapped in place "
                    f"({exc}); restart the node for this change"
                ) from None
        data_too = type(old) in (type, ABCMeta) and not issubclass(old, enum.Enum)
        slots = _slots(old)
        for key, value in vars(new).items():
            if key in _OWN or key in slots:
                continue
            current = vars(old).get(key, _MISSING)
            if not data_too and not _is_code(value):
                continue
            setattr(old, key, self.convert(value, current))
        for key in list(vars(old)):
            if key not in vars(new) and key not in _OWN and key not in slots and (
                    data_too or _is_code(vars(old)[key])):
                delattr(old, key)

    def convert(self, value: Any, current: Any) -> Any:
        """``value`` from the new source, made to live in the running module."""
        mapped = self.mapping.get(id(value))
        if mapped is not None:
            if isinstance(value, type):
                self.patch_class(mapped, value)
            elif isinstance(value, types.FunctionType):
                return self.function(value, mapped)
            return mapped
        kind = type(value)
        if kind is types.FunctionType:
            return self.function(value, current)
        if kind is staticmethod or kind is classmethod:
            inner = current.__func__ if type(current) is kind else _MISSING
            converted = self.convert(value.__func__, inner)
            return current if converted is inner else kind(converted)
        if kind is property:
            fget, fset, fdel = (self.convert(f, _MISSING) if f is not None else None
                                for f in (value.fget, value.fset, value.fdel))
            return property(fget, fset, fdel, value.__doc__)
        if kind is dict:
            return {self.convert(k, _MISSING): self.convert(v, _MISSING)
                    for k, v in value.items()}
        if kind in (list, tuple, set, frozenset):
            return kind(self.convert(v, _MISSING) for v in value)
        return value

    def function(self, new: types.FunctionType, old: Any) -> types.FunctionType:
        """``old`` given ``new``'s code when their closures agree; else ``new`` remade to
        live in the running module (its globals, its classes in its closure)."""
        if new.__globals__ is not self.new_ns:
            self.fix_cells(new)  # made elsewhere (a dataclass's __init__): kept as it is
            return new
        if isinstance(old, types.FunctionType) and old.__globals__ is self.old_ns and (
                len(old.__code__.co_freevars) == len(new.__code__.co_freevars)):
            saved = (old.__code__, old.__defaults__, old.__kwdefaults__,
                     dict(old.__annotations__), old.__doc__, dict(old.__dict__))

            def restore() -> None:
                (old.__code__, old.__defaults__, old.__kwdefaults__, annotations, old.__doc__,
                 attributes) = saved
                old.__annotations__ = annotations
                old.__dict__.clear()
                old.__dict__.update(attributes)

            self.patch.undo_steps.append(restore)
            old.__code__ = new.__code__
            old.__defaults__ = new.__defaults__
            _take_attributes(old, new)
            self.patch.functions += 1
            return old
        closure = None
        if new.__closure__ is not None:
            closure = tuple(types.CellType(self.mapping.get(id(c.cell_contents),
                                                            c.cell_contents))
                            if _filled(c) else c for c in new.__closure__)
        made = types.FunctionType(new.__code__, self.old_ns, new.__name__, new.__defaults__,
                                  closure)
        made.__qualname__ = new.__qualname__
        made.__module__ = new.__module__
        _take_attributes(made, new)
        self.patch.functions += 1
        return made

    def fix_cells(self, function: types.FunctionType) -> None:
        for cell in function.__closure__ or ():
            if _filled(cell):
                mapped = self.mapping.get(id(cell.cell_contents))
                if mapped is not None:
                    cell.cell_contents = mapped


def _take_attributes(function: types.FunctionType, new: types.FunctionType) -> None:
    """What a function carries besides its code and defaults, from the new source's."""
    function.__kwdefaults__ = new.__kwdefaults__
    function.__annotations__ = new.__annotations__
    function.__doc__ = new.__doc__
    function.__dict__.update(new.__dict__)


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _is_code(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, staticmethod, classmethod, property))


def _replaceable(old: Any) -> bool:
    return isinstance(old, (type, types.FunctionType, types.BuiltinFunctionType,
                            types.ModuleType, *_CONSTANTS)) or old is builtins


def _slots(cls: type) -> frozenset[str]:
    slots = vars(cls).get("__slots__", ())
    return frozenset((slots,) if isinstance(slots, str) else slots)


def origin_of(module: types.ModuleType) -> str | None:
    """The Python source file a module was loaded from, or None."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None
    return origin
