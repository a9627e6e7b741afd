"""Task.async_stream: map a function over an input in concurrent tasks, lazily, in order.

How it works. The stream is an async iterator used by one process, the *consumer*. At the
first task it spawns a hidden *coordinator* (an Actor linked to the consumer and trapping
exits) that owns the tasks: it starts them (``Task.async_``, or through a Task.Supervisor),
times each one out, and keeps their results until the consumer asks. The consumer pulls its
input only while fewer than ``max_concurrency`` tasks run, and talks to the coordinator with
``request``: results come back as replies, never as messages, so the consumer's mailbox stays
clean whatever happens, and a stream left half way leaves nothing behind.

Failures follow Elixir. A linked task that fails ends the coordinator with the task's
reason, and so the consumer through their link, unless the consumer traps exits: then the
failure is an item, ``("exit", reason)``. When the consumer exits, the coordinator kills the
linked tasks and exits too. Closing the stream (``aclose``, leaving ``async with``, or the
stream being garbage collected) makes the coordinator kill every task and exit normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beamish._errors import (
    CallError,
    NotInProcessError,
    NotOwnerError,
    ProcessExit,
    SupervisorError,
)
from beamish._runtime.api import (
    cancel_timer,
    exit,
    send,
    send_after,
    spawn_opt,
    trap_exit,
    unlink,
    wait_exit,
)
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.process import Actor
from beamish._runtime.request import ReplyTo, Request, reply, request

__all__ = ["TaskStream"]

Starter = Callable[[Callable[..., Any], Any], Any]
"""Starts one task for a stream, inside the coordinator: ``start(fn, item)`` returns a Task
owned by the coordinator, or a coroutine that returns one."""

_END: Any = object()
_ON_TIMEOUT = ("exit", "kill_task")


@mark_shared
class _Timeout:
    __slots__ = ("ref",)

    def __init__(self, ref: Ref) -> None:
        self.ref = ref


@mark_shared
class _Close:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<close stream>"


_CLOSE = _Close()


@dataclass(frozen=True, slots=True)
class _Config:
    fn: Callable[..., Any]
    start: Starter
    linked: bool
    max_concurrency: int
    ordered: bool
    timeout: float | None
    on_timeout: str
    zip_input_on_exit: bool
    trap: bool
    what: str


class TaskStream:
    """The async iterator of ``Task.async_stream`` and ``Task.Supervisor.async_stream``.

    Iterate it in one process; close it when leaving early (``async with`` does), which
    kills the tasks still running. Items are ``("ok", result)`` or ``("exit", reason)``.
    """

    def __init__(
        self, iterable: Any, fn: Callable[[Any], Any], *, start: Starter, linked: bool,
        max_concurrency: int, ordered: bool, timeout: float | None, on_timeout: str,
        zip_input_on_exit: bool, what: str,
    ) -> None:
        _check_options(iterable, fn, max_concurrency, timeout, on_timeout, what)
        self._iterable = iterable
        self._fn = fn
        self._start = start
        self._linked = linked
        self._max = max_concurrency
        self._ordered = bool(ordered)
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._zip = bool(zip_input_on_exit)
        self._what = what
        self._owner: Pid | None = None
        self._input: Any = None
        self._async_input = False
        self._coordinator: Pid | None = None
        self._room = True
        self._exhausted = False
        self._spawned = 0
        self._delivered = 0
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._delivered}/{self._spawned} delivered"
        return f"<{self._what} stream, {state}>"

    def __aiter__(self) -> TaskStream:
        return self

    async def __aenter__(self) -> TaskStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> tuple[str, Any]:
        if self._closed:
            raise StopAsyncIteration
        self._bind()
        try:
            while True:
                while self._room and not self._exhausted:
                    item = await self._pull()
                    if item is _END:
                        self._exhausted = True
                        break
                    await self._start_task(item)
                if self._exhausted and self._delivered == self._spawned:
                    await self._stop()
                    raise StopAsyncIteration
                answer = await self._call(("next", not self._exhausted))
                if answer[0] == "item":
                    self._delivered += 1
                    self._room = answer[2]
                    result: tuple[str, Any] = answer[1]
                    return result
                if answer[0] != "room":
                    raise CallError("timeout", (self._what, self._timeout))
                self._room = True
        except StopAsyncIteration:
            raise
        except asyncio.CancelledError:
            self._close_nowait()
            raise
        except BaseException:
            await self._stop()
            raise

    async def aclose(self) -> None:
        """Stop the stream: kill the tasks still running and close a generator input."""
        if not self._closed:
            await self._stop()

    def __del__(self) -> None:
        # A stream dropped half way (a ``break`` without ``async with``) still stops its
        # tasks: ``send`` needs no process, so it works from a finalizer.
        coordinator = getattr(self, "_coordinator", None)  # None if __init__ refused
        if coordinator is not None:
            with contextlib.suppress(Exception):  # the runtime may be gone already
                send(coordinator, _CLOSE)

    # -- the consumer's side ------------------------------------------------------------------

    def _bind(self) -> None:
        try:
            me = _self()
        except NotInProcessError:
            raise NotInProcessError(
                f"a {self._what} stream must be iterated inside a beamish process: its tasks "
                "are linked to the process that iterates it. Run the code in one: "
                "beamish.run(main), beamish.spawn(fn), or `async with beamish.as_process():`."
            ) from None
        if self._owner is None:
            self._owner = me
            if hasattr(type(self._iterable), "__aiter__"):
                self._input, self._async_input = aiter(self._iterable), True
            else:
                self._input = iter(self._iterable)
        elif self._owner != me:
            raise NotOwnerError(
                f"this {self._what} stream is iterated by {self._owner!r}; it cannot be "
                f"iterated from {me!r} too. Build one stream for each process that consumes one",
                task=self, caller=me,
            )

    async def _pull(self) -> Any:
        if self._async_input:
            try:
                return await anext(self._input)
            except StopAsyncIteration:
                return _END
        return next(self._input, _END)

    async def _start_task(self, item: Any) -> None:
        if self._coordinator is None:
            previous = trap_exit(True)
            trap_exit(previous)
            config = _Config(
                self._fn, self._start, self._linked, self._max, self._ordered, self._timeout,
                self._on_timeout, self._zip, previous, self._what,
            )
            self._coordinator = spawn_opt(
                _Coordinator(self._owner, config), link=True, trap_exit=True  # type: ignore[arg-type]
            )
        answer = await self._call(("spawn", item))
        if answer[0] == "error":
            raise answer[1]
        self._spawned += 1
        self._room = answer[1]

    async def _call(self, payload: Any) -> Any:
        assert self._coordinator is not None
        try:
            return await request(self._coordinator, payload, timeout=None)
        except ProcessExit as exited:  # the coordinator is gone: say why, as the stream
            self._coordinator = None
            why = exited.why if isinstance(exited, CallError) else exited.reason
            raise CallError(why, (self._what, self._timeout)) from None

    async def _stop(self) -> None:
        self._closed = True
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is not None:
            exited = wait_exit(coordinator)
            unlink(coordinator)
            send(coordinator, _CLOSE)
            await exited
        if not self._exhausted:
            self._exhausted = True
            if inspect.isgenerator(self._input):
                self._input.close()
            elif inspect.isasyncgen(self._input):
                await self._input.aclose()

    def _close_nowait(self) -> None:
        self._closed = True
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is not None:
            send(coordinator, _CLOSE)


def _check_options(
    iterable: Any, fn: Any, max_concurrency: Any, timeout: Any, on_timeout: Any, what: str
) -> None:
    if not (hasattr(type(iterable), "__iter__") or hasattr(type(iterable), "__aiter__")):
        raise TypeError(f"{what}() needs an iterable or an async iterable, got {iterable!r}")
    if not callable(fn) or inspect.iscoroutine(fn):
        raise TypeError(f"{what}() needs a function to apply to each item, got {fn!r}")
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or (
        max_concurrency <= 0
    ):
        raise ValueError(
            f"{what}(): max_concurrency must be an int greater than zero, got {max_concurrency!r}"
        )
    if on_timeout not in _ON_TIMEOUT:
        raise ValueError(
            f"{what}(): on_timeout must be either 'exit' or 'kill_task', got {on_timeout!r}"
        )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise ValueError(
            f"{what}(): timeout must be a number of seconds >= 0 or None (no limit), "
            f"got {timeout!r}"
        )


# -- the coordinator -------------------------------------------------------------------------


class _Entry:
    __slots__ = ("item", "position", "result", "task", "timed_out", "timer")

    def __init__(self, position: int, item: Any, task: Any) -> None:
        self.position = position
        self.item = item
        self.task = task
        self.result: tuple[str, Any] | None = None
        self.timed_out = False
        self.timer: Ref | None = None


class _Coordinator(Actor):
    """Owns one stream's tasks (hidden): starts them, times them out, keeps their results."""

    __slots__ = (
        "config", "consumer", "failed", "finished", "next_position", "queue", "running",
        "spawned", "waiter", "wants_room",
    )

    def __init__(self, consumer: Pid, config: _Config) -> None:
        self.consumer = consumer
        self.config = config
        self.running: dict[Ref, _Entry] = {}
        self.finished: dict[int, tuple[str, Any]] = {}
        self.queue: deque[tuple[str, Any]] = deque()
        self.next_position = 0
        self.spawned = 0
        self.waiter: ReplyTo | None = None
        self.wants_room = False
        self.failed = False

    def handle(self, message: Any) -> Any:
        kind = type(message)
        if kind is tuple:  # a task's reply, (ref, result): final once the task is down
            if len(message) == 2 and type(message[0]) is Ref:
                entry = self.running.get(message[0])
                if entry is not None and entry.result is None:
                    entry.result = ("ok", message[1])
        elif kind is Down:
            entry = self.running.pop(message.ref, None)
            if entry is not None:
                self._finished(entry, message.reason)
        elif kind is Request:
            return self._request(message.reply_to, message.payload)
        elif kind is _Timeout:
            self._time_out(message.ref)
        elif kind is Exit:
            self._exit_signal(message.pid, message.reason)
        elif message is _CLOSE:
            self._close(None)
        return None

    def _request(self, reply_to: ReplyTo, payload: Any) -> Any:
        match payload:
            case ("spawn", item):
                return self._spawn(reply_to, item)
            case ("next", wants_room):
                self.waiter = reply_to
                self.wants_room = wants_room
                self._answer()
        return None

    def _spawn(self, reply_to: ReplyTo, item: Any) -> Any:
        config = self.config
        if self.failed:  # a task timed out with on_timeout="exit": start nothing more
            reply(reply_to, ("error", CallError("timeout", (config.what, config.timeout))))
            return None
        try:
            started = config.start(config.fn, item)
        except Exception as error:
            reply(reply_to, ("error", error))
            return None
        if inspect.iscoroutine(started):  # not isawaitable: a Task is awaitable itself
            return self._spawn_later(reply_to, item, started)
        self._track(started, item)
        reply(reply_to, ("ok", len(self.running) < config.max_concurrency))
        return None

    async def _spawn_later(self, reply_to: ReplyTo, item: Any, started: Any) -> None:
        try:
            task = await started
        except SupervisorError as error:
            if error.reason == "max_children":
                error = SupervisorError("max_children", (
                    f"{error} When using {self.config.what}, keep max_concurrency lower than "
                    "or equal to max_children, and mind the other tasks started under the "
                    "same supervisor."
                ))
            reply(reply_to, ("error", error))
            return
        except (Exception, CallError) as error:
            reply(reply_to, ("error", error))
            return
        self._track(task, item)
        reply(reply_to, ("ok", len(self.running) < self.config.max_concurrency))

    def _track(self, task: Any, item: Any) -> None:
        entry = _Entry(self.spawned, item, task)
        self.spawned += 1
        if self.config.timeout is not None:
            entry.timer = send_after(self.pid, _Timeout(task.ref), self.config.timeout)
        self.running[task.ref] = entry

    def _time_out(self, ref: Ref) -> None:
        entry = self.running.get(ref)
        if entry is None or entry.result is not None or entry.timed_out:
            return
        entry.timed_out = True
        entry.timer = None
        _kill(entry.task.pid)  # its Down comes next and settles the item

    def _finished(self, entry: _Entry, reason: Any) -> None:
        if entry.timer is not None:
            cancel_timer(entry.timer)
        config = self.config
        result = entry.result
        if result is None:
            if entry.timed_out:
                if config.on_timeout == "exit":
                    self.failed = True
                else:
                    result = self._exited(entry, "timeout")
            else:
                if config.linked and not config.trap and reason != "normal":
                    self._die(reason)
                result = self._exited(entry, reason)
        if result is not None:
            if config.ordered:
                self.finished[entry.position] = result
            else:
                self.queue.append(result)
        self._answer()

    def _exited(self, entry: _Entry, reason: Any) -> tuple[str, Any]:
        return ("exit", (entry.item, reason)) if self.config.zip_input_on_exit else (
            "exit", reason
        )

    def _answer(self) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        result = self._next_result()
        room = len(self.running) < self.config.max_concurrency
        if result is not None:
            answer: tuple[Any, ...] = ("item", result, room)
        elif self.failed:
            answer = ("timeout",)
        elif self.wants_room and room:
            answer = ("room",)
        else:
            return
        self.waiter = None
        reply(waiter, answer)

    def _next_result(self) -> tuple[str, Any] | None:
        if self.config.ordered:
            result = self.finished.pop(self.next_position, None)
            if result is not None:
                self.next_position += 1
            return result
        return self.queue.popleft() if self.queue else None

    def _exit_signal(self, pid: Pid | None, reason: Any) -> None:
        if pid == self.consumer:
            # the consumer is gone: its linked tasks go with it, then the coordinator
            if self.config.linked:
                for entry in self.running.values():
                    _kill(entry.task.pid)
            raise ProcessExit(reason)
        if self.config.linked and not self.config.trap and reason != "normal":
            self._die(reason)  # a task failed: end the consumer through the link

    def _die(self, reason: Any) -> None:
        for entry in self.running.values():
            _kill(entry.task.pid)
        raise ProcessExit(reason)

    def _close(self, reply_to: ReplyTo | None) -> None:
        for entry in self.running.values():
            _kill(entry.task.pid)
        self.running.clear()
        unlink(self.consumer)  # a normal exit: the consumer hears nothing, trapping or not
        if reply_to is not None:
            reply(reply_to, None)
        raise ProcessExit("normal")


def _kill(pid: Pid) -> None:
    unlink(pid)
    exit(pid, "kill")
