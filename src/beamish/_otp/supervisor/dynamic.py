"""DynamicSupervisor: children started on demand, all alike, restarted one for one.

How it works. Like ``Supervisor``, the process is a hidden GenServer that traps exits; but its
children have no ids and no order: they are kept by pid, started with ``start_child`` at any
time, and stopped all at once, concurrently, when the supervisor stops. A child that is
being restarted keeps its old pid as its key (shown as ``"restarting"``) and still counts
against ``max_children``. ``extra_arguments`` are prepended to every child's start
arguments, at start and at each restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from beamish._errors import StartError, SupervisorError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply, Stop
from beamish._otp.supervisor.child_spec import (
    ChildSpec,
    ChildSpecOptions,
    child_name,
    to_child_spec,
)
from beamish._otp.supervisor.strategy import Intensity, should_restart
from beamish._otp.supervisor.supervisor import (
    CHILD_RESTART,
    GIVE_UP,
    ChildCounts,
    ChildInfo,
    _check_flags,
    gives_up,
    start_child_process,
    terminate_child_process,
    told,
)
from beamish._runtime.api import monotonic, send, trap_exit
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Exit, is_clean_exit
from beamish._runtime.pid import Pid
from beamish._runtime.request import ReplyTo

__all__ = ["DynamicFlags", "DynamicSupervisor"]

_log = logging.getLogger("beamish.supervisor")


@dataclass(frozen=True)
class DynamicFlags:
    """What a dynamic supervisor's ``init`` returns (build it with ``DynamicSupervisor.init``)."""

    strategy: str = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    max_children: int | str = "infinity"
    extra_arguments: tuple[Any, ...] = ()


def _dynamic_init(
    *, strategy: str = "one_for_one", max_restarts: int = 3, max_seconds: float = 5.0,
    max_children: int | str = "infinity", extra_arguments: Sequence[Any] = (),
) -> DynamicFlags:
    """Build the flags a dynamic supervisor runs with."""
    if strategy != "one_for_one":
        raise SupervisorError(
            ("supervisor_data", ("invalid_strategy", strategy)),
            f"a DynamicSupervisor only supports strategy='one_for_one', got {strategy!r}",
        )
    _check_flags(strategy, max_restarts, max_seconds)
    if max_children != "infinity" and (
        isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 0
    ):
        raise SupervisorError(
            ("supervisor_data", ("invalid_max_children", max_children)),
            f"max_children must be an int >= 0 or 'infinity', got {max_children!r}",
        )
    if isinstance(extra_arguments, str | bytes) or not isinstance(extra_arguments, tuple | list):
        raise SupervisorError(
            ("supervisor_data", ("invalid_extra_arguments", extra_arguments)),
            f"extra_arguments must be a list or tuple, got {extra_arguments!r}",
        )
    return DynamicFlags(strategy, max_restarts, max_seconds, max_children, tuple(extra_arguments))


class DynamicSupervisor(ChildSpecOptions):
    """A supervisor whose children are started on demand, one for one.

    ::

        sup = await DynamicSupervisor.start_link(name="rooms", max_children=10_000)
        room = await DynamicSupervisor.start_child("rooms", (Room, "lobby"))

    Or as a module: ``def init(self, arg): return DynamicSupervisor.init(max_children=...)``.
    Options: ``max_restarts``/``max_seconds`` (restart intensity, default 3 in 5 s),
    ``max_children`` (beyond it ``start_child`` raises ``SupervisorError("max_children")``),
    ``extra_arguments`` (prepended to each child's start arguments). Stopping it stops all
    children concurrently.
    """

    init: ClassVar[Callable[..., DynamicFlags]] = staticmethod(_dynamic_init)

    @classmethod
    async def start_link(cls, arg: Any = None, *, name: Any = None, **flags: Any) -> Pid:
        """Start a dynamic supervisor linked to the caller (with no children)."""
        return await _DynamicServer.start_link(_init_arg(cls, arg, flags), name=name)

    @classmethod
    async def start(cls, arg: Any = None, *, name: Any = None, **flags: Any) -> Pid:
        return await _DynamicServer.start(_init_arg(cls, arg, flags), name=name)

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """As a child: a subclass with its ``init`` argument, or ``DynamicSupervisor`` itself
        with its options, as Elixir's ``{DynamicSupervisor, name: ..., max_children: ...}``::

            (DynamicSupervisor, {"name": "rooms", "max_children": 10_000})
        """
        if cls is DynamicSupervisor and isinstance(arg, Mapping):
            options = dict(arg)
            name = options.get("name")
            spec = ChildSpec(
                id=cls if name is None else ("DynamicSupervisor", name),
                start=(_start_with_options, (options,)), type="supervisor", modules=(cls,),
            )
        else:
            spec = ChildSpec(
                id=cls, start=(cls.start_link, (arg,)), type="supervisor", modules=(cls,)
            )
        return cls.with_defaults(spec)

    @staticmethod
    async def start_child(sup: Any, child: Any) -> Any:
        """Start a child; returns its pid (or ``(pid, info)``, or None if it was ignored).

        The spec is checked before the supervisor is asked. Raises ``SupervisorError``
        (``"max_children"``) or ``StartError`` if the child fails to start.
        """
        spec = to_child_spec(child, whole=True)
        result = await GenServer.call(sup, ("start_child", spec), None)
        if isinstance(result, Exception):
            raise result
        return result

    @staticmethod
    async def terminate_child(sup: Any, pid: Pid) -> None:
        """Stop a child by pid; raises ``SupervisorError("not_found")`` if it is not one."""
        result = await GenServer.call(sup, ("terminate_child", pid), None)
        if isinstance(result, Exception):
            raise result

    @staticmethod
    async def which_children(sup: Any) -> list[ChildInfo]:
        children: list[ChildInfo] = await GenServer.call(sup, ("which_children",), None)
        return children

    @staticmethod
    async def count_children(sup: Any) -> ChildCounts:
        counts: ChildCounts = await GenServer.call(sup, ("count_children",), None)
        return counts

    @staticmethod
    async def stop(sup: Any, reason: Any = "normal", timeout: float | None = None) -> None:
        await GenServer.stop(sup, reason, timeout)


async def _start_with_options(options: dict[str, Any]) -> Pid:
    options = dict(options)
    name = options.pop("name", None)
    return await DynamicSupervisor.start_link(name=name, **options)


def _init_arg(cls: type[DynamicSupervisor], arg: Any, flags: dict[str, Any]) -> tuple[Any, ...]:
    if cls is DynamicSupervisor:
        if arg is not None:
            raise TypeError(
                "DynamicSupervisor.start_link() takes options only (max_children=...); to "
                "pass an argument to init, subclass DynamicSupervisor"
            )
        return ("flags", _dynamic_init(**flags))
    if flags:
        raise TypeError(
            f"{cls.__qualname__}.start_link() got {', '.join(flags)}: a dynamic supervisor "
            "module sets them in init(), with DynamicSupervisor.init(...)"
        )
    return ("module", cls, arg)


@mark_shared
class _Retry:
    __slots__ = ("key",)

    def __init__(self, key: Pid) -> None:
        self.key = key


class _DynChild:
    __slots__ = ("restarting", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.restarting = False


class _DynamicServer(GenServer):
    """The dynamic supervisor process (hidden)."""

    display_name = "DynamicSupervisor"

    __slots__ = ("children", "extra", "intensity", "label", "max_children")

    def init(self, arg: tuple[Any, ...]) -> Any:
        trap_exit(True)
        if arg[0] == "module":
            module_cls = arg[1]
            self.label = module_cls.__qualname__
            try:
                flags = module_cls().init(arg[2])
            except SupervisorError as bad:
                return Stop(bad.reason)
            if type(flags).__name__ == "Ignore" or flags == "ignore":
                return flags
            if not isinstance(flags, DynamicFlags):
                return Stop(("bad_return", (module_cls, "init", flags)))
        else:
            self.label = "DynamicSupervisor"
            flags = arg[1]
        self.intensity = Intensity(flags.max_restarts, flags.max_seconds)
        self.max_children = flags.max_children
        self.extra = flags.extra_arguments
        self.children: dict[Pid, _DynChild] = {}
        return Ok(None)

    async def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        match request:
            case ("start_child", ChildSpec() as spec):
                if self.max_children != "infinity" and len(self.children) >= self.max_children:
                    return Reply(SupervisorError(
                        "max_children",
                        f"{self.label} {self._who()} has reached max_children "
                        f"({self.max_children})",
                    ), state)
                try:
                    result = await start_child_process(spec, self.extra)
                except StartError as failure:
                    return Reply(failure, state)
                if result is not None:
                    pid = result[0] if type(result) is tuple else result
                    self.children[pid] = _DynChild(spec)
                return Reply(result, state)
            case ("terminate_child", Pid() as pid):
                child = self.children.pop(pid, None)
                if child is None:
                    return Reply(SupervisorError(
                        "not_found", f"{pid!r} is not a child of {self.label} {self._who()}"
                    ), state)
                if not child.restarting:
                    await terminate_child_process(pid, child.spec.shutdown)  # type: ignore[arg-type]
                return Reply(None, state)
            case ("which_children",):
                return Reply([
                    ChildInfo(None, "restarting" if c.restarting else pid, c.spec.type,
                              c.spec.modules)
                    for pid, c in self.children.items()
                ], state)
            case ("count_children",):
                kids = list(self.children.values())
                sups = sum(1 for c in kids if c.spec.type == "supervisor")
                active = sum(1 for c in kids if not c.restarting)
                return Reply(ChildCounts(len(kids), active, sups, len(kids) - sups), state)
        return Reply(SupervisorError(
            ("unknown_call", request), f"a dynamic supervisor does not understand {request!r}"
        ), state)

    def handle_info(self, message: Any, state: Any) -> Any:
        if type(message) is Exit:
            pid = message.pid
            child = self.children.get(pid) if pid is not None else None
            if pid is None or child is None or child.restarting:
                return NoReply(state)
            reason = message.reason
            restart = should_restart(child.spec.restart, reason)
            # counted before the report, so the report can say it gives up
            exceeded = restart and not self.intensity.add(monotonic())
            if exceeded or not is_clean_exit(reason):
                _log.error(
                    "%s %s: child %r (%s) exited with reason %r; %s", self.label, self._who(),
                    pid, child_name(child.spec.id), reason,
                    gives_up(self.intensity) if exceeded else
                    "restarting it" if restart else f"not restarting it ({child.spec.restart})",
                )
            if (exceeded and GIVE_UP.handlers) or (restart and CHILD_RESTART.handlers):
                told(self, child.spec.id, pid, reason, exceeded)
            if exceeded:
                return Stop("shutdown", state)
            if not restart:
                del self.children[pid]
                return NoReply(state)
            return self._restart(pid, state, counted=True)
        if type(message) is _Retry:
            child = self.children.get(message.key)
            if child is None or not child.restarting:
                return NoReply(state)
            return self._restart(message.key, state)
        return super().handle_info(message, state)

    async def _restart(self, key: Pid, state: Any, *, counted: bool = False) -> Any:
        if not counted and not self.intensity.add(monotonic()):
            _log.error(
                "%s %s: a child (%s) could not be restarted; %s", self.label, self._who(),
                child_name(self.children[key].spec.id), gives_up(self.intensity),
            )
            return Stop("shutdown", state)
        child = self.children.pop(key)
        try:
            result = await start_child_process(child.spec, self.extra)
        except StartError as failure:
            _log.error(
                "%s %s: a child (%s) failed to restart: %r; trying again", self.label,
                self._who(), child_name(child.spec.id), failure.reason,
            )
            child.restarting = True
            self.children[key] = child
            send(_self(), _Retry(key))
            return NoReply(state)
        child.restarting = False
        if result is not None:
            pid = result[0] if type(result) is tuple else result
            self.children[pid] = child
        return NoReply(state)

    async def terminate(self, reason: Any, state: Any) -> None:
        running = [
            terminate_child_process(pid, c.spec.shutdown)  # type: ignore[arg-type]
            for pid, c in self.children.items() if not c.restarting
        ]
        self.children.clear()
        if running:
            await asyncio.gather(*running)
