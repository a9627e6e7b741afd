"""Application: a supervision tree with a name, settings and a place in the start order.

An application is what a node runs: a class whose ``start`` returns its root supervisor,
with settings read from the environment, dependencies started before it, and ``prep_stop``
and ``stop`` callbacks around its shutdown::

    class ShopSettings(Settings):
        port: int = 4000

    class Shop(Application):
        dependencies = (Repo,)
        settings: ShopSettings            # read from SHOP_PORT before start runs

        async def start(self, start_type, args):
            return await Supervisor.start_link(
                [Cache, (Web, self.settings.port)], strategy="one_for_one", name="shop.sup"
            )

    await ensure_all_started(Shop)        # Repo, then Shop
    ...
    await stop_all_applications()         # Shop, then Repo

The functions here are the client side of the application controller (OTP's
``application`` module); the processes that do the work are in ``application_controller.py``.
"""

from __future__ import annotations

import contextlib
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from beamish._errors import ApplicationError, CallError, StartError
from beamish._otp.application.settings import Settings
from beamish._otp.gen_server.server import GenServer
from beamish._runtime.api import whereis
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid

__all__ = [
    "CONTROLLER",
    "Application",
    "ApplicationInfo",
    "Box",
    "RestartType",
    "StartType",
    "check_start_type",
    "ensure_all_started",
    "ensure_controller",
    "name_of",
    "start_application",
    "start_order",
    "started_applications",
    "stop_all_applications",
    "stop_application",
]

StartType = Literal["normal"] | tuple[Literal["takeover"], str] | tuple[Literal["failover"], str]
RestartType = Literal["temporary", "transient", "permanent"]
RESTART_TYPES = ("temporary", "transient", "permanent")
CONTROLLER = "application_controller"


@dataclass(frozen=True, slots=True)
class ApplicationInfo:
    """One running (or starting) application, as ``started_applications`` reports it.

    ``pid`` is the application's own process: it runs ``start``, holds the root supervisor,
    runs ``prep_stop`` and ``stop``, and exits when the application stops.
    ``supervisor`` is the root supervisor (None while ``status`` is ``"starting"``).
    """

    name: str
    pid: Pid
    supervisor: Pid | None
    status: str
    start_type: Any
    restart: str


def _default_name(cls_name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls_name).lower()


class Application:
    """The user side of an application: subclass it and define ``start``.

    Class attributes:

    - ``name``: the application's name (default: the class name in snake_case,
      ``ShopApp`` -> ``"shop_app"``);
    - ``env_prefix``: the prefix of its environment variables (default: the name in upper
      case and ``_``, ``"SHOP_APP_"``);
    - ``dependencies``: Application classes that must run before it (default none);
    - ``settings: YourSettings``: an annotation naming the ``Settings`` class to read from
      the environment before ``start`` runs; ``self.settings`` holds the result.

    Callbacks (each may be ``async def``):

    - ``start(start_type, args)``: required. Start the root supervisor, linked (use
      ``start_link``), and return its pid, or ``(pid, state)``; ``state`` goes to
      ``prep_stop`` and ``stop`` (default None). Raise to fail the start.
      ``start_type`` is ``"normal"``, or ``("takeover", node)`` / ``("failover", node)``
      for the cluster's distributed applications.
    - ``prep_stop(state)``: runs before the tree stops; returns the state ``stop`` gets.
      Left out: the state passes unchanged.
    - ``stop(state)``: runs after the tree stopped, to clean up. Left out: nothing runs.

    Both also run when the root supervisor exits on its own. They must not call the
    application functions (the controller waits for them).
    """

    name: ClassVar[str] = "application"
    env_prefix: ClassVar[str] = "APPLICATION_"
    dependencies: ClassVar[tuple[type[Application], ...]] = ()
    settings: Settings

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        own = cls.__dict__
        if "name" not in own:
            cls.name = _default_name(cls.__name__)
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(f"{cls.__qualname__}.name must be a non-empty str, got {cls.name!r}")
        if "env_prefix" not in own:
            cls.env_prefix = re.sub(r"\W", "_", cls.name).upper() + "_"
        if isinstance(own.get("settings"), type):
            raise TypeError(
                f"{cls.__qualname__}: declare the settings class with an annotation, "
                f"`settings: {own['settings'].__qualname__}`, not an assignment"
            )
        deps = cls.dependencies
        if not isinstance(deps, tuple | list) or not all(
            isinstance(d, type) and issubclass(d, Application) for d in deps
        ):
            raise TypeError(
                f"{cls.__qualname__}.dependencies must be a tuple of Application classes, "
                f"got {deps!r}"
            )
        cls.dependencies = tuple(deps)

    def __init__(
        self, *, settings: Settings | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        """``settings`` replaces reading the environment; ``environ`` replaces os.environ."""
        if settings is not None:
            expected = self.settings_class()
            if not isinstance(settings, expected):
                raise TypeError(
                    f"{type(self).__qualname__} takes settings of type {expected.__qualname__}, "
                    f"got {settings!r}"
                )
            self.settings = settings
        self._environ = environ

    # -- callbacks ----------------------------------------------------------------------------

    async def start(self, start_type: StartType, args: Any) -> Pid | tuple[Pid, Any]:
        raise NotImplementedError(
            f"{type(self).__qualname__} must define `async def start(self, start_type, args)` "
            "returning its root supervisor, e.g. `return await Supervisor.start_link(children, "
            "strategy=\"one_for_one\")`"
        )

    def prep_stop(self, state: Any) -> Any:
        return state

    def stop(self, state: Any) -> Any:
        return None

    # -- settings -----------------------------------------------------------------------------

    @classmethod
    def settings_class(cls) -> type[Settings]:
        """The Settings class named by the ``settings`` annotation (``Settings`` if none)."""
        try:
            hints = typing.get_type_hints(cls)
        except Exception as exc:
            raise TypeError(
                f"cannot read the annotations of {cls.__qualname__} ({exc}); define the "
                "application and its settings class at module level"
            ) from exc
        found = hints.get("settings", Settings)
        if not (isinstance(found, type) and issubclass(found, Settings)):
            raise TypeError(
                f"{cls.__qualname__}.settings is annotated {found!r}; it must name a subclass "
                "of beamish Settings"
            )
        return found

    def load_settings(self) -> Settings:
        """The settings given at construction, or read now from the environment."""
        given = self.__dict__.get("settings")
        if given is not None:
            return given  # type: ignore[no-any-return]
        environ = self.__dict__.get("_environ")  # (a subclass __init__ may skip ours)
        loaded = self.settings_class().from_env(self.env_prefix, environ)
        self.settings = loaded
        return loaded

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} application {self.name!r}>"


# -- pure helpers ------------------------------------------------------------------------------


def check_start_type(start_type: Any) -> None:
    """Raise ApplicationError unless ``start_type`` is one of the forms OTP knows."""
    if start_type == "normal" and type(start_type) is str:
        return
    if (
        type(start_type) is tuple and len(start_type) == 2
        and start_type[0] in ("takeover", "failover") and type(start_type[1]) is str
    ):
        return
    raise ApplicationError(
        ("invalid_start_type", start_type),
        f"invalid start type {start_type!r}: use \"normal\", (\"takeover\", node) or "
        "(\"failover\", node)",
    )


def check_restart(restart: Any) -> None:
    if restart not in RESTART_TYPES:
        raise ApplicationError(
            ("invalid_restart_type", restart),
            f"invalid restart type {restart!r}: use one of {', '.join(RESTART_TYPES)}",
        )


def name_of(app: Any) -> str:
    """The name of an application given as a class, an instance or a name."""
    if isinstance(app, str) and app:
        return app
    if isinstance(app, Application) or (isinstance(app, type) and issubclass(app, Application)):
        return app.name
    raise ApplicationError(
        ("invalid_application", app),
        f"expected an Application subclass, an instance of one, or an application name, "
        f"got {app!r}",
    )


def _instance(app: Any) -> Application:
    if isinstance(app, Application):
        return app
    if isinstance(app, type) and issubclass(app, Application) and app is not Application:
        return app()
    raise ApplicationError(
        ("invalid_application", app),
        f"expected an Application subclass or an instance of one, got {app!r}",
    )


def start_order(app: type[Application]) -> list[type[Application]]:
    """``app`` and its dependencies, each after everything it depends on.

    Raises ApplicationError for a dependency cycle, or for two classes with one name.
    """
    order: list[type[Application]] = []
    by_name: dict[str, type[Application]] = {}
    path: list[type[Application]] = []

    def visit(cls: type[Application]) -> None:
        if cls in path:
            cycle = [c.name for c in path[path.index(cls):]] + [cls.name]
            raise ApplicationError(
                ("circular_dependencies", tuple(cycle)),
                f"applications depend on each other in a circle: {' -> '.join(cycle)}",
            )
        if cls in order:
            return
        path.append(cls)
        for dep in cls.dependencies:
            visit(dep)
        path.pop()
        other = by_name.setdefault(cls.name, cls)
        if other is not cls:
            raise ApplicationError(
                ("duplicate_name", cls.name),
                f"two applications are named {cls.name!r}: {other.__qualname__} and "
                f"{cls.__qualname__}; give one another name",
            )
        order.append(cls)

    visit(app)
    return order


# -- the client functions ----------------------------------------------------------------------


async def ensure_controller() -> Pid:
    """The application controller's pid, started if it is not running."""
    from beamish._otp.application.controller import Controller

    pid = whereis(CONTROLLER)
    if pid is not None:
        return pid
    try:
        return await Controller.start(None, name=CONTROLLER)
    except StartError as failure:
        if type(failure.reason) is tuple and failure.reason[0] == "already_started":
            holder: Pid = failure.reason[1]
            return holder
        raise


async def _call(request: tuple[Any, ...], *, create: bool, timeout: float | None = None) -> Any:
    """Call the controller; retry when it exited (with nothing left to run) meanwhile."""
    from beamish._otp.application.controller import Failure

    for attempt in range(3):
        pid = await ensure_controller() if create else whereis(CONTROLLER)
        if pid is None:
            return None
        try:
            result = await GenServer.call(pid, request, timeout)
        except CallError as failed:
            if failed.why in ("noproc", "normal") and attempt < 2:
                continue  # it stopped before it took our request
            raise
        if type(result) is Failure:
            raise result.error
        return result
    raise AssertionError("unreachable")  # pragma: no cover


async def start_application(
    app: Any, args: Any = None, *, start_type: Any = "normal",
    restart: RestartType = "temporary",
) -> None:
    """Start ``app`` (a class or an instance); returns once its root supervisor is up.

    Its dependencies must be running: use ``ensure_all_started`` to start them too.
    ``restart`` decides what happens when the application stops on its own:
    ``"temporary"`` (logged), ``"transient"`` (logged if normal, else as permanent) or
    ``"permanent"`` (every other application stops and the controller exits with
    ``("application_terminated", name, reason)``).

    Raises ``StartError`` if ``start`` fails, ``ApplicationError`` with
    ``("already_started", name)`` or ``("not_started", dependency)``.
    """
    check_start_type(start_type)
    check_restart(restart)
    instance = _instance(app)
    await _call(("start", Box(instance), args, start_type, restart, True), create=True)


async def ensure_all_started(
    app: Any, args: Any = None, *, start_type: Any = "normal",
    restart: RestartType = "temporary",
) -> list[str]:
    """Start ``app`` and, first, its dependencies that are not running yet.

    Returns the names of the applications this call started, in start order. ``args`` goes
    to ``app``'s ``start``; dependencies get None. If one fails to start, those this call
    started are stopped again and the ``StartError`` is raised. If the call is cancelled,
    what it started keeps running (an application's start cannot be interrupted):
    ``stop_all_applications()`` stops it all in reverse order.
    """
    check_start_type(start_type)
    check_restart(restart)
    top = _instance(app)
    order = start_order(type(top))
    started: list[str] = []
    try:
        for cls in order:
            instance = top if cls is type(top) else cls()
            fresh = await _call((
                "start", Box(instance), args if instance is top else None, start_type,
                restart, False,
            ), create=True)
            if fresh:
                started.append(cls.name)
    except (StartError, ApplicationError):
        for name in reversed(started):
            with contextlib.suppress(ApplicationError):
                await stop_application(name)
        raise
    return started


async def stop_application(app: Any) -> None:
    """Stop a running application: ``prep_stop``, its tree in reverse order, ``stop``.

    Raises ``ApplicationError`` with ``("not_started", name)`` if it does not run.
    """
    name = name_of(app)
    done = await _call(("stop", name), create=False)
    if done is None:
        raise ApplicationError(("not_started", name), f"application {name!r} is not running")


async def stop_all_applications() -> list[str]:
    """Stop every application, the most recently started first; returns their names.

    This is what a node does when it shuts down. The controller exits afterwards.
    """
    stopped: list[str] | None = await _call(("stop_all",), create=False)
    return stopped or []


async def started_applications() -> list[ApplicationInfo]:
    """The applications running or starting, the most recently started first."""
    found: list[ApplicationInfo] | None = await _call(("which",), create=False, timeout=5.0)
    return found or []


@mark_shared
class Box:
    """Carries an Application instance between processes by reference, not as a copy.

    The instance belongs to the application: its master runs the callbacks on it, and the
    caller who made it can still look at it (``app.settings`` once started).
    """

    __slots__ = ("app",)

    def __init__(self, app: Application) -> None:
        self.app = app
