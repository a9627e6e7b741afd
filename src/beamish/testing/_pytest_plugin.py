"""The beamish pytest plugin: async tests run as beamish processes.

Each ``async def test_...`` gets a fresh event loop (uvloop where installed) and a fresh
``Runtime``, and its body runs as a process, so ``self()``, ``receive()``, links and monitors
work in it directly. As in ExUnit, when the body returns the test process exits with
``"shutdown"``, which stops the processes linked to it. Then the test fails if any process
of its runtime is still alive, or if asyncio tasks are still pending after the runtime
stopped.

The ``runtime`` fixture gives the test's runtime. Options go through a marker::

    @pytest.mark.beamish(max_processes=10, long_schedule=None, allow_leftovers=True)
    async def test_limit(runtime): ...
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from beamish._errors import ProcessExit
from beamish._runtime.entry import new_event_loop
from beamish._runtime.runtime import Runtime
from beamish.testing._leftovers import LeftoverError, check_leftovers, wait_until_idle

_OPTIONS_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "beamish(**options): Runtime options for an async test (and allow_leftovers=True)",
    )


def _options(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker("beamish")
    options = dict(marker.kwargs) if marker is not None else {}
    return options


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """The Runtime the async test runs in (created for the test, started by the plugin)."""
    options = _options(request.node)
    options.pop("allow_leftovers", None)
    yield Runtime(**options)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    options = _options(pyfuncitem)
    allow_leftovers = bool(options.pop("allow_leftovers", False))
    rt = funcargs.get("runtime")
    if not isinstance(rt, Runtime):
        rt = Runtime(**options)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_run_test(rt, fn, kwargs, allow_leftovers))
    return True


async def _run_test(rt: Runtime, fn: Any, kwargs: dict[str, Any], allow_leftovers: bool) -> None:
    await rt.start()
    failure: BaseException | None = None
    try:
        try:
            async with rt.as_process():
                await fn(**kwargs)
                raise ProcessExit("shutdown")
        except ProcessExit as stop:
            if stop.reason != "shutdown":
                raise AssertionError(
                    f"the test process exited with reason {stop.reason!r}"
                ) from stop
        await wait_until_idle(rt)
        if not allow_leftovers:
            check_leftovers(rt)
    except BaseException as exc:
        failure = exc
    finally:
        await rt.stop(timeout=2.0)
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
