"""Child specifications: how a supervisor starts, restarts and stops a child.

Anything startable answers ``child_spec(arg)``. A supervisor accepts, for each child:

- a class with ``child_spec`` (``Worker``): ``Worker.child_spec(None)``;
- a ``(class, arg)`` pair (``(Worker, 5)``): ``Worker.child_spec(5)``;
- a ``ChildSpec``;
- a mapping with ChildSpec's fields (``{"id": ..., "start": (fn, args)}``), as in Elixir.

``Supervisor.child_spec(child, **overrides)`` applies overrides; unknown keys are refused.

A spec that a supervisor could not use is refused with ``SupervisorError`` and OTP's
reason, checked in OTP's order (``supervisor:check_childspec``): ``"missing_id"``,
``"missing_start"``, ``("invalid_mfa", start)``, ``("invalid_restart_type", r)``,
``("invalid_child_type", t)``, ``("invalid_shutdown", s)``, ``("invalid_modules", m)``;
anything that is no child form at all is ``("invalid_child_spec", child)``. A
``DynamicSupervisor`` refuses a mapping without id or start whole, with
``("invalid_child_spec", child)``, as Elixir's does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from beamish._errors import SupervisorError
from beamish._runtime.records import register_wire_type

__all__ = [
    "ChildSpec", "ChildSpecOptions", "child_name", "child_spec_options", "to_child_spec",
    "validate",
]

RESTARTS = ("permanent", "transient", "temporary")
TYPES = ("worker", "supervisor")
FIELDS = ("id", "start", "restart", "shutdown", "type", "modules")


@dataclasses.dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start, restart and stop one child.

    - ``id``: identifies the child within its supervisor (any hashable value);
    - ``start``: ``(async_fn, args)``; ``await async_fn(*args)`` starts the child and
      returns its pid (or ``(pid, info)``), raises ``StartError`` on failure and
      ``StartIgnored`` to start nothing;
    - ``restart``: ``"permanent"`` (always restarted), ``"transient"`` (restarted only after
      an abnormal exit: not ``"normal"``, ``"shutdown"`` or ``("shutdown", x)``),
      ``"temporary"`` (never restarted);
    - ``shutdown``: seconds to wait after sending ``"shutdown"`` before killing,
      ``"brutal_kill"`` (kill at once) or ``"infinity"``; default 5 s for a worker and
      ``"infinity"`` for a supervisor;
    - ``type``: ``"worker"`` or ``"supervisor"``;
    - ``modules``: the modules or classes involved, for upgrades and introspection.
    """

    id: Any
    start: tuple[Callable[..., Any], tuple[Any, ...]]
    restart: str = "permanent"
    shutdown: float | str | None = None
    type: str = "worker"
    modules: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.shutdown is None:
            default = "infinity" if self.type == "supervisor" else 5.0
            object.__setattr__(self, "shutdown", default)

    def replace(self, **overrides: Any) -> ChildSpec:
        """A copy with ``overrides`` applied; unknown keys raise TypeError."""
        _check_keys(overrides, "ChildSpec.replace()")
        if "type" in overrides and "shutdown" not in overrides and self.shutdown in (
            5.0, "infinity"
        ):
            overrides["shutdown"] = None  # follow the new type's default
        return validate(dataclasses.replace(self, **overrides))


def child_name(child_id: Any) -> str:
    """A child id as reports and errors show it: a class (the usual id, ``Worker``) by its
    qualified name rather than ``<class 'app.Worker'>`` (one defined in a function without
    the function's ``<locals>``), anything else by its repr."""
    if isinstance(child_id, type):
        return child_id.__qualname__.rpartition("<locals>.")[2]
    return repr(child_id)


def _check_keys(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        raise TypeError(
            f"{where} got unknown child spec key(s) {', '.join(map(repr, unknown))}; the keys "
            f"are {', '.join(FIELDS)}"
        )


register_wire_type(ChildSpec, "beamish.ChildSpec")  # a child can be started on another node


class ChildSpecOptions:
    """Child spec options on the class line, like ``use GenServer, restart: :transient``::

        class Worker(GenServer, restart="transient", shutdown=10): ...

    They are checked when the class is defined and kept, merged with those a parent class
    gave, in ``child_spec_defaults``; ``with_defaults`` applies them to a spec.
    """

    __slots__ = ()

    child_spec_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        inherited = dict(getattr(cls, "child_spec_defaults", {}))
        inherited.update(child_spec_options(options, cls.__qualname__))
        cls.child_spec_defaults = inherited

    @classmethod
    def with_defaults(cls, spec: ChildSpec) -> ChildSpec:
        """``spec`` with the class-line options applied."""
        return spec.replace(**cls.child_spec_defaults) if cls.child_spec_defaults else spec


def child_spec_options(options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Validate class-line options (``class W(GenServer, restart="temporary")``)."""
    _check_keys(options, f"class {owner}")
    return dict(options)


def validate(spec: ChildSpec) -> ChildSpec:
    """Raise SupervisorError for a spec a supervisor could not use."""
    start = spec.start
    if not (
        type(start) is tuple and len(start) == 2 and callable(start[0])
        and type(start[1]) in (tuple, list)
    ):
        raise SupervisorError(
            ("invalid_mfa", start),
            f"invalid child spec for {child_name(spec.id)}: start must be (async_fn, args), "
            f"got {start!r}",
        )
    if spec.restart not in RESTARTS:
        raise SupervisorError(
            ("invalid_restart_type", spec.restart),
            f"invalid child spec for {child_name(spec.id)}: restart must be one of "
            f"{', '.join(RESTARTS)}, got {spec.restart!r}",
        )
    if spec.type not in TYPES:
        raise SupervisorError(
            ("invalid_child_type", spec.type),
            f"invalid child spec for {child_name(spec.id)}: type must be worker or supervisor, "
            f"got {spec.type!r}",
        )
    shutdown = spec.shutdown
    if not (
        shutdown in ("brutal_kill", "infinity")
        or (isinstance(shutdown, int | float) and not isinstance(shutdown, bool)
            and shutdown >= 0)
    ):
        raise SupervisorError(
            ("invalid_shutdown", shutdown),
            f"invalid child spec for {child_name(spec.id)}: shutdown must be seconds >= 0, "
            f"'brutal_kill' or 'infinity', got {shutdown!r}",
        )
    modules: Any = spec.modules  # a list is welcome too, as in a mapping from Elixir code
    if type(modules) is list:
        spec = dataclasses.replace(spec, modules=tuple(modules))
    if type(spec.modules) is not tuple:
        raise SupervisorError(
            ("invalid_modules", spec.modules),
            f"invalid child spec for {child_name(spec.id)}: modules must be a tuple (or list) "
            f"of the classes or modules the child runs, got {spec.modules!r}",
        )
    try:
        hash(spec.id)
    except TypeError:
        raise SupervisorError(
            ("invalid_child_id", spec.id), f"a child id must be hashable, got {spec.id!r}"
        ) from None
    return spec


def to_child_spec(child: Any, *, whole: bool = False) -> ChildSpec:
    """Turn any accepted child form into a validated ChildSpec.

    ``whole``: refuse a mapping that lacks id or start as a whole
    (``("invalid_child_spec", child)``, DynamicSupervisor's way) rather than naming the
    missing key (``"missing_id"``, ``"missing_start"``, Supervisor's way).
    """
    if isinstance(child, ChildSpec):
        return validate(child)
    if isinstance(child, Mapping):
        _check_keys(child, "a child spec mapping")
        if "id" not in child or "start" not in child:
            missing = "id" if "id" not in child else "start"
            raise SupervisorError(
                ("invalid_child_spec", dict(child)) if whole else f"missing_{missing}",
                f"a child spec mapping needs id and start; this one has no {missing}: "
                f"{dict(child)!r}. For example: {{'id': 'worker', 'start': "
                "(Worker.start_link, (arg,))}",
            )
        fields = dict(child)
        start = fields["start"]
        if type(start) is tuple and len(start) == 2 and type(start[1]) is list:
            fields["start"] = (start[0], tuple(start[1]))
        return validate(ChildSpec(**fields))
    if type(child) is tuple and len(child) == 2 and hasattr(child[0], "child_spec"):
        return _from(child[0], child[1])
    if hasattr(child, "child_spec") and isinstance(child, type):
        return _from(child, None)
    raise SupervisorError(
        ("invalid_child_spec", child),
        f"invalid child {child!r}: give a class with child_spec (Worker), a (class, arg) "
        "pair, a ChildSpec, or a mapping with id and start",
    )


def _from(owner: Any, arg: Any) -> ChildSpec:
    spec = owner.child_spec(arg)
    if not isinstance(spec, ChildSpec):
        spec = to_child_spec(spec)
    return validate(spec)
