"""``Connection``: a checked-out connection, as the process holding it sees it.

The manager hands one to a caller in reply to its checkout; the caller then runs its
statements on the driver connection directly (no message per statement), until its block
ends and it checks the connection in. A ``Connection`` is a lease, not a shared object: only
the process it was handed to uses it, and only until it is checked in; after that every
method raises ``TransactionError``.

Each statement goes through ``_run``, which turns the driver's "the connection is gone"
errors into ``ConnectionLost``, remembers how the lease stands (so the checkin tells the
connection process whether to roll back, or to give up the connection), and, when a
telemetry handler is attached, times the statement for the ``beamish.data.query`` event.
``_lost`` is the one place that decides what is a lost connection: an error the driver's
``is_disconnect`` calls one, or any error of a statement whose connection is closed or
closing by the time it fails.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from beamish._errors import ConnectionLost, TransactionError
from beamish._runtime.api import send
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid, Ref
from beamish.data._messages import ABORTED, BROKEN, CLOSED, OPEN, Checkin
from beamish.data._telemetry import QUERY

if TYPE_CHECKING:
    from beamish.data._driver import DriverConnection
    from beamish.data._table import PoolTable

__all__ = ["Connection"]


@mark_shared  # handed from the manager to one caller: a lease, not shared state
class Connection:
    """A connection checked out of a pool, for the process that checked it out.

    Got from ``async with db.checkout() as conn`` or ``async with db.transaction() as
    conn``; the pool's own query functions use it too while the block is open, so code
    inside may call either ``conn.fetch(...)`` or ``db.fetch(...)``. Parameters are bound by
    the driver: ``?1``/``?`` placeholders for SQLite, ``$1`` for PostgreSQL.
    """

    __slots__ = ("_conn", "_depth", "_queue_time", "_ref", "_server", "_state", "_table")

    _table: PoolTable
    _conn: DriverConnection
    _server: Pid
    _ref: Ref
    _state: str
    _depth: int
    _queue_time: float | None

    def __init__(self, table: PoolTable, conn: DriverConnection, server: Pid, ref: Ref) -> None:
        self._table = table
        self._conn = conn
        self._server = server
        self._ref = ref
        self._state = OPEN
        self._depth = 0
        self._queue_time = None

    def __repr__(self) -> str:
        return f"<Connection of pool {self._table.name!r} ({self._state}) via {self._server!r}>"

    # -- the query API -------------------------------------------------------------------

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed (0 if none apply)."""
        count: int = await self._run(self._conn.execute, sql, args)
        return count

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once for each parameter sequence in ``args``."""
        await self._run(self._conn.execute_many, sql, list(args))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """All the rows of a query (each a ``Row``: ``row[0]``, ``row["name"]``)."""
        rows: list[Any] = await self._run(self._conn.fetch, sql, args)
        return rows

    async def fetch_one(self, sql: str, *args: Any) -> Any:
        """The first row of a query, or None if it has none."""
        return await self._run(self._conn.fetch_one, sql, args)

    async def fetch_value(self, sql: str, *args: Any, column: int = 0) -> Any:
        """One value of the first row (its first column by default), or None."""
        row = await self._run(self._conn.fetch_one, sql, args)
        return None if row is None else row[column]

    async def execute_script(self, sql: str) -> None:
        """Run several ``;``-separated statements, without parameters (e.g. a schema)."""
        await self._run(_script_of(self._conn), sql, ())

    @property
    def raw(self) -> Any:
        """The driver's own connection (``sqlite3.Connection``, ``asyncpg.Connection``).

        For what this API does not cover; it stays this lease's: do not keep it after the
        block, and leave it as you found it (no open transaction, no session changes).
        """
        self._check()
        return self._conn.raw

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on this connection."""
        return self._depth > 0 or self._conn.in_transaction()

    @property
    def pool(self) -> str:
        return self._table.name

    # -- internals -----------------------------------------------------------------------

    def _check(self) -> None:
        state = self._state
        if state is OPEN:
            return
        if state is CLOSED:
            raise TransactionError(
                f"this connection of pool {self._table.name!r} was checked in when its "
                "block ended; use it only inside its `async with` block"
            )
        if state is BROKEN:
            raise ConnectionLost(pool=self._table.name, reason="it was lost earlier in this block")
        raise TransactionError(
            f"the work on this connection of pool {self._table.name!r} was cancelled, so its "
            "transaction is being rolled back; leave the block (and start again if needed)"
        )

    async def _run(self, fn: Callable[[str, Any], Awaitable[Any]], sql: str, args: Any) -> Any:
        if self._state is not OPEN:
            self._check()
        if not QUERY.handlers:
            try:
                return await fn(sql, args)
            except Exception as exc:
                lost = self._lost(exc)
                if lost is None:
                    raise
                raise lost from exc
            except BaseException:  # cancelled or killed mid-statement
                self._state = ABORTED
                raise
        started = time.perf_counter()
        error: str | None = None
        try:
            return await fn(sql, args)
        except Exception as exc:
            error = type(exc).__name__
            lost = self._lost(exc)
            if lost is None:
                raise
            raise lost from exc
        except BaseException as exc:
            error = type(exc).__name__
            self._state = ABORTED
            raise
        finally:
            queue_time, self._queue_time = self._queue_time, None
            QUERY.emit(
                {"query_time": time.perf_counter() - started, "queue_time": queue_time},
                {"pool": self._table.name, "sql": sql, "error": error},
            )

    def _lost(self, exc: Exception) -> ConnectionLost | None:
        """A ConnectionLost if ``exc`` means the connection is gone (the lease is then
        broken), else None: a query's own error leaves the connection usable."""
        if not (self._table.driver.is_disconnect(exc) or self._conn.is_closed()):
            return None
        self._state = BROKEN
        return ConnectionLost(pool=self._table.name, reason=f"{type(exc).__name__}: {exc}")

    def _checkin(self) -> None:
        """Give the connection back (once): its process resets it if the lease ended badly."""
        state = self._state
        if state is CLOSED:
            return
        self._state = CLOSED
        if state is OPEN and self._depth:
            state = ABORTED  # a transaction block is still open: roll it back
        send(self._server, Checkin(self._ref, state))


def _script_of(conn: DriverConnection) -> Callable[[str, Any], Awaitable[None]]:
    def script(sql: str, _args: Any) -> Awaitable[None]:
        return conn.execute_script(sql)

    return script
