"""``beamish.run(main)``: the synchronous entry point, like ``asyncio.run``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from beamish._runtime.runtime import Runtime

__all__ = ["new_event_loop", "run"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Callable[..., Any], *args: Any, debug: bool = False, **options: Any) -> Any:
    """Start a runtime on a new event loop, run ``main(*args)`` as a process, stop.

    Returns what ``main`` returns; an exception escaping ``main`` is raised here. Other
    processes still alive when ``main`` ends are shut down (see ``Runtime.stop``). Keyword
    ``options`` go to ``Runtime`` (``max_processes``, ``long_schedule``, ...); uvloop is
    used when installed::

        async def main():
            pid = beamish.spawn(worker)
            ...

        beamish.run(main)
    """

    async def amain() -> Any:
        async with Runtime(**options) as runtime:
            return await runtime.run(main, *args)

    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(amain())
