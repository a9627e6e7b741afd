"""Writing through an ASGI ``send`` without a task per write.

An ASGI ``send(message)`` is a coroutine, but on a connection that keeps up it never waits:
uvicorn's WebSocket protocols and its HTTP response bodies (which Server-Sent Events write),
for two, only wait (on an ``asyncio.Event`` that is set) while the transport's write buffer
is full. So ``write_now`` runs the coroutine by hand, one step, right where the process
handles its message: when it finishes in that step, the frame is written and nothing was
scheduled. When it does wait (backpressure, or a server that always yields), the rest of it
is finished by a task, and ``write_now`` returns that task so the caller can queue what
comes next behind it.

The task resumes the coroutine exactly as an asyncio task would: it takes the future the
coroutine yielded (clearing its ``_asyncio_future_blocking`` flag, as a task does), waits for
it (or gives the loop one turn for a bare ``yield``), then steps the coroutine again,
so the coroutine sees the future's result or error as if it had awaited it in a task of its
own. Cancelling the task closes the coroutine.

The one thing such a coroutine cannot do in its first step is need to *be* a task
(``asyncio.current_task()``, ``asyncio.timeout``, anyio's cancel scopes): no ASGI server's
``send`` that we know of does, uvicorn's and hypercorn's among them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any

__all__ = ["write_now"]


def write_now(
    send: Callable[[dict[str, Any]], Awaitable[None]], message: dict[str, Any]
) -> asyncio.Task[None] | None:
    """Run ``send(message)`` as far as it goes without waiting.

    Returns None when it is done, or the task that finishes it when it had to wait. Raises
    what ``send`` raised in its first step.
    """
    awaitable = send(message)
    # A coroutine is stepped as it is; any other awaitable (granian's send returns a future
    # object from Rust whose iterator has no ``send``) is awaited from a coroutine of ours.
    steps = awaitable if type(awaitable) is CoroutineType else _awaiting(awaitable)
    try:
        yielded = steps.send(None)
    except StopIteration:
        return None
    # The rest runs with no process current: it only finishes the server's send.
    return asyncio.get_running_loop().create_task(
        _finish(steps, yielded), name="beamish websocket write", context=contextvars.Context()
    )


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _finish(steps: Any, yielded: Any) -> None:
    while True:
        if yielded is None:  # a bare yield: give the loop one turn
            await asyncio.sleep(0)
        elif getattr(yielded, "_asyncio_future_blocking", None) is not None:
            yielded._asyncio_future_blocking = False  # taken, as a task takes it
            try:
                await yielded
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    steps.close()
                    raise
            except Exception:
                pass  # the coroutine sees the future's error when it is stepped again
        else:
            try:
                yielded = steps.throw(RuntimeError(
                    f"an ASGI send yielded {yielded!r}, which asyncio cannot wait for"
                ))
            except StopIteration:
                return
            continue
        try:
            yielded = steps.send(None)
        except StopIteration:
            return
