"""Request and reply: the kernel's call primitive, with no late replies.

``await request(dest, payload)`` delivers ``Request(reply_to, payload)`` to ``dest`` and
waits for ``reply(reply_to, value)``, from the receiver or from any process it hands
``reply_to`` to. While it waits, the caller watches ``dest``: if ``dest`` exits first the call
fails with its exit reason. The failure reasons, raised as ``ProcessExit(reason)``:

- ``"noproc"``: ``dest`` is a dead pid or a name nobody holds;
- ``"calling_self"``: a process asked itself (it would wait forever);
- ``"timeout"``: no reply within ``timeout`` seconds (``None`` waits forever);
- the exit reason of ``dest`` if it exits before replying.

As with the BEAM's process aliases (EEP 53), once the caller stops waiting the ``ReplyTo``
is dead: a late reply is dropped and never reaches the caller's mailbox. Replies resolve a
future directly instead of passing through the caller's mailbox, which is why an actor's
``async`` handler can make calls too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from beamish._errors import ProcessExit
from beamish._runtime import context as _context
from beamish._runtime.isolation import ATOMIC, isolate
from beamish._runtime.pid import Pid

if TYPE_CHECKING:
    from beamish._runtime.process import Process

__all__ = ["ReplyTo", "Request", "reply", "request"]


class ReplyTo:
    """Where the answer to one request goes. Opaque; pass it to ``reply``.

    ``reply_to.pid`` is the caller's pid (None if the caller is not a process).
    """

    __slots__ = ("_future", "pid")

    def __init__(self, pid: Pid | None, future: asyncio.Future[Any]) -> None:
        self.pid = pid
        self._future = future

    @property
    def active(self) -> bool:
        """True while the caller still waits for the reply."""
        return not self._future.done()

    def __repr__(self) -> str:
        return f"ReplyTo({self.pid!r}, {'waiting' if self.active else 'done'})"

    def __call__(self, _ref: Any, _pid: Pid, reason: Any) -> None:
        # the watched destination exited before replying
        if not self._future.done():
            self._future.set_exception(ProcessExit(reason))

    def _expire(self) -> None:
        if not self._future.done():
            self._future.set_exception(ProcessExit("timeout"))


class Request:
    """The message ``request()`` delivers: reply to ``reply_to`` about ``payload``::

        match await receive():
            case Request(reply_to, ("add", a, b)):
                reply(reply_to, a + b)
    """

    __slots__ = ("payload", "reply_to")
    __match_args__ = ("reply_to", "payload")

    def __init__(self, reply_to: ReplyTo, payload: Any) -> None:
        self.reply_to = reply_to
        self.payload = payload

    def __repr__(self) -> str:
        return f"Request({self.reply_to!r}, {self.payload!r})"


ATOMIC.update((ReplyTo, Request))


def reply(reply_to: ReplyTo, value: Any) -> None:
    """Answer a request. Dropped silently if the caller stopped waiting."""
    future = reply_to._future
    if not future.done():
        future.set_result(isolate(value))


async def request(dest: Pid | str, payload: Any, *, timeout: float | None = 5.0) -> Any:
    """Send ``Request(reply_to, payload)`` to ``dest`` and return the reply."""
    me = _context.current_process()
    runtime = me.runtime if me is not None else _context.current_runtime()
    if type(dest) is Pid:
        target: Process | None = dest._proc
    elif type(dest) is str:
        target = runtime._names.get(dest)
    else:
        raise TypeError(f"request() needs a Pid or a registered name (str), got {dest!r}")
    if target is None:
        raise ProcessExit("noproc")
    if target is me:
        raise ProcessExit("calling_self")
    future: asyncio.Future[Any] = runtime._loop.create_future()
    reply_to = ReplyTo(None if me is None else me.pid, future)
    watchers = target.watchers
    if watchers is None:
        watchers = target.watchers = {}
    watchers[reply_to] = reply_to  # type: ignore[index]
    runtime._deliver(target, Request(reply_to, isolate(payload)))
    handle = None if timeout is None else runtime.clock.call_later(timeout, reply_to._expire)
    try:
        return await future
    finally:
        if handle is not None:
            handle.cancel()
        if not future.done():
            future.cancel()
        watchers = target.watchers
        if watchers:
            watchers.pop(reply_to, None)  # type: ignore[call-overload]
