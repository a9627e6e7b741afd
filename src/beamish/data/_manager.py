"""The pool manager (hidden): hands idle connections to callers, in order.

How it works. A GenServer around ``PoolQueue`` (pure, ``_queue.py``). A ``Checkout`` call
gets an idle connection at once, waits in the queue (the call stays unanswered), or is
turned away when the queue is full. The manager never times a waiter out itself: the caller's
call has the queue timeout, and a waiter that stopped waiting is skipped (its ``ReplyTo`` is
no longer active) and removes itself with ``Cancel``. When a connection comes back
(``Idle``) it goes to the first caller still waiting, or rests.

Every ``idle_interval`` a sweep sends a health check to the connections that rested that
long; they are out of the queue until they answer ``Idle`` (or exit). The manager monitors
every registered connection process, so one that exits is forgotten at once.
"""

from __future__ import annotations

from typing import Any

from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import monitor, monotonic, send, send_after
from beamish._runtime.messages import Down
from beamish._runtime.pid import Pid, Ref
from beamish._runtime.request import ReplyTo, reply
from beamish.data._driver import DriverConnection
from beamish.data._lease import Connection
from beamish.data._messages import (
    ABORTED,
    Cancel,
    Checkin,
    Checkout,
    Idle,
    Leased,
    Register,
    Tick,
)
from beamish.data._queue import OVERLOADED, PoolQueue
from beamish.data._table import PoolTable, find_table

__all__ = ["OVERLOADED_REPLY", "PoolManager"]

_SWEEP = Tick("sweep")
_PING = Tick("ping")
OVERLOADED_REPLY = "overloaded"


class _Slot:
    __slots__ = ("conn", "ref")

    def __init__(self, conn: DriverConnection) -> None:
        self.conn = conn
        self.ref: Ref | None = None  # the checkout ref of its lease, while leased


def _is_waiting(reply_to: ReplyTo) -> bool:
    return reply_to.active


class PoolManager(GenServer):
    """The manager of one pool; its argument is the pool's name."""

    __slots__ = ("by_ref", "queue", "slots", "table")

    table: PoolTable
    queue: PoolQueue[Pid, ReplyTo]
    slots: dict[Pid, _Slot]
    by_ref: dict[Ref, Pid]

    def init(self, name: str) -> Any:
        table: PoolTable = find_table(name, running=False)
        self.table = table
        self.queue = PoolQueue(table.pool.max_waiting, _is_waiting)
        self.slots = {}
        self.by_ref = {}
        table.queue = self.queue
        table.manager = self.pid
        table.connected = 0
        table.in_use = 0
        send_after(self.pid, _SWEEP, table.pool.idle_interval)
        return Ok(None)

    def handle_call(self, request: Any, from_: ReplyTo, state: Any) -> Any:
        if type(request) is Checkout:
            got = self.queue.checkout(request.ref, from_, monotonic())
            if got is None:
                return NoReply(state)  # answered when a connection comes back
            if got is OVERLOADED:
                self.table.overloads += 1
                return Reply(OVERLOADED_REPLY, state)
            return Reply(self._lease(got, from_.pid, request.ref), state)  # type: ignore[arg-type]
        return super().handle_call(request, from_, state)

    def _lease(self, pid: Pid, caller: Pid | None, ref: Ref) -> Connection:
        slot = self.slots[pid]
        slot.ref = ref
        self.by_ref[ref] = pid
        table = self.table
        table.in_use += 1
        table.checkouts += 1
        if caller is not None:
            send(pid, Leased(caller, ref))
        return Connection(table, slot.conn, pid, ref)

    def handle_info(self, message: Any, state: Any) -> Any:
        kind = type(message)
        if kind is Idle:
            slot = self.slots.get(message.pid)
            if slot is not None:
                if slot.ref is not None:
                    self.by_ref.pop(slot.ref, None)
                    slot.ref = None
                    self.table.in_use -= 1
                self._rest(message.pid)
        elif kind is Register:
            monitor(message.pid)
            self.slots[message.pid] = _Slot(message.conn)
            self.table.connected += 1
            self._rest(message.pid)
        elif kind is Cancel:
            if not self.queue.cancel(message.ref):
                pid = self.by_ref.get(message.ref)
                if pid is not None:  # handed out as the caller gave up: take it back
                    send(pid, Checkin(message.ref, ABORTED))
        elif kind is Down:
            self._forget(message.pid)
        elif kind is Tick:
            self._sweep()
        else:
            return super().handle_info(message, state)
        return NoReply(state)

    def _rest(self, pid: Pid) -> None:
        """A connection is free: to the first caller still waiting, or to the idle ones."""
        waiter = self.queue.checkin(pid, monotonic())
        if waiter is None:
            return
        token = waiter.token
        reply(token, self._lease(pid, token.pid, waiter.ref))

    def _forget(self, pid: Pid) -> None:
        slot = self.slots.pop(pid, None)
        if slot is None:
            return
        self.table.connected -= 1
        if slot.ref is not None:
            self.by_ref.pop(slot.ref, None)
            self.table.in_use -= 1
        self.queue.discard(pid)

    def _sweep(self) -> None:
        interval = self.table.pool.idle_interval
        for pid in self.queue.stale(monotonic(), interval):
            send(pid, _PING)
        send_after(self.pid, _SWEEP, interval)

    def terminate(self, reason: Any, state: Any) -> None:
        if self.table.manager == self.pid:
            self.table.manager = None
