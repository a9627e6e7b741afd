"""Agent: a process that holds one value, read and changed through functions.

How it works. ``Agent`` is the user's side: client functions that send a function to the
agent. The process is a hidden GenServer, ``_AgentServer``: its state is the value, and it
applies each function to it, one request at a time, so the value never changes under a
reader. The functions run *inside* the agent, with its value as their first argument; what
they return goes back to the caller (copied, as any message) and the value itself never
leaves the process.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from beamish._errors import CallError, InvalidTargetError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._otp.supervisor.child_spec import ChildSpec, ChildSpecOptions
from beamish._runtime.pid import Pid
from beamish._runtime.request import ReplyTo

__all__ = ["Agent"]


class Agent(ChildSpecOptions):
    """A value in a process of its own, shared by reading and updating it with functions.

    ::

        counter = await Agent.start_link(lambda: 0, name="counter")
        await Agent.update("counter", lambda n: n + 1)
        assert await Agent.get("counter", lambda n: n) == 1
        Agent.cast("counter", lambda n: n + 10)             # does not wait
        old = await Agent.get_and_update("counter", lambda n: (n, 0))

    Every function runs in the agent with the current value as its first argument (extra
    positional arguments follow it): ``Agent.get(agent, dict.get, "key")`` calls
    ``dict.get(value, "key")``. A function may be ``async def``; the agent then waits for it
    before it serves anyone else. If a function raises, the agent crashes with it and the
    caller gets ``CallError`` with the reason.

    An agent is addressed by its pid or its name (a ``str`` or a via name), and is stopped
    with ``Agent.stop``. As a module, like ``use Agent``: subclass it, define
    ``start_link(arg)`` calling ``Agent.start_link``, and set child spec options on the class
    line (``class Cache(Agent, restart="transient")``).
    """


    @staticmethod
    async def start_link(
        fn: Callable[..., Any], *args: Any, name: Any = None, timeout: float | None = 5.0
    ) -> Pid:
        """Start an agent linked to the caller; ``fn(*args)``, run in it, gives its value.

        Returns once the value is built. Raises ``StartError`` if ``fn`` fails
        (``("already_started", pid)`` if ``name`` is taken).
        """
        _check_function(fn, "Agent.start_link")
        return await _AgentServer.start_link((fn, args), name=name, timeout=timeout)

    @staticmethod
    async def start(
        fn: Callable[..., Any], *args: Any, name: Any = None, timeout: float | None = 5.0
    ) -> Pid:
        """Like ``start_link``, without the link."""
        _check_function(fn, "Agent.start")
        return await _AgentServer.start((fn, args), name=name, timeout=timeout)

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """How a supervisor starts an agent.

        ``(Agent, fn)`` or ``(Agent, (fn, arg1, ...))`` starts ``Agent.start_link(fn, ...)``;
        a subclass ``Cache`` gives ``Cache.start_link(arg)``, with its class-line options.
        """
        if cls is Agent:
            fn, args = (arg[0], arg[1:]) if type(arg) is tuple and arg else (arg, ())
            _check_function(fn, "Agent.child_spec")
            return ChildSpec(id=Agent, start=(Agent.start_link, (fn, *args)), modules=(Agent,))
        spec = ChildSpec(id=cls, start=(cls.start_link, (arg,)), modules=(cls,))
        return cls.with_defaults(spec)

    @staticmethod
    async def get(
        agent: Any, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> Any:
        """Return ``fn(value, *args)``; the value is unchanged."""
        return await _call(agent, ("get", fn, args), timeout, "Agent.get")

    @staticmethod
    async def update(
        agent: Any, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> None:
        """Replace the value with ``fn(value, *args)``; returns once it is done."""
        await _call(agent, ("update", fn, args), timeout, "Agent.update")

    @staticmethod
    async def get_and_update(
        agent: Any, fn: Callable[..., Any], *args: Any, timeout: float | None = 5.0
    ) -> Any:
        """``fn(value, *args)`` returns ``(reply, new_value)``: store one, return the other."""
        return await _call(agent, ("get_and_update", fn, args), timeout, "Agent.get_and_update")

    @staticmethod
    def cast(agent: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Replace the value with ``fn(value, *args)`` without waiting.

        Never fails, even if no agent is there (as ``GenServer.cast``); only a ``fn`` that is
        not a function is refused at once.
        """
        _check_function(fn, "Agent.cast")
        GenServer.cast(agent, ("update", fn, args))

    @staticmethod
    async def stop(agent: Any, reason: Any = "normal", timeout: float | None = None) -> None:
        """Stop the agent with ``reason``; returns once it has exited.

        Raises ``CallError`` (``"noproc"``, ``"timeout"``) as ``GenServer.stop`` does.
        """
        try:
            await GenServer.stop(agent, reason, timeout)
        except CallError as failure:
            raise CallError(failure.why, ("Agent.stop", agent, reason, timeout)) from None


async def _call(agent: Any, request: tuple[Any, ...], timeout: float | None, what: str) -> Any:
    _check_function(request[1], what)
    try:
        return await GenServer.call(agent, request, timeout)
    except CallError as failure:
        raise CallError(failure.why, (what, agent, timeout)) from None


def _check_function(fn: Any, what: str) -> None:
    if inspect.iscoroutine(fn):
        fn.close()
    elif callable(fn):
        return
    example = "Agent.start_link(lambda: {})" if what == "Agent.start_link" else (
        f"{what}(agent, lambda value: ...)"
    )
    raise InvalidTargetError(
        f"{what}() takes a function (and its extra arguments), got {fn!r}; for example {example}"
    )


class _AgentServer(GenServer):
    """The agent process (hidden): its state is the value."""

    __slots__ = ()

    def init(self, arg: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
        fn, args = arg
        value = fn(*args)
        if inspect.isawaitable(value):
            return _then(value, Ok)
        return Ok(value)

    def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        kind, fn, args = request
        result = fn(state, *args)
        if inspect.isawaitable(result):
            return _finish(kind, result, state)
        return _answer(kind, result, state)

    def handle_cast(self, request: Any, state: Any) -> Any:
        _, fn, args = request
        result = fn(state, *args)
        if inspect.isawaitable(result):
            return _then(result, NoReply)
        return NoReply(result)

    def code_change(self, old_vsn: Any, state: Any, extra: Any) -> Any:
        """``GenServer.change_code(agent, old_vsn, fn)``: the new value is ``fn(value)``
        (or ``fn(value, *args)`` for ``extra=(fn, *args)``); no ``extra`` keeps it."""
        if callable(extra):
            return extra(state)
        if type(extra) is tuple and extra and callable(extra[0]):
            return extra[0](state, *extra[1:])
        return state


def _answer(kind: str, result: Any, state: Any) -> Reply:
    if kind == "get":
        return Reply(result, state)
    if kind == "update":
        return Reply(None, result)
    if type(result) is not tuple or len(result) != 2:
        raise TypeError(
            "the function given to Agent.get_and_update must return (reply, new_value), "
            f"got {result!r}"
        )
    return Reply(result[0], result[1])


async def _finish(kind: str, awaitable: Awaitable[Any], state: Any) -> Reply:
    return _answer(kind, await awaitable, state)


async def _then(awaitable: Awaitable[Any], build: Callable[[Any], Any]) -> Any:
    return build(await awaitable)
