"""The connection process (hidden): owns one driver connection of a pool.

How it works. It connects after ``init`` (so a pool starts even while its database is
down), retrying with exponential backoff and jitter, and registers with the pool's manager.
While one of its leases is out it monitors the caller; the lease ends with the caller's
``Checkin`` or with its death (``Down``). A lease that ended badly (an error, a cancellation,
a death, a transaction left open) is rolled back and the connection reset before the
process tells the manager it is idle again.

A connection that is gone (closed by the server, failing its health check or its reset)
makes the process exit with ``("connection_lost", why)``; its supervisor starts a new one,
which waits first if its slot's previous processes crashed soon after connecting (the
``RestartHistory`` of the slot, kept in the pool's table). The process traps exits so that
``terminate`` closes the connection when the pool stops; a process killed outright leaves
its connection to the driver's finalizer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from typing import Any

from beamish._otp.gen_server.server import Continue, GenServer, NoReply, Ok, Stop
from beamish._runtime.api import demonitor, monitor, send, send_after, trap_exit
from beamish._runtime.messages import Down, is_clean_exit
from beamish._runtime.pid import Pid, Ref
from beamish.data._driver import DriverConnection
from beamish.data._messages import OPEN, Checkin, Idle, Leased, Register, Tick
from beamish.data._queue import backoff
from beamish.data._table import PoolTable, find_table

__all__ = ["ConnectionServer"]

_log = logging.getLogger("beamish.data")
_CONNECT = Tick("connect")
_CLOSED = Tick("closed")


class ConnectionServer(GenServer):
    """One connection of a pool; its argument is ``(pool name, slot index)``."""

    __slots__ = (
        "__weakref__", "attempt", "caller", "conn", "connected_at", "holder", "lease", "slot",
        "table",
    )

    table: PoolTable
    slot: int
    conn: DriverConnection | None
    lease: Ref | None
    caller: Ref | None
    holder: Pid | None
    attempt: int
    connected_at: float

    def init(self, arg: tuple[str, int]) -> Any:
        trap_exit(True)
        self.table = find_table(arg[0])
        self.slot = arg[1]
        self.conn = None
        self.lease = None
        self.caller = None
        self.holder = None
        self.attempt = 0
        self.connected_at = 0.0
        pool = self.table.pool
        delay = self.table.slots[self.slot].delay(*pool.backoff, random.random())
        if delay <= 0:
            return Ok(None, Continue("connect"))
        send_after(self.pid, _CONNECT, delay)
        return Ok(None)

    # -- connecting --------------------------------------------------------------------

    def handle_continue(self, term: Any, state: Any) -> Any:
        return self._connect()

    async def _connect(self) -> Any:
        table = self.table
        pool = table.pool
        try:
            conn = await asyncio.wait_for(table.driver.connect(), pool.connect_timeout)
        except Exception as exc:
            self.attempt += 1
            table.connect_errors += 1
            table.last_connect_error = _describe(exc)
            delay = backoff(self.attempt, *pool.backoff, random.random())
            log = _log.warning if self.attempt == 1 else _log.debug
            log("pool %r could not connect to %s (attempt %d): %s; retrying in %.2fs",
                table.name, table.driver.describe(), self.attempt, _describe(exc), delay)
            send_after(self.pid, _CONNECT, delay)
            return NoReply(None)
        if self.attempt > 1:
            _log.warning("pool %r connected to %s after %d failed attempts", table.name,
                         table.driver.describe(), self.attempt)
        self.attempt = 0
        self.conn = conn
        self.connected_at = time.monotonic()
        weakref.finalize(self, conn.terminate)  # killed outright: no terminate runs
        me = self.pid
        conn.on_close(lambda: send(me, _CLOSED))
        manager = table.manager
        if manager is not None:
            send(manager, Register(me, conn))
        return NoReply(None)

    # -- leases ------------------------------------------------------------------------

    def handle_info(self, message: Any, state: Any) -> Any:
        kind = type(message)
        if kind is Leased:
            self.lease = message.ref
            self.holder = message.caller
            self.caller = monitor(message.caller)
            return NoReply(state)
        if kind is Checkin:
            if message.ref != self.lease:
                return NoReply(state)  # a stale checkin (its lease already ended)
            if self.caller is not None:
                demonitor(self.caller, flush=True)
            return self._end_lease(message.state)
        if kind is Down:
            if message.ref != self.caller:
                return NoReply(state)
            owned = self.table.owners.get(message.pid)  # a block it could not close
            if owned is not None and owned._ref == self.lease:
                del self.table.owners[message.pid]
            return self._end_lease("aborted")  # the caller died holding the lease
        if kind is Tick:
            if message.kind == "connect":
                return self._connect()
            if message.kind == "ping":
                return self._check()
            if message.kind == "closed":
                return self._lost("the server closed the connection")
        return super().handle_info(message, state)

    def _end_lease(self, how: str) -> Any:
        self.lease = None
        self.caller = None
        self.holder = None
        conn = self.conn
        if conn is None:
            return NoReply(None)
        if how == "broken":
            return self._lost("it broke under a query")
        if how == OPEN and not conn.in_transaction():
            self._idle()
            return NoReply(None)
        if how == OPEN:
            _log.warning(
                "a connection of pool %r was checked in with a transaction open; rolling it "
                "back (use `async with db.transaction():` to commit)", self.table.name,
            )
        return self._reset()

    async def _reset(self) -> Any:
        assert self.conn is not None
        try:
            await asyncio.wait_for(self.conn.reset(), self.table.pool.connect_timeout)
        except Exception as exc:
            return self._lost(f"its reset failed: {_describe(exc)}")
        self._idle()
        return NoReply(None)

    async def _check(self) -> Any:
        if self.conn is None:
            return NoReply(None)
        try:
            await asyncio.wait_for(self.conn.ping(), self.table.pool.connect_timeout)
        except Exception as exc:
            return self._lost(f"it failed its health check: {_describe(exc)}")
        self._idle()
        return NoReply(None)

    def _idle(self) -> None:
        manager = self.table.manager
        if manager is not None:
            send(manager, Idle(self.pid))

    def _lost(self, why: str) -> Stop:
        self.table.disconnects += 1
        _log.warning("pool %r lost a connection to %s: %s; replacing it", self.table.name,
                     self.table.driver.describe(), why)
        return Stop(("connection_lost", why), None)

    # -- stopping ----------------------------------------------------------------------

    async def terminate(self, reason: Any, state: Any) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            if not is_clean_exit(reason):
                self.table.slots[self.slot].crashed(time.monotonic() - self.connected_at)
            await conn.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
