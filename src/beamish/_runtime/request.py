"""Request and reply: the kernel's call primitive, with no late replies.

``await request(dest, payload)`` delivers ``Request(reply_to, payload)`` to ``dest`` and
waits for ``reply(reply_to, value)``, from the receiver or from any process it hands
``reply_to`` to. While it waits, the caller watches ``dest``: if ``dest`` exits first the call
fails with its exit reason. Failures raise ``CallError(why, call)`` (a ``ProcessExit``, so an
uncaught failure ends the caller with ``(why, call)``, as in OTP), where ``why`` is:

- ``"noproc"``: ``dest`` is a dead pid or a name nobody holds;
- ``"calling_self"``: a process asked itself (it would wait forever);
- ``"timeout"``: no reply within ``timeout`` seconds (``None`` waits forever);
- the exit reason of ``dest`` if it exits before replying.

As with the BEAM's process aliases (EEP 53), once the caller stops waiting the ``ReplyTo``
is dead: a late reply is dropped and never reaches the caller's mailbox. Replies resolve a
future directly instead of passing through the caller's mailbox, which is why an actor's
``async`` handler can make calls too.

The timeout costs no timer for a call answered within one loop turn: a check right after
the request's turn (at the end of the scheduler's tick when one is due, as it is for an
actor target, else a callback of its own) arms a timer for the time left only if no reply
came.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from beamish._errors import CallError
from beamish._runtime import context as _context
from beamish._runtime.isolation import ATOMIC, isolate
from beamish._runtime.pairs import put, take
from beamish._runtime.pid import NodeId, Pid
from beamish._runtime.remote import node_of

if TYPE_CHECKING:
    from beamish._runtime.clock import TimerHandle
    from beamish._runtime.process import Process
    from beamish._runtime.runtime import Runtime

__all__ = ["ReplyTo", "Request", "reply", "request"]


class ReplyTo:
    """Where the answer to one request goes. Opaque; pass it to ``reply``.

    ``reply_to.pid`` is the caller's pid (None if the caller is not a process).
    """

    __slots__ = ("_alias", "_future", "_node", "_runtime", "_started", "_timeout", "_timer", "pid")

    _runtime: Runtime
    _started: float
    _timeout: float

    def __init__(self, pid: Pid | None, future: asyncio.Future[Any] | None) -> None:
        self.pid = pid
        self._future = future
        self._timer: TimerHandle | None = None
        self._alias: int | None = None  # set when it crosses the wire (Remote._alias)
        self._node: NodeId | None = None  # the caller's node, for one that came over the wire

    @classmethod
    def _remote(cls, node: NodeId, pid: Pid | None, alias: int) -> ReplyTo:
        """The ``ReplyTo`` of a call waiting on another node (the wire codec makes these)."""
        reply_to = cls(pid, None)
        reply_to._node = node
        reply_to._alias = alias
        return reply_to

    @property
    def active(self) -> bool:
        """True while the caller still waits for the reply (always, for a remote caller:
        its node drops a late reply)."""
        return self._future is None or not self._future.done()

    def __repr__(self) -> str:
        return f"ReplyTo({self.pid!r}, {'waiting' if self.active else 'done'})"

    def __call__(self, _ref: Any, _pid: Pid, reason: Any) -> None:
        # the watched destination exited before replying
        future = self._future
        if future is not None and not future.done():
            future.set_exception(_Failed(reason))
            self._runtime.wakeups += 1

    def _arm(self) -> None:
        # Runs one loop turn after the request was sent: most replies have come by then,
        # and those calls never pay for a timer.
        if self._future is None or self._future.done():
            return
        clock = self._runtime.clock
        remaining = self._timeout - (clock.now() - self._started)
        if remaining <= 0:
            self._expire()
        else:
            self._timer = clock.call_later(remaining, self._expire)

    def _expire(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_exception(_Failed("timeout"))
            self._runtime.wakeups += 1


class _Failed(Exception):
    """Carries a failure reason from the watcher or the timer to the waiting caller."""

    def __init__(self, why: Any) -> None:
        self.why = why


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
    if future is None:  # the caller waits on another node
        runtime = _context.current_runtime()
        if runtime.distribution is not None:
            runtime.distribution.reply(reply_to._node, reply_to._alias, value)  # type: ignore[arg-type]
        return
    if not future.done():
        future.set_result(value if type(value) in ATOMIC else isolate(value))
        reply_to._runtime.wakeups += 1


async def request(
    dest: Pid | str | tuple[str, str], payload: Any, *, timeout: float | None = 5.0,
    what: str = "request", server: Any = None,
) -> Any:
    """Send ``Request(reply_to, payload)`` to ``dest`` and return the reply.

    Raises ``CallError(why, (what, server, payload, timeout))`` on failure, where ``server``
    is how the caller named the destination (``dest`` if not given).
    """
    me = _context.current_process()
    runtime = me.runtime if me is not None else _context.current_runtime()
    if type(dest) is Pid:
        target: Process | None = dest._proc
        if target is None and dest._node.index:
            return await _remote_request(runtime, me, dest, payload, timeout, what, server)
    elif type(dest) is str:
        target = runtime._names.get(dest)
    elif type(dest) is tuple and len(dest) == 2 and all(type(d) is str for d in dest):
        if dest[1] != runtime.node_id.name:
            return await _remote_request(runtime, me, dest, payload, timeout, what, server)
        target = runtime._names.get(dest[0])
    else:
        raise TypeError(
            f"request() needs a Pid, a registered name (str) or (name, node), got {dest!r}"
        )
    if target is None or target is me:
        why = "noproc" if target is None else "calling_self"
        raise CallError(why, (what, dest if server is None else server, payload, timeout))
    future: asyncio.Future[Any] = runtime._loop.create_future()
    reply_to = ReplyTo(None if me is None else me.pid, future)
    reply_to._runtime = runtime
    if type(payload) not in ATOMIC:
        payload = isolate(payload)
    scheduler = target.runtime.scheduler
    if (scheduler.inline and not target.mailbox and target.actor is not None
            and not target.busy and not target.scheduled and scheduler.current is None
            and target.runtime is runtime):
        # an idle actor: its handler runs now (Scheduler.run_now), and most calls are
        # answered before this line returns, with no turn of the loop
        scheduler.inline -= 1
        scheduler._context.run(scheduler.run_now, target, Request(reply_to, payload))
        if future.done():
            return future.result()
        if target.pid._proc is None:  # it ended handling the request
            future.cancel()
            raise CallError(target.exit_reason,
                            (what, dest if server is None else server, payload, timeout))
    else:
        runtime._deliver(target, Request(reply_to, payload))
    # put(target.watchers, reply_to, reply_to), inline: the call's path
    watchers = target.watchers
    if watchers is None:
        target.watchers = (reply_to, reply_to)  # type: ignore[assignment]
    elif type(watchers) is dict:
        watchers[reply_to] = reply_to  # type: ignore[index]
    else:
        target.watchers = put(watchers, reply_to, reply_to)  # type: ignore[arg-type]
    if timeout is not None:
        reply_to._timeout = timeout
        reply_to._started = runtime.clock.now()
        scheduler = runtime.scheduler
        if scheduler.pending:  # the tick that runs an actor target arms it, if still needed
            scheduler.arming.append(reply_to)
        else:
            runtime._loop.call_soon(reply_to._arm)
    try:
        return await future
    except _Failed as failed:
        why = failed.why
        failed.__traceback__ = None  # the future holds it: no cycle through this frame
        raise CallError(why, (what, dest if server is None else server, payload, timeout)) from None
    finally:
        if reply_to._timer is not None:
            reply_to._timer.cancel()
        if not future.done():
            future.cancel()
        if target.watchers is not None:
            target.watchers = take(target.watchers, reply_to)[0]  # type: ignore[misc]


async def _remote_request(
    runtime: Runtime, me: Process | None, dest: Pid | tuple[str, str], payload: Any,
    timeout: float | None, what: str, server: Any,
) -> Any:
    """A request to a process of another node: the reply comes back through an alias, and
    a monitor on the destination ends the call if it exits or its node goes down."""
    call = (what, dest if server is None else server, payload, timeout)
    node = node_of(dest)
    dist = runtime.distribution
    if dist is None or not dist.is_connected(node):
        raise CallError(("nodedown", node), call)
    future: asyncio.Future[Any] = runtime._loop.create_future()
    reply_to = ReplyTo(None if me is None else me.pid, future)
    reply_to._runtime = runtime
    alias = runtime._alias(reply_to)
    ref = runtime.make_ref()
    runtime._monitor_remote(reply_to, dest, ref)
    try:
        runtime._send_remote(dest, Request(reply_to, payload))  # raises if it cannot be encoded
        if timeout is not None:
            reply_to._runtime = runtime
            reply_to._timeout = timeout
            reply_to._started = runtime.clock.now()
            runtime._loop.call_soon(reply_to._arm)
        return await future
    except _Failed as failed:
        why = failed.why
        failed.__traceback__ = None
        if type(why) is str and why == "noconnection":
            why = ("nodedown", node)
        raise CallError(why, call) from None
    finally:
        if reply_to._timer is not None:
            reply_to._timer.cancel()
        if not future.done():
            future.cancel()
        runtime._aliases.pop(alias, None)
        runtime._demonitor_remote(ref)
