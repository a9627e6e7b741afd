"""Supervisor: starts children in order, restarts them by strategy, stops them in reverse.

How it works. ``Supervisor`` is the user-facing side: a class whose ``init(arg)`` returns
``Supervisor.init(children, strategy=...)``, plus the client functions. The process is a
hidden GenServer, ``_SupervisorServer``, that traps exits, keeps its children in start order,
and reacts to each ``Exit`` from a child by the rules of ``strategy.py`` (pure). A child is
terminated by sending it ``"shutdown"`` and waiting for it with ``wait_exit`` (so a child
that unlinked itself can still be stopped), killing it when its shutdown time runs out.
A restart that fails is retried through a message to itself, so the supervisor keeps
answering calls meanwhile; every attempt counts against the restart intensity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from beamish._errors import (
    ProcessExit,
    StartError,
    StartIgnored,
    SupervisorError,
)
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply, Stop
from beamish._otp.supervisor.child_spec import (
    ChildSpec,
    ChildSpecOptions,
    child_name,
    to_child_spec,
)
from beamish._otp.supervisor.strategy import STRATEGIES, Intensity, affected, should_restart
from beamish._runtime.api import exit, monotonic, send, trap_exit, wait_exit
from beamish._runtime.api import self as _self
from beamish._runtime.events import event
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Crash, Exit, is_clean_exit
from beamish._runtime.pid import Pid
from beamish._runtime.request import ReplyTo

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "Supervisor",
    "SupervisorFlags",
    "gives_up",
    "start_child_process",
    "terminate_child_process",
]

_log = logging.getLogger("beamish.supervisor")
CHILD_RESTART = event("beamish", "supervisor", "restart")
GIVE_UP = event("beamish", "supervisor", "give_up")
RESTARTING = "restarting"


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One entry of ``which_children``: ``pid`` is a Pid, ``"restarting"`` or None."""

    id: Any
    pid: Pid | str | None
    type: str
    modules: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children``: specs, running children, and specs by type."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True)
class SupervisorFlags:
    """What a supervisor's ``init`` returns (build it with ``Supervisor.init``)."""

    children: tuple[ChildSpec, ...]
    strategy: str = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0


def _check_flags(strategy: Any, max_restarts: Any, max_seconds: Any) -> None:
    if strategy not in STRATEGIES:
        raise SupervisorError(
            ("supervisor_data", ("invalid_strategy", strategy)),
            f"invalid supervisor strategy {strategy!r}; use one of {', '.join(STRATEGIES)}",
        )
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise SupervisorError(
            ("supervisor_data", ("invalid_intensity", max_restarts)),
            f"max_restarts must be an int >= 0, got {max_restarts!r}",
        )
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float) or (
        max_seconds <= 0
    ):
        raise SupervisorError(
            ("supervisor_data", ("invalid_period", max_seconds)),
            f"max_seconds must be a number > 0, got {max_seconds!r}",
        )


def _supervisor_init(
    children: Sequence[Any], *, strategy: str = "one_for_one", max_restarts: int = 3,
    max_seconds: float = 5.0,
) -> SupervisorFlags:
    """Build what a supervisor's ``init`` returns, from child forms and strategy options."""
    _check_flags(strategy, max_restarts, max_seconds)
    specs: list[ChildSpec] = []
    seen: set[Any] = set()
    for child in children:
        try:
            spec = to_child_spec(child)
        except SupervisorError as bad:  # OTP's {start_spec, Reason}
            raise SupervisorError(("start_spec", bad.reason), str(bad)) from None
        if spec.id in seen:
            raise SupervisorError(
                ("start_spec", ("duplicate_child_name", spec.id)),
                f"two children share the id {child_name(spec.id)}; give each a distinct id "
                "with Supervisor.child_spec_of(child, id=...)",
            )
        seen.add(spec.id)
        specs.append(spec)
    return SupervisorFlags(tuple(specs), strategy, max_restarts, max_seconds)


# -- starting and stopping one child (shared with DynamicSupervisor) ---------------------------


async def start_child_process(spec: ChildSpec, extra: tuple[Any, ...] = ()) -> Any:
    """Run a spec's start function; returns ``pid``, ``(pid, info)`` or None (ignored).

    Raises StartError with the failure reason (a Crash if the start function raised).
    """
    fn, args = spec.start
    try:
        result = await fn(*extra, *args)
    except StartIgnored:
        return None
    except StartError:
        raise
    except ProcessExit as failure:
        raise StartError(failure.reason) from None
    except Exception as exc:
        raise StartError(Crash(exc), f"starting {child_name(spec.id)} raised {exc!r}") from exc
    if result is None or type(result) is Pid:
        return result
    if type(result) is tuple and len(result) == 2 and type(result[0]) is Pid:
        return result
    raise StartError(
        ("bad_start_return", result),
        f"the start function of {child_name(spec.id)} returned {result!r}; it must return a "
        "Pid, "
        "(pid, info), or raise StartError / StartIgnored",
    )


async def terminate_child_process(pid: Pid, shutdown: float | str) -> Any:
    """Stop a child by its shutdown rule; returns its exit reason."""
    if shutdown == "brutal_kill":
        exited = wait_exit(pid)
        exit(pid, "kill")
        return await exited
    exited = wait_exit(pid, timeout=None if shutdown == "infinity" else float(shutdown))
    exit(pid, "shutdown")
    try:
        return await exited
    except TimeoutError:
        exited = wait_exit(pid)
        exit(pid, "kill")
        return await exited


# -- the user-facing side ----------------------------------------------------------------------


class Supervisor(ChildSpecOptions):
    """Starts children, restarts them when they fail, and stops them in order.

    With a list of children::

        sup = await Supervisor.start_link([Cache, (Worker, 5)], strategy="one_for_one")

    Or as a module, like ``use Supervisor``::

        class App(Supervisor):
            def init(self, arg):
                return Supervisor.init([Cache, (Worker, arg)], strategy="rest_for_one")

        sup = await App.start_link(5, name="app")

    Strategies: ``"one_for_one"`` restarts only the failed child; ``"one_for_all"``
    terminates the others (in reverse order) and restarts all; ``"rest_for_one"`` restarts
    the failed child and those started after it. More than ``max_restarts`` restarts within
    ``max_seconds`` (default 3 in 5 s) and the supervisor stops its children and exits with
    ``"shutdown"``. Children start in order (``start_link`` returns once all are up) and
    stop in reverse; a child that fails to start rolls back the ones already started.

    Options for the supervisor's own child spec go on the class line:
    ``class App(Supervisor, restart="transient")``.
    """

    # ``Supervisor.init(children, ...)`` builds the flags; subclasses override ``init(arg)``.
    init: ClassVar[Callable[..., SupervisorFlags]] = staticmethod(_supervisor_init)

    @classmethod
    async def start_link(
        cls, children_or_arg: Any = None, *, name: Any = None, **flags: Any
    ) -> Pid:
        """Start a supervisor linked to the caller; returns once every child is up.

        On ``Supervisor`` itself the first argument is the list of children and ``flags``
        are ``strategy``, ``max_restarts`` and ``max_seconds``; on a subclass it is the
        argument given to ``init``. Raises ``StartError`` if a child fails to start, with
        reason ``("shutdown", ("failed_to_start_child", id, reason))``.
        """
        return await _SupervisorServer.start_link(
            _init_arg(cls, children_or_arg, flags), name=name, timeout=None
        )

    @classmethod
    async def start(cls, children_or_arg: Any = None, *, name: Any = None, **flags: Any) -> Pid:
        """Like ``start_link``, without the link to the caller."""
        return await _SupervisorServer.start(
            _init_arg(cls, children_or_arg, flags), name=name, timeout=None
        )

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """A supervisor is a child of type ``"supervisor"`` (shutdown ``"infinity"``)."""
        spec = ChildSpec(
            id=cls, start=(cls.start_link, (arg,)), type="supervisor", modules=(cls,)
        )
        return cls.with_defaults(spec)

    # -- client functions (they work on any supervisor, by pid or name) -----------------

    @staticmethod
    def child_spec_of(child: Any, **overrides: Any) -> ChildSpec:
        """The ChildSpec of any child form, with overrides (unknown keys are refused)."""
        spec = to_child_spec(child)
        return spec.replace(**overrides) if overrides else spec

    @staticmethod
    async def start_child(sup: Any, child: Any) -> Any:
        """Add and start a child; returns its pid (or ``(pid, info)``).

        Raises ``SupervisorError`` (``("already_started", pid)``, ``"already_present"``) or
        ``StartError`` if it fails to start (then no spec is left behind).
        """
        return _result(await GenServer.call(sup, ("start_child", to_child_spec(child)), None))

    @staticmethod
    async def terminate_child(sup: Any, child_id: Any) -> None:
        """Stop a child by id; its spec stays (a temporary child's is removed)."""
        _result(await GenServer.call(sup, ("terminate_child", child_id), None))

    @staticmethod
    async def restart_child(sup: Any, child_id: Any) -> Any:
        """Start again a child whose spec is kept but is not running; returns its pid."""
        return _result(await GenServer.call(sup, ("restart_child", child_id), None))

    @staticmethod
    async def delete_child(sup: Any, child_id: Any) -> None:
        """Remove the spec of a child that is not running."""
        _result(await GenServer.call(sup, ("delete_child", child_id), None))

    @staticmethod
    async def which_children(sup: Any) -> list[ChildInfo]:
        """One ``ChildInfo`` per child, most recently added first."""
        children: list[ChildInfo] = await GenServer.call(sup, ("which_children",), None)
        return children

    @staticmethod
    async def count_children(sup: Any) -> ChildCounts:
        counts: ChildCounts = await GenServer.call(sup, ("count_children",), None)
        return counts

    @staticmethod
    async def get_childspec(sup: Any, child_id: Any) -> ChildSpec:
        spec: ChildSpec = _result(await GenServer.call(sup, ("get_childspec", child_id), None))
        return spec

    @staticmethod
    async def stop(sup: Any, reason: Any = "normal", timeout: float | None = None) -> None:
        """Stop the supervisor: children stop in reverse order first."""
        await GenServer.stop(sup, reason, timeout)


def _init_arg(cls: type[Supervisor], first: Any, flags: dict[str, Any]) -> tuple[Any, ...]:
    if cls is Supervisor:
        if first is None or isinstance(first, str | bytes) or not hasattr(first, "__iter__"):
            raise TypeError(
                "Supervisor.start_link(children, strategy=...) takes a list of children; to "
                "start a supervisor module, call start_link on your Supervisor subclass"
            )
        return ("flags", _supervisor_init(list(first), **flags))
    if flags:
        raise TypeError(
            f"{cls.__qualname__}.start_link() got {', '.join(flags)}: a supervisor module "
            "sets its strategy in init(), with Supervisor.init(children, strategy=...)"
        )
    return ("module", cls, first)


@mark_shared
class _Error:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _result(value: Any) -> Any:
    if type(value) is _Error:
        raise value.error
    return value


@mark_shared
class _Retry:
    __slots__ = ("child_id",)

    def __init__(self, child_id: Any) -> None:
        self.child_id = child_id


class _Child:
    __slots__ = ("pid", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.pid: Pid | str | None = None


# -- the process ----------------------------------------------------------------------------


class _SupervisorServer(GenServer):
    """The supervisor process (hidden): a GenServer that traps exits."""

    display_name = "Supervisor"

    __slots__ = ("by_pid", "children", "intensity", "label", "strategy")

    async def init(self, arg: tuple[Any, ...]) -> Any:
        trap_exit(True)
        if arg[0] == "module":
            module_cls, init_arg = arg[1], arg[2]
            self.label = module_cls.__qualname__
            module = module_cls()
            try:
                result = module.init(init_arg)
            except SupervisorError as bad:
                return Stop(bad.reason)
            if type(result).__name__ == "Ignore" or result == "ignore":
                return result
            if not isinstance(result, SupervisorFlags):
                return Stop(("bad_return", (module_cls, "init", result)))
            flags = result
        else:
            self.label = "Supervisor"
            flags = arg[1]
        self.strategy = flags.strategy
        self.intensity = Intensity(flags.max_restarts, flags.max_seconds)
        self.children: dict[Any, _Child] = {}
        self.by_pid: dict[Pid, Any] = {}
        for spec in flags.children:
            child = _Child(spec)
            self.children[spec.id] = child
            try:
                await self._start(child)
            except StartError as failure:
                _log.error(
                    "%s %s: child %s failed to start: %r", self.label, self._who(),
                    child_name(spec.id), failure.reason,
                )
                await self._terminate_all()
                return Stop(("shutdown", ("failed_to_start_child", spec.id, failure.reason)))
            if child.pid is None and spec.restart == "temporary":
                del self.children[spec.id]  # ignored, and never restarted: nothing to keep
        return Ok(None)

    async def _start(self, child: _Child) -> Any:
        result = await start_child_process(child.spec)
        pid = result[0] if type(result) is tuple else result
        child.pid = pid
        if pid is not None:
            self.by_pid[pid] = child.spec.id
        return result

    async def _terminate(self, child: _Child) -> None:
        pid = child.pid
        if type(pid) is Pid:
            self.by_pid.pop(pid, None)
            reason = await terminate_child_process(pid, child.spec.shutdown)  # type: ignore[arg-type]
            if not is_clean_exit(reason) and reason != "killed":
                _log.error(
                    "%s %s: child %s shut down with reason %r", self.label, self._who(),
                    child_name(child.spec.id), reason,
                )
        child.pid = None

    async def _terminate_all(self, children: Sequence[_Child] | None = None) -> None:
        for child in reversed(children if children is not None else list(self.children.values())):
            await self._terminate(child)

    def terminate(self, reason: Any, state: Any) -> Any:
        return self._terminate_all()

    # -- restarts ---------------------------------------------------------------------------

    def handle_info(self, message: Any, state: Any) -> Any:
        if type(message) is Exit:
            child_id = self.by_pid.pop(message.pid, None) if message.pid is not None else None
            if child_id is None:
                return _noreply(state)  # not (or no longer) a child: ignore
            return self._child_exited(child_id, message.reason, state)
        if type(message) is _Retry:
            child = self.children.get(message.child_id)
            if child is None or child.pid != RESTARTING:
                return _noreply(state)
            return self._restart(child.spec.id, "retry", state)
        return super().handle_info(message, state)

    def _child_exited(self, child_id: Any, reason: Any, state: Any) -> Any:
        child = self.children[child_id]
        spec = child.spec
        restart = should_restart(spec.restart, reason)
        # the restart is counted before the report, so the report can say it gives up
        exceeded = restart and not self.intensity.add(monotonic())
        if not is_clean_exit(reason):
            _log.error(
                "%s %s: child %s (%r) exited with reason %s; %s", self.label, self._who(),
                child_name(child_id), child.pid, _short(reason),
                gives_up(self.intensity) if exceeded else
                "restarting it" if restart else f"not restarting it ({spec.restart})",
            )
        elif exceeded:
            _log.error(
                "%s %s: child %s (%r) exited with reason %s; %s", self.label, self._who(),
                child_name(child_id), child.pid, _short(reason), gives_up(self.intensity),
            )
        if (exceeded and GIVE_UP.handlers) or (restart and CHILD_RESTART.handlers):
            told(self, child_id, child.pid, reason, exceeded)
        child.pid = None
        if exceeded:
            return Stop("shutdown", state)
        if not restart:
            if spec.restart == "temporary":
                del self.children[child_id]
            return _noreply(state)
        return self._restart(child_id, reason, state, counted=True)

    async def _restart(
        self, child_id: Any, reason: Any, state: Any, *, counted: bool = False
    ) -> Any:
        if not counted and not self.intensity.add(monotonic()):
            _log.error(
                "%s %s: child %s could not be restarted; %s", self.label, self._who(),
                child_name(child_id), gives_up(self.intensity),
            )
            return Stop("shutdown", state)
        order = list(self.children)
        if child_id not in order:
            return _noreply(state)
        targets = affected(self.strategy, order, child_id)
        if self.strategy != "one_for_one":
            # stop the others in reverse start order before starting any again
            await self._terminate_all([
                self.children[i] for i in targets
                if i != child_id and type(self.children[i].pid) is Pid
            ])
        started: list[_Child] = []
        for target in targets:
            child = self.children.get(target)
            if child is None:
                continue
            if child.spec.restart == "temporary" and target != child_id:
                del self.children[target]  # a temporary child is not brought back
                continue
            try:
                await self._start(child)
                started.append(child)
            except StartError as failure:
                _log.error(
                    "%s %s: child %s failed to restart: %r; trying again", self.label,
                    self._who(), child_name(target), failure.reason,
                )
                if self.strategy == "one_for_all":
                    await self._terminate_all(started)
                    for c in self.children.values():
                        if c.pid is None:
                            c.pid = RESTARTING
                child.pid = RESTARTING
                for later in targets[targets.index(target) + 1:]:
                    if later in self.children and self.children[later].pid is None:
                        self.children[later].pid = RESTARTING
                send(_self(), _Retry(target))
                return _noreply(state)
        return _noreply(state)

    # -- calls ------------------------------------------------------------------------------

    async def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        match request:
            case ("which_children",):
                return Reply([
                    ChildInfo(c.spec.id, c.pid, c.spec.type, c.spec.modules)
                    for c in reversed(self.children.values())
                ], state)
            case ("count_children",):
                specs = list(self.children.values())
                sups = sum(1 for c in specs if c.spec.type == "supervisor")
                active = sum(1 for c in specs if type(c.pid) is Pid)
                return Reply(ChildCounts(len(specs), active, sups, len(specs) - sups), state)
            case ("start_child", ChildSpec() as spec):
                return Reply(await self._start_new(spec), state)
            case ("terminate_child", child_id):
                return Reply(await self._terminate_child(child_id), state)
            case ("restart_child", child_id):
                return Reply(await self._restart_child(child_id), state)
            case ("delete_child", child_id):
                return Reply(self._delete_child(child_id), state)
            case ("get_childspec", child_id):
                child = self.children.get(child_id)
                return Reply(child.spec if child else _not_found(child_id), state)
        _log.error("%s %s got an unknown call %r", self.label, self._who(), request)
        return Reply(_Error(SupervisorError(
            ("unknown_call", request), f"a supervisor does not understand the call {request!r}"
        )), state)

    async def _start_new(self, spec: ChildSpec) -> Any:
        existing = self.children.get(spec.id)
        if existing is not None:
            if type(existing.pid) is Pid:
                return _Error(SupervisorError(
                    ("already_started", existing.pid),
                    f"a child with id {child_name(spec.id)} is already running as "
                    f"{existing.pid!r}",
                ))
            return _Error(SupervisorError(
                "already_present",
                f"a child with id {child_name(spec.id)} is already present (not running); use "
                "restart_child or delete_child",
            ))
        child = _Child(spec)
        try:
            result = await self._start(child)
        except StartError as failure:
            return _Error(failure)
        if result is not None or spec.restart != "temporary":  # OTP drops an ignored one
            self.children[spec.id] = child
        return result

    async def _terminate_child(self, child_id: Any) -> Any:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        if child.pid == RESTARTING:
            child.pid = None
        else:
            await self._terminate(child)
        if child.spec.restart == "temporary":
            del self.children[child_id]
        return None

    async def _restart_child(self, child_id: Any) -> Any:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        if type(child.pid) is Pid:
            return _Error(SupervisorError("running", f"child {child_name(child_id)} is running"))
        if child.pid == RESTARTING:
            return _Error(SupervisorError(
                "restarting", f"child {child_name(child_id)} is restarting"
            ))
        try:
            return await self._start(child)
        except StartError as failure:
            return _Error(failure)

    def _delete_child(self, child_id: Any) -> Any:
        child = self.children.get(child_id)
        if child is None:
            return _not_found(child_id)
        if type(child.pid) is Pid:
            return _Error(SupervisorError("running", f"child {child_name(child_id)} is running"))
        if child.pid == RESTARTING:
            return _Error(SupervisorError(
                "restarting", f"child {child_name(child_id)} is restarting"
            ))
        del self.children[child_id]
        return None


def _noreply(state: Any) -> NoReply:
    return NoReply(state)


def _not_found(child_id: Any) -> _Error:
    return _Error(SupervisorError("not_found", f"no child with id {child_name(child_id)}"))


def told(sup: Any, child_id: Any, pid: Any, reason: Any, exceeded: bool) -> None:
    """Emit a supervisor's restart of a child, or its giving up (``beamish.supervisor.*``)."""
    metadata = {
        "supervisor": sup.pid, "name": sup._name, "child_id": child_id, "child_pid": pid,
        "reason": reason,
    }
    if exceeded:
        metadata["max_restarts"] = sup.intensity.max_restarts
        metadata["max_seconds"] = sup.intensity.max_seconds
        GIVE_UP.emit({"restarts": sup.intensity.max_restarts + 1}, metadata)
    else:
        CHILD_RESTART.emit({"count": 1}, metadata)


def gives_up(intensity: Intensity) -> str:
    """How a supervisor says it gives up: OTP's reached_max_restart_intensity, in figures."""
    n = len(intensity)
    return (
        f"shutting down: restart intensity exceeded ({n} restart{'' if n == 1 else 's'} in "
        f"{intensity.max_seconds:g} s; at most max_restarts={intensity.max_restarts} within "
        f"max_seconds={intensity.max_seconds:g} are allowed)"
    )


def _short(value: Any, limit: int = 500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"



