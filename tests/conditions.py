"""Waiting for a condition, where neither a message nor ``wait_until_idle`` can tell.

``wait_until_idle`` knows what processes do; it cannot know when a thread finishes, a
socket is read, a real-clock timer fires or a subprocess writes. For those the tests poll
the condition itself, with a generous deadline, rather than sleep for a guessed while.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def eventually(
    condition: Callable[[], Any], *, deadline: float = 10.0, what: str = "the condition",
) -> Any:
    """Poll ``condition`` (a function, maybe async) until it is true; return its value.

    Polls on the loop's real clock (a virtual clock would never move), every few
    milliseconds; raises ``AssertionError`` naming ``what`` after ``deadline`` seconds.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"{what} did not happen within {deadline}s")
        await asyncio.sleep(0.005)
