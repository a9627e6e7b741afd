"""Where the running code finds its process and its runtime.

One context variable, ``CURRENT``, holds one of three things:

- a ``Process``: inside a task-shaped process (``spawn(async_fn)``, ``as_process()``) and
  inside an actor's ``async`` handler, whose tasks each carry a context of their own;
- the ``Scheduler``: inside the scheduler's loop callback, which runs actor handlers one after
  the other and keeps the actor it is running in ``scheduler.current`` (a plain attribute
  store per dispatch, cheaper than setting a context variable each time);
- a ``Runtime``: in code that started or bound a runtime but is not a process.

No table lives here: each runtime owns its own, so two runtimes can live in one test.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from beamish._errors import NoRuntimeError, NotInProcessError

if TYPE_CHECKING:
    from beamish._runtime.process import Process
    from beamish._runtime.runtime import Runtime

__all__ = ["CURRENT", "current_process", "current_runtime", "require_process"]

CURRENT: ContextVar[Any] = ContextVar("beamish_current", default=None)

# The classes are set by their own modules (which import this one, not the reverse).
PROCESS_TYPE: type = type(None)
SCHEDULER_TYPE: type = type(None)


def current_process() -> Process | None:
    """The process running the calling code, or None outside any process."""
    c = CURRENT.get()
    t = type(c)
    if t is PROCESS_TYPE:
        return c  # type: ignore[no-any-return]
    if t is SCHEDULER_TYPE:
        return c.current  # type: ignore[no-any-return]
    return None


def current_runtime() -> Runtime:
    """The runtime of the calling code; raises NoRuntimeError if there is none."""
    c = CURRENT.get()
    if c is None:
        raise NoRuntimeError(
            "no beamish runtime is running here. Start one with beamish.run(main), or inside "
            "a running event loop with `async with beamish.Runtime() as rt:` (rt.bind() makes "
            "it current in a task that did not start it)."
        )
    t = type(c)
    if t is PROCESS_TYPE or t is SCHEDULER_TYPE:
        return c.runtime  # type: ignore[no-any-return]
    return c  # type: ignore[no-any-return]


def require_process(what: str) -> Process:
    """The current process; raises NotInProcessError naming ``what`` outside a process."""
    proc = current_process()
    if proc is None:
        raise NotInProcessError(
            f"{what} can only be called inside a beamish process. Run the code in one: "
            "beamish.spawn(fn), beamish.run(main), or `async with beamish.as_process():`."
        )
    return proc
