"""The beamish pytest plugin: async tests run as beamish processes.

Each ``async def test_...`` gets a fresh event loop (uvloop where installed) and a fresh
``Runtime``, and its body runs as a process, so ``self()``, ``receive()``, links and monitors
work in it directly. As in ExUnit, when the body returns the test process exits with
``"shutdown"``, which stops the processes linked to it; then the children it started with
``start_supervised`` are stopped, in reverse start order. Then the test fails if any process
of its runtime is still alive, or if asyncio tasks are still pending after the runtime
stopped.

Fixtures: ``runtime`` gives the test's runtime; ``virtual_clock`` gives its clock and makes
it a ``VirtualClock``. Options go through a marker: every ``Runtime`` option, plus
``allow_leftovers=True`` and ``clock="virtual"``::

    @pytest.mark.beamish(max_processes=10, long_schedule=None, allow_leftovers=True)
    async def test_limit(runtime): ...

    async def test_idle_timeout(virtual_clock):
        ...
        await virtual_clock.advance(30)

Beside pytest-asyncio. pytest-asyncio runs the async tests it takes in an event loop of its
own, where no beamish runtime runs. In its strict mode (its default) it takes only the tests
marked ``@pytest.mark.asyncio``, and beamish runs the others. In its auto mode (what most
FastAPI projects set) it takes every async test, so beamish runs those that ask for it:
marked ``@pytest.mark.beamish`` (on the test, its class, or ``pytestmark`` in its module) or
using the ``runtime`` or ``virtual_clock`` fixture. A test that pytest-asyncio ran and that
fails with ``NoRuntimeError`` or ``NotInProcessError`` gets a note saying so.
pytest-asyncio's async fixtures run in its loop, not in the beamish test's: a beamish test
sets up in its body (or with ``start_supervised``) and uses plain fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import Any

import pytest

from beamish._errors import NoRuntimeError, NotInProcessError, ProcessExit
from beamish._runtime import events
from beamish._runtime.entry import new_event_loop
from beamish._runtime.runtime import Runtime
from beamish.testing._clock import VirtualClock
from beamish.testing._idle import wait_until_idle
from beamish.testing._leftovers import LeftoverError, check_leftovers
from beamish.testing._supervised import supervised_scope

_RUNTIME_KEY = pytest.StashKey[Runtime]()
_SETTLE_TIMEOUT = 2.0  # real seconds to let the node settle before the leftover check


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "beamish(**options): Runtime options for an async test, plus allow_leftovers=True "
        "and clock='virtual'",
    )


def _marker_options(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker("beamish")
    return dict(marker.kwargs) if marker is not None else {}


def _test_runtime(item: pytest.Item) -> Runtime:
    """The runtime of one test, made once from its marker and fixtures."""
    rt = item.stash.get(_RUNTIME_KEY, None)
    if rt is not None:
        return rt
    options = _marker_options(item)
    options.pop("allow_leftovers", None)
    clock = options.get("clock")
    wants_virtual = "virtual_clock" in getattr(item, "fixturenames", ())
    if clock == "virtual" or (clock is None and wants_virtual):
        options["clock"] = VirtualClock()
    elif clock == "real":
        del options["clock"]
    elif isinstance(clock, str):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.beamish(clock={clock!r}) is not a clock; use "
            "clock='virtual', clock='real', or a Clock instance"
        )
    rt = item.stash[_RUNTIME_KEY] = Runtime(**options)
    return rt


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> Runtime:
    """The Runtime the async test runs in (created for the test, started by the plugin)."""
    return _test_runtime(request.node)


@pytest.fixture
def virtual_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The test runtime's clock, a ``VirtualClock``: time moves when the test advances it."""
    clock = _test_runtime(request.node).clock
    if not isinstance(clock, VirtualClock):
        raise pytest.UsageError(
            f"{request.node.nodeid} asks for virtual_clock but its beamish marker gives the "
            f"runtime another clock ({clock!r}); drop the marker's clock option"
        )
    return clock


_FIXTURES = frozenset({"runtime", "virtual_clock"})


def _asks_for_beamish(item: pytest.Item) -> bool:
    """Marked ``beamish``, or using one of its fixtures."""
    return item.get_closest_marker("beamish") is not None or not _FIXTURES.isdisjoint(
        getattr(item, "fixturenames", ())
    )


def _taken_by_asyncio(item: pytest.Item) -> bool:
    """pytest-asyncio runs the tests it marks ``asyncio`` (every async one in auto mode)."""
    return item.get_closest_marker("asyncio") is not None


def _test_function(pyfuncitem: pytest.Function) -> Any:
    """The coroutine function beamish runs for this test, or None if it is not beamish's."""
    fn = pyfuncitem.obj
    if _taken_by_asyncio(pyfuncitem):
        if not _asks_for_beamish(pyfuncitem):
            return None
        fn = inspect.unwrap(fn)  # pytest-asyncio wraps it to run it in its own loop
    return fn if inspect.iscoroutinefunction(fn) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except (NoRuntimeError, NotInProcessError) as exc:
        if _taken_by_asyncio(item) and not _asks_for_beamish(item):
            exc.add_note(
                f"{item.nodeid} ran under pytest-asyncio (in its event loop, where no beamish "
                "runtime runs): mark it @pytest.mark.beamish (or set pytestmark = "
                "pytest.mark.beamish in its module) so that beamish runs it"
            )
        raise


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = _test_function(pyfuncitem)
    if fn is None:
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    allow_leftovers = bool(_marker_options(pyfuncitem).get("allow_leftovers", False))
    rt = _test_runtime(pyfuncitem)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_run_test(rt, fn, kwargs, allow_leftovers))
    finally:
        del pyfuncitem.stash[_RUNTIME_KEY]
    return True


async def _run_test(rt: Runtime, fn: Any, kwargs: dict[str, Any], allow_leftovers: bool) -> None:
    await rt.start()
    failure: BaseException | None = None
    attached = events.handlers()  # telemetry handlers the test attaches are detached after it
    try:
        async with supervised_scope():
            try:
                async with rt.as_process():
                    await fn(**kwargs)
                    raise ProcessExit("shutdown")
            except ProcessExit as stop:
                if stop.reason != "shutdown":
                    raise AssertionError(
                        f"the test process exited with reason {stop.reason!r}"
                    ) from stop
        with contextlib.suppress(TimeoutError):  # the leftover check names what is busy
            await wait_until_idle(rt, timeout=_SETTLE_TIMEOUT)
        if not allow_leftovers:
            check_leftovers(rt)
    except BaseException as exc:
        failure = exc
    finally:
        await rt.stop(timeout=2.0)
        for handler_id in events.handlers() - attached:
            events.detach(handler_id)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if pending and failure is None:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failure = LeftoverError(
            f"the test left {len(pending)} asyncio task(s) pending after its runtime stopped: "
            + ", ".join(repr(t.get_name()) + " " + repr(t.get_coro()) for t in pending[:5])
        )
    if failure is not None:
        raise failure
