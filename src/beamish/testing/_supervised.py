"""``start_supervised``: processes a test starts and the test's scope stops, in reverse order.

How it works. A scope (``supervised_scope()``; the pytest plugin opens one around every
async test) is kept in a context variable of the code that opened it, so it belongs to that
test and to nothing else. The first ``start_supervised`` in it starts the scope's
supervisor, a one-for-one ``Supervisor`` that is not linked to the test process (a test
that fails does not take it down; its teardown does). Each child is added with
``Supervisor.start_child``. Leaving the scope stops that supervisor, which stops its
children in reverse start order; the plugin does this after the test process has exited
and before it checks for leftover processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from beamish._errors import CallError, StartError, SupervisorError
from beamish._otp.supervisor.supervisor import Supervisor
from beamish._runtime.api import exit, is_alive
from beamish._runtime.events import attach, detach
from beamish._runtime.pid import Pid

__all__ = ["start_supervised", "stop_supervised", "supervised_scope"]

MAX_RESTARTS = 100
MAX_SECONDS = 1.0
TEARDOWN_TIMEOUT = 10.0  # real seconds


class _Scope:
    """What one ``supervised_scope`` owns: its supervisor, once started."""

    __slots__ = ("detach", "exit_reason", "starting", "sup")

    def __init__(self) -> None:
        self.sup: Pid | None = None
        self.exit_reason: Any = None
        self.detach: Callable[[], object] | None = None
        self.starting = asyncio.Lock()  # two start_supervised at once start one supervisor

    async def supervisor(self) -> Pid:
        async with self.starting:
            if self.sup is None:
                self.sup = await Supervisor.start(
                    [], strategy="one_for_one", max_restarts=MAX_RESTARTS,
                    max_seconds=MAX_SECONDS,
                )
                handler_id = f"beamish.testing.supervised.{id(self)}"
                attach(handler_id, ("beamish", "process", "exit"), self._exited)
                self.detach = functools.partial(detach, handler_id)
        if not is_alive(self.sup):
            raise RuntimeError(self._died())
        return self.sup

    def _exited(self, event: Any, measurements: Any, metadata: Any, config: Any) -> None:
        if metadata["pid"] == self.sup:
            self.exit_reason = metadata["reason"]

    def _died(self) -> str:
        return (
            f"the test supervisor {self.sup!r} exited during the test with reason "
            f"{self.exit_reason!r}, so the children of start_supervised are gone. It gives "
            f"up when its children restart more than {MAX_RESTARTS} times in {MAX_SECONDS}s "
            "(a child that crashes again each time it starts), or when something kills it."
        )

    async def close(self) -> None:
        """Stop the supervisor (children in reverse start order); raise if it went wrong."""
        sup = self.sup
        if sup is None:
            return
        try:
            if not is_alive(sup):
                raise RuntimeError(self._died())
            try:
                await asyncio.wait_for(Supervisor.stop(sup), TEARDOWN_TIMEOUT)
            except TimeoutError:
                exit(sup, "kill")
                raise RuntimeError(
                    f"the test supervisor did not stop its children within {TEARDOWN_TIMEOUT} "
                    "real seconds and was killed. A child that traps exits and does not end "
                    "on 'shutdown' delays the teardown by its shutdown time (kept in virtual "
                    "seconds on a virtual clock, which the teardown does not advance); give "
                    "it shutdown='brutal_kill' in start_supervised(child, shutdown=...)."
                ) from None
            except CallError as failed:
                if failed.why != "noproc":
                    raise
        finally:
            if self.detach is not None:
                self.detach()
                self.detach = None


_SCOPE: ContextVar[_Scope | None] = ContextVar("beamish_testing_supervised", default=None)


@contextlib.asynccontextmanager
async def supervised_scope() -> AsyncIterator[None]:
    """``async with supervised_scope():`` children of ``start_supervised`` stop at its end.

    The pytest plugin opens one around every async test, after which its children are
    stopped before the leftover check; open one yourself to use ``start_supervised``
    outside pytest. A failure to stop them is raised at the end of the block, or added as a
    note to the exception that is leaving it.
    """
    scope = _Scope()
    token = _SCOPE.set(scope)
    try:
        yield
    except BaseException as failure:
        try:
            await scope.close()
        except Exception as teardown:
            failure.add_note(f"while stopping the children of start_supervised: {teardown}")
        raise
    else:
        await scope.close()
    finally:
        _SCOPE.reset(token)


def _scope(what: str) -> _Scope:
    scope = _SCOPE.get()
    if scope is None:
        raise RuntimeError(
            f"{what} works in a test scope: in an async test run by the beamish pytest plugin "
            "(from the test process itself, not from a process it spawned), or inside "
            "`async with beamish.testing.supervised_scope():`"
        )
    return scope


async def start_supervised(child: Any, **overrides: Any) -> Pid:
    """Start ``child`` under the test's supervisor and return its pid.

    ``child`` is anything a ``Supervisor`` accepts: a class with ``child_spec``, a
    ``(class, arg)`` pair, a ``ChildSpec`` or a mapping; ``overrides`` change its spec
    (``id=``, ``restart=``, ``shutdown=``, ...; unknown keys are refused). The child is
    restarted by its restart type like any supervised child, is not linked to the test
    process, and is stopped after the test, children in reverse start order, before the
    leftover check::

        async def test_counter():
            pid = await start_supervised((Counter, 0))
            assert await GenServer.call(pid, "get") == 0

    Two children of one class need distinct ids: ``start_supervised(Worker, id="w2")``.
    Raises ``StartError`` if the child fails to start (or ignores the start) and
    ``SupervisorError`` if its id is taken.
    """
    scope = _scope("start_supervised()")
    spec = Supervisor.child_spec_of(child, **overrides)
    sup = await scope.supervisor()
    try:
        result = await Supervisor.start_child(sup, spec)
    except StartError as failure:
        raise StartError(
            failure.reason, f"start_supervised() could not start {spec.id!r}: {failure}"
        ) from None
    except SupervisorError as refused:
        if type(refused.reason) is tuple and refused.reason[0] == "already_started":
            raise SupervisorError(
                refused.reason,
                f"start_supervised(): {refused}. Give the second one its own id: "
                f"start_supervised(child, id=...).",
            ) from None
        raise
    pid: Pid | None = result[0] if type(result) is tuple else result
    if pid is None:
        with contextlib.suppress(SupervisorError):
            await Supervisor.delete_child(sup, spec.id)
        raise StartError("ignore", f"start_supervised(): {spec.id!r} ignored the start (no pid)")
    return pid


async def stop_supervised(child_id: Any) -> None:
    """Stop a child of ``start_supervised`` by its id and forget its spec.

    The id is the spec's: the class for ``start_supervised(Worker)``, or the ``id=`` given.
    Raises ``SupervisorError`` (``"not_found"``) if no such child was started.
    """
    scope = _scope("stop_supervised()")
    sup = scope.sup
    if sup is None:
        raise SupervisorError(
            "not_found", f"stop_supervised(): no child with id {child_id!r} was started"
        )
    await Supervisor.terminate_child(await scope.supervisor(), child_id)
    with contextlib.suppress(SupervisorError):  # a temporary child's spec is already gone
        await Supervisor.delete_child(sup, child_id)
