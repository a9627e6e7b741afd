"""``receive``: take a message from the calling process's mailbox, selectively.

How it works. The mailbox is scanned in arrival order; the first message that matches is
removed and returned, the others stay where they are, in order. If nothing matches, the
process parks on a future that the next ``send`` to it resolves, and scans again from where
it stopped (messages already skipped are not looked at twice). A timeout is a timer on the
runtime clock that marks the receive expired and wakes the process.

An actor may call ``receive`` only from an ``async def`` handler: while the handler runs
the scheduler hands it no messages, so the handler can take the ones it waits for (a
task's reply, say) and leave the rest for ``handle``.

A process that always finds a message waiting never suspends, so every 256 messages taken
``receive`` gives the loop one turn: a busy receive loop cannot starve the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from beamish._errors import NotInProcessError, ProcessExit
from beamish._runtime import context as _context
from beamish._runtime.patterns import compile_patterns
from beamish._runtime.process import Process

if TYPE_CHECKING:
    from beamish._runtime.runtime import Runtime

__all__ = ["receive", "receive_nowait", "sleep"]

_RAISE: Any = object()


def _expire(proc: Process, expired: list[bool]) -> None:
    # The timer itself decides that the timeout passed: a loop may fire a timer a little
    # before its clock reads the deadline, so comparing clocks after waking could park the
    # process again with no timer left.
    expired[0] = True
    waiter = proc.waiter
    if waiter is not None:
        proc.waiter = None
        if not waiter.done():
            waiter.set_result(None)
            proc.runtime.wakeups += 1


async def receive(*patterns: Any, timeout: float | None = None, default: Any = _RAISE) -> Any:
    """Take the first message that matches one of ``patterns`` (any message if none given).

    Waits up to ``timeout`` seconds (``None``: forever; ``0``: just look). On timeout,
    returns ``default`` if given, else raises ``TimeoutError``. See ``beamish.ANY`` and
    the pattern table in the documentation for the pattern forms::

        match await receive():
            case ("add", a, b, reply_to):
                send(reply_to, a + b)

        # selective: take the reply, leave the rest in the mailbox
        ("reply", _, value) = await receive(("reply", ref, ANY), timeout=5)
    """
    proc = _context.current_process()
    if proc is None:
        raise NotInProcessError(
            "receive() can only be called inside a beamish process; run the code in one: "
            "beamish.spawn(fn), beamish.run(main), or `async with beamish.as_process():`"
        )
    if proc.actor is not None and not proc.busy:
        raise NotInProcessError(
            f"receive() cannot be used in {type(proc.actor).__qualname__}.handle() when it is "
            "a plain def: an Actor gets its messages through handle(). An async def handler "
            "may receive selectively (as Erlang code may inside a gen_server callback); or use "
            "spawn(async_fn) for a process with a receive loop."
        )
    if proc.pid._proc is None:
        raise ProcessExit(proc.exit_reason)
    mailbox = proc.mailbox
    if mailbox is None:
        mailbox = proc.mailbox = deque()
    matcher = compile_patterns(patterns) if patterns else None
    runtime = proc.runtime
    expired: list[bool] | None = None
    handle = None
    scanned = 0
    try:
        while True:
            if matcher is None:
                if mailbox:
                    message = mailbox.popleft()
                    break
            else:
                size = len(mailbox)
                found = False
                while scanned < size:
                    message = mailbox[scanned]
                    if matcher(message):
                        del mailbox[scanned]
                        found = True
                        break
                    scanned += 1
                if found:
                    break
            if timeout is not None:
                if expired is None:
                    if timeout <= 0:
                        return _timed_out(timeout, default, len(mailbox), patterns)
                    expired = [False]
                    handle = runtime.clock.call_later(timeout, _expire, proc, expired)
                elif expired[0]:
                    return _timed_out(timeout, default, len(mailbox), patterns)
            waiter = proc.waiter = runtime._loop.create_future()
            try:
                await waiter
            finally:
                proc.waiter = None
            if proc.pid._proc is None:
                raise ProcessExit(proc.exit_reason)
    finally:
        if handle is not None:
            handle.cancel()
    proc.handled += 1
    if not proc.handled & 0xFF:
        runtime.wakeups += 1  # runnable while it lets the others have a turn
        await asyncio.sleep(0)
    return message


def receive_nowait(*patterns: Any, default: Any = None) -> Any:
    """Take the first message that matches ``patterns`` if one is waiting; never waits.

    Returns ``default`` (None) when nothing matches. Unlike ``receive`` it may be used
    in any process, an actor's plain ``def`` handler included, since it does not wait.
    """
    proc = _context.current_process()
    if proc is None:
        raise NotInProcessError(
            "receive_nowait() can only be called inside a beamish process; run the code in "
            "one: beamish.spawn(fn), beamish.run(main), or `async with beamish.as_process():`"
        )
    mailbox = proc.mailbox
    if not mailbox:
        return default
    matcher = compile_patterns(patterns) if patterns else None
    if matcher is None:
        proc.handled += 1
        return mailbox.popleft()
    for index, message in enumerate(mailbox):
        if matcher(message):
            del mailbox[index]
            proc.handled += 1
            return message
    return default


def _timed_out(timeout: float, default: Any, pending: int, patterns: tuple[Any, ...]) -> Any:
    if default is not _RAISE:
        return default
    if patterns:
        raise TimeoutError(
            f"receive() timed out after {timeout}s: none of the {pending} message(s) in the "
            f"mailbox matched {', '.join(map(repr, patterns))}"
        )
    raise TimeoutError(f"receive() timed out after {timeout}s with an empty mailbox")


async def sleep(seconds: float) -> None:
    """Sleep on the runtime's clock (a virtual clock in tests); like ``asyncio.sleep``."""
    runtime = _context.current_runtime()
    if seconds <= 0:
        runtime.wakeups += 1  # runnable while it lets the others have a turn
        await asyncio.sleep(0)
        return
    future: asyncio.Future[None] = runtime._loop.create_future()
    handle = runtime.clock.call_later(seconds, _resolve, future, runtime)
    try:
        await future
    finally:
        handle.cancel()


def _resolve(future: asyncio.Future[None], runtime: Runtime) -> None:
    if not future.done():
        future.set_result(None)
        runtime.wakeups += 1
