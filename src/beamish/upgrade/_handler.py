"""The release handler: ``upgrade()`` moves a running node onto new code, all or nothing.

How it works, in OTP's order (``release_handler`` with an ``.appup``):

1. **Load** the modules' new source apart from the running ones (``_loader.stage``). A
   syntax error or a failing import stops here: nothing has changed.
2. **Hold** every actor whose code comes from those modules (its class, or a class it
   inherits from, is defined in one; a channel's process counts its Channel's class) between
   two messages (``_runtime.holds``), parents before children as the supervision trees go.
   An actor busy in an ``async`` handler is waited for (``timeout``); messages sent meanwhile
   wait in the mailboxes, in order.
3. In one step, with no other process running: **patch** the classes and functions in place
   (``_loader.apply``), then give each held process its ``code_change(old_vsn, state,
   extra)``, inside the process, in tree order. If one raises, every process changed so far
   gets its old state back, the patch is undone, and ``UpgradeError`` says which process
   and which exception: every process is back on the old code with its old state.
4. **Release** the processes: they take their waiting messages with the new code.

A process that started while the handler waited is found again in step 3: it is held and
changed with the others (or, if it is busy in a handler, the handler waits again, at most
three times). Task-shaped processes (``spawn(async_fn)``, a request's process) are never
held: a coroutine already running keeps running the code it started in; what it calls next
is the new code.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from beamish._errors import ProcessExit
from beamish._runtime.context import current_runtime
from beamish._runtime.events import event
from beamish._runtime.holds import hold, release
from beamish._runtime.pid import Pid
from beamish._runtime.process import Process
from beamish._runtime.runtime import Runtime
from beamish.upgrade._loader import UpgradeError, apply, origin_of, stage

__all__ = ["Upgrade", "UpgradeReport", "changed_modules", "load_plan", "upgrade"]

_log = logging.getLogger("beamish.upgrade")
UPGRADED = event("beamish", "upgrade", "stop")
FAILED = event("beamish", "upgrade", "exception")
_ATTEMPTS = 3


@dataclass(frozen=True)
class Upgrade:
    """An upgrade described by the new code itself, in the spirit of an ``.appup``: which
    modules to load, the ``extra`` their processes' ``code_change`` gets, and processes to
    change although their code is not in those modules (by registered name or pid, each
    with its own extra: an Agent's new value is ``extra(value)``)::

        # myapp/release.py, shipped with the new code
        from beamish.upgrade import Upgrade

        upgrade = Upgrade(modules=["myapp.counter", "myapp.store"], extra={"since": 0},
                          change={"cache": lambda old: {"entries": old}})

    ``beamish upgrade NODE --plan myapp.release`` (or ``upgrade(plan="myapp.release")``)
    reads it from disk and applies it.
    """

    modules: tuple[str, ...] | list[str]
    extra: Any = None
    change: Mapping[Any, Any] = field(default_factory=dict)
    vsn: Any = None  # the release's version, for the log


@dataclass
class UpgradeReport:
    """What an upgrade did."""

    modules: list[str]
    classes: list[str]  # the classes patched, by qualified name
    functions: int  # functions given new code (methods included)
    processes: int  # processes given code_change
    held_for: float  # seconds the processes waited, from the first held to the release

    def __str__(self) -> str:
        return (f"upgraded {', '.join(self.modules) or 'nothing'}: {len(self.classes)} "
                f"classes, {self.functions} functions, {self.processes} processes changed; "
                f"held {self.held_for * 1000:.1f} ms")


async def upgrade(modules: Iterable[str] | None = None, *, extra: Any = None,
                  plan: str | Upgrade | None = None,
                  change: Mapping[Any, Any] | None = None,
                  timeout: float = 5.0) -> UpgradeReport:
    """Upgrade the running node to the current source of ``modules`` (see the module).

    ``plan`` (an ``Upgrade``, or the name of a module defining ``upgrade = Upgrade(...)``,
    read fresh from disk) gives the modules, ``extra`` and ``change`` instead. ``timeout``
    bounds the wait for busy processes to finish the message they handle. Raises
    ``UpgradeError`` (nothing changed) if a module fails to load, a class cannot be patched,
    a process stays busy, or a ``code_change`` raises.
    """
    if plan is not None:
        found = load_plan(plan) if isinstance(plan, str) else plan
        modules = found.modules
        extra = found.extra if extra is None else extra
        change = {**found.change, **(change or {})}
    if modules is None:
        raise TypeError("upgrade() needs the modules to load, or a plan")
    names = list(dict.fromkeys(modules))
    runtime = current_runtime()
    began = time.monotonic()
    try:
        report = await _upgrade(runtime, names, extra, dict(change or {}), timeout)
    except UpgradeError as exc:
        if FAILED.handlers:
            FAILED.emit({"duration": time.monotonic() - began},
                        {"modules": names, "reason": str(exc)})
        _log.error("upgrade failed; nothing was changed, the node runs the old code: %s", exc)
        raise
    if UPGRADED.handlers:
        UPGRADED.emit({"duration": time.monotonic() - began, "processes": report.processes},
                      {"modules": names})
    _log.info("%s", report)
    return report


async def _upgrade(runtime: Runtime, names: list[str], extra: Any,
                   change: dict[Any, Any], timeout: float) -> UpgradeReport:
    staged = stage(names)  # 1. nothing changes if this raises
    wanted = set(names)
    explicit = {_process_of(runtime, who): extra_of for who, extra_of in change.items()}
    held: dict[Process, None] = {}  # insertion-ordered
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first_held = 0.0
    try:
        for attempt in range(_ATTEMPTS + 1):  # 2. hold, until none is left busy
            waits = []
            for proc in _concerned(runtime, wanted, explicit):
                if proc not in held:
                    waiting = hold(proc)
                    held[proc] = None
                    first_held = first_held or time.monotonic()
                    if waiting is not None:
                        waits.append((proc, waiting))
            if not waits:
                break
            if attempt == _ATTEMPTS:
                raise UpgradeError(
                    "processes on the old code kept starting busy while the upgrade waited; "
                    "nothing was changed (try again)"
                )
            left = deadline - loop.time()
            _, pending = await asyncio.wait([w for _, w in waits], timeout=max(left, 0))
            if pending:
                busy = [p for p, w in waits if w in pending]
                raise UpgradeError(
                    f"{len(busy)} process(es) did not finish the message they were handling "
                    f"within {timeout:g}s, e.g. {_words(busy[0])}; nothing was changed "
                    "(try again, or give a longer timeout)"
                )
        # 3. one step: no other process runs until the release
        order = _tree_order([p for p in held if p.pid._proc is not None])
        old_vsns = {p: getattr(p.actor._upgrade_class(), "vsn", None)  # type: ignore[union-attr]
                    for p in order}
        patch = apply(staged)
        undos: list[Callable[[], None]] = []
        for proc in order:
            own = proc.actor._upgrade_class() if proc.actor is not None else None
            try:
                undo = proc.own_context().run(
                    proc.actor._upgrade,  # type: ignore[union-attr]
                    old_vsns[proc], explicit.get(proc, extra),
                )
            except (Exception, ProcessExit) as exc:
                for step in reversed(undos):
                    step()
                patch.undo()
                raise UpgradeError(
                    f"code_change of {_words(proc)} ({getattr(own, '__qualname__', own)}) "
                    f"raised {type(exc).__name__}: {exc}; nothing was changed: every process "
                    "is back on its old code and state"
                ) from exc
            if undo is not None:
                undos.append(undo)
        _remember(names)
        return UpgradeReport(
            modules=names,
            classes=sorted(f"{c.__module__}.{c.__qualname__}" for c in patch.classes),
            functions=patch.functions, processes=len(order),
            held_for=time.monotonic() - first_held if first_held else 0.0,
        )
    finally:
        for proc in held:  # 4.
            release(proc)


def _concerned(runtime: Runtime, modules: set[str], explicit: Mapping[Process, Any]
               ) -> list[Process]:
    """The live actors whose code comes from ``modules``, and those named in ``change``."""
    found = []
    for proc in list(runtime._procs.values()):
        actor = proc.actor
        if actor is None:
            continue
        if proc in explicit:
            found.append(proc)
            continue
        try:
            cls = actor._upgrade_class()
        except AttributeError:  # an actor that has not finished starting
            continue
        if any(c.__module__ in modules for c in cls.__mro__):
            found.append(proc)
    return found


def _tree_order(procs: list[Process]) -> list[Process]:
    """Parents before children (depth in the tree of parents), then by start order."""
    depth: dict[Process, int] = {}

    def depth_of(proc: Process) -> int:
        known = depth.get(proc)
        if known is None:
            parent = proc.parent._proc if proc.parent is not None else None
            known = depth[proc] = 0 if parent is None or parent is proc else depth_of(parent) + 1
        return known

    return sorted(procs, key=lambda p: (depth_of(p), p.pid.id))


def _process_of(runtime: Runtime, who: Any) -> Process:
    proc = who._proc if isinstance(who, Pid) else runtime._names.get(who)
    if proc is None or proc.actor is None:
        raise UpgradeError(f"no live process {who!r} to change (a registered name or a pid "
                           "of an actor on this node)")
    return proc


def _words(proc: Process) -> str:
    return f"{proc.pid!r}" + (f" ({proc.name})" if proc.name else "")


def load_plan(name: str) -> Upgrade:
    """The ``upgrade`` an upgrade module defines, read fresh from disk."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise UpgradeError(f"no upgrade module {name!r} on the path")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UpgradeError(f"upgrade module {name!r} failed to load: "
                           f"{type(exc).__name__}: {exc}") from exc
    found = getattr(module, "upgrade", None)
    if not isinstance(found, Upgrade):
        raise UpgradeError(f"upgrade module {name!r} defines no `upgrade = Upgrade(...)`")
    return found


# -- what changed on disk ------------------------------------------------------------------

_BASELINE: dict[str, str] = {}  # module name -> digest of the source it runs


def watch_from(root: str) -> None:
    """Note the source of every loaded module under ``root`` as what runs now."""
    for name in module_names_under(root):
        digest = _digest(sys.modules[name])
        if digest is not None:
            _BASELINE.setdefault(name, digest)


def changed_modules(root: str) -> list[str]:
    """The loaded modules under ``root`` whose source on disk differs from what runs (as
    noted by ``watch_from`` and each upgrade), in import order."""
    changed = []
    for name in module_names_under(root):
        digest = _digest(sys.modules[name])
        if digest is not None and name in _BASELINE and _BASELINE[name] != digest:
            changed.append(name)
        elif digest is not None:
            _BASELINE.setdefault(name, digest)
    return changed


def module_names_under(root: str) -> list[str]:
    base = os.path.realpath(root) + os.sep
    found = []
    for name, module in list(sys.modules.items()):
        origin = origin_of(module)
        if (origin is not None and os.path.realpath(origin).startswith(base)
                and "site-packages" not in origin):
            found.append(name)
    return found


def _remember(names: list[str]) -> None:
    for name in names:
        digest = _digest(sys.modules[name])
        if digest is not None:
            _BASELINE[name] = digest


def _digest(module: Any) -> str | None:
    origin = origin_of(module)
    if origin is None:
        return None
    try:
        with open(origin, "rb") as file:
            return hashlib.sha1(file.read(), usedforsecurity=False).hexdigest()
    except OSError:
        return None

