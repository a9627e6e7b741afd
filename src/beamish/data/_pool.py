"""``Pool``: a supervised pool of database connections, reached by message passing.

The user-facing side. A ``Pool`` is an immutable description (driver, name, options) that
any process may hold; the running pool lives in the runtime: a supervisor named after the
pool, with the manager (``_manager.py``) and a supervisor of the connection processes
(``_server.py``) under it, ``rest_for_one``, and the pool's table (``_table.py``).

Everything here runs in the calling process. A query outside a block checks a connection
out (a call to the manager), runs on it directly, and checks it in (a message to its
connection process). A ``checkout()`` or ``transaction()`` block records its connection as
the process's own in the table (``owners``), so every query of that process inside the block
uses it, and a nested ``transaction()`` becomes a savepoint; another process never sees it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from beamish._errors import (
    CallError,
    NotInProcessError,
    PoolError,
    PoolOverloaded,
    PoolTimeout,
    StartError,
    TransactionError,
)
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._otp.supervisor.supervisor import Supervisor
from beamish._runtime.api import make_ref, send, whereis
from beamish._runtime.api import self as _self
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish._runtime.request import request
from beamish.data._driver import Driver
from beamish.data._lease import Connection
from beamish.data._manager import OVERLOADED_REPLY, PoolManager
from beamish.data._messages import ABORTED, OPEN, Cancel, Checkout
from beamish.data._server import ConnectionServer
from beamish.data._table import PoolTable, find_table, publish
from beamish.data._telemetry import CHECKOUT, QUERY, PoolStatistics

__all__ = ["Pool"]


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"Pool: {what} must be a number of seconds > 0, got {value!r}")
    return float(value)


@mark_shared
class Pool:
    """A pool of database connections, each owned by a supervised process.

    ::

        db = Pool(SQLite("app.db"), name="db", size=5)
        await db.start_link()                      # or db.child_spec() in a supervisor

        await db.execute("INSERT INTO tasks (title) VALUES (?1)", "write docs")
        rows = await db.fetch("SELECT id, title FROM tasks")
        async with db.transaction():               # commit on success, rollback on error
            await db.execute("UPDATE tasks SET done = 1 WHERE id = ?1", rows[0]["id"])

    Options (keyword-only):

    - ``name``: the pool's name (its supervisor is registered under it);
    - ``size``: connections to keep open (default: the driver's, 10 for PostgreSQL, 5 for an
      SQLite file, 1 for SQLite in memory);
    - ``queue_timeout``: seconds a caller waits for a free connection before
      ``PoolTimeout`` (default 5);
    - ``max_waiting``: callers allowed to wait at once; more are turned away at once with
      ``PoolOverloaded`` (default 1000);
    - ``connect_timeout``: seconds to open a connection, or to reset or health-check one;
    - ``idle_interval``: a connection idle this long gets a health check (default 1 s);
    - ``backoff``: ``(min, max)`` seconds between attempts to connect (default 0.05 to 2);
    - ``healthy_after``: a connection lost sooner than this after it opened counts as a
      crash loop, and its replacement waits (backs off) before connecting (default 5 s).

    Every function must be called from a beamish process. See ``docs/guides/data.md``.
    """

    __slots__ = (
        "backoff", "connect_timeout", "driver", "healthy_after", "idle_interval",
        "max_waiting", "name", "queue_timeout", "size",
    )

    driver: Driver
    name: str
    size: int
    queue_timeout: float
    max_waiting: int
    connect_timeout: float
    idle_interval: float
    backoff: tuple[float, float]
    healthy_after: float

    def __init__(
        self, driver: Driver, *, name: str, size: int | None = None, queue_timeout: float = 5.0,
        max_waiting: int = 1000, connect_timeout: float = 5.0, idle_interval: float = 1.0,
        backoff: tuple[float, float] = (0.05, 2.0), healthy_after: float = 5.0,
    ) -> None:
        missing = [m for m in ("connect", "param", "begin_sql", "is_disconnect", "describe")
                   if not callable(getattr(driver, m, None))]
        if missing:
            raise TypeError(
                f"Pool() takes a driver such as SQLite(path) or Postgres(dsn); {driver!r} lacks "
                f"{', '.join(missing)} (see beamish.data.Driver)"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"Pool(name=...) must be a non-empty str, got {name!r}")
        size = driver.default_size if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Pool: size must be an int >= 1, got {size!r}")
        limit = getattr(driver, "max_size", None)
        if limit is not None and size > limit:
            raise ValueError(
                f"Pool: {driver.describe()} allows at most {limit} connection(s) (an in-memory "
                f"database lives inside one connection), got size={size}; use a file to "
                "share a database between several connections"
            )
        if isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0:
            raise ValueError(f"Pool: max_waiting must be an int >= 0, got {max_waiting!r}")
        if not (isinstance(backoff, tuple) and len(backoff) == 2
                and 0 < backoff[0] <= backoff[1]):
            raise ValueError(f"Pool: backoff must be (min, max) seconds, 0 < min <= max, "
                             f"got {backoff!r}")
        self.driver = driver
        self.name = name
        self.size = size
        self.queue_timeout = _positive(queue_timeout, "queue_timeout")
        self.max_waiting = max_waiting
        self.connect_timeout = _positive(connect_timeout, "connect_timeout")
        self.idle_interval = _positive(idle_interval, "idle_interval")
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.healthy_after = _positive(healthy_after, "healthy_after")

    def __repr__(self) -> str:
        return f"Pool({self.driver!r}, name={self.name!r}, size={self.size})"

    # -- starting -------------------------------------------------------------------------

    def child_spec(self, arg: Any = None) -> ChildSpec:
        """How a supervisor starts this pool: a ``"supervisor"`` child with id
        ``("Pool", name)``. ``arg`` is unused (the pool carries its options)."""
        return ChildSpec(
            id=("Pool", self.name), start=(_start_pool, (self, True)), type="supervisor",
            modules=(Pool,),
        )

    async def start_link(self) -> Pid:
        """Start the pool linked to the caller; returns its supervisor's pid.

        Returns once the processes run, without waiting for the connections: they open in
        the background (callers wait for them in the queue). Raises ``StartError`` with
        ``("already_started", pid)`` if a pool of this name runs.
        """
        return await _start_pool(self, True)

    async def start(self) -> Pid:
        """Like ``start_link``, without the link."""
        return await _start_pool(self, False)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the pool: its connections close, callers still waiting get ``PoolError``."""
        await Supervisor.stop(self.name, "normal", timeout)

    # -- blocks ---------------------------------------------------------------------------

    def checkout(self, *, timeout: float | None = None) -> _Block:
        """``async with db.checkout() as conn:``: one connection for the whole block.

        Queries of this process inside the block (``conn.fetch`` or ``db.fetch``) use it. The
        connection goes back when the block ends; if it ended by an error, a cancellation or
        the process's death, it is rolled back and reset first. ``timeout`` overrides the
        pool's ``queue_timeout``. Nested in another block of the same pool, it reuses that
        block's connection.
        """
        return _Block(self, False, None, timeout)

    def transaction(self, *, isolation: str | None = None,
                    timeout: float | None = None) -> _Block:
        """``async with db.transaction() as conn:``: commit on success, roll back otherwise.

        Rolled back when the block raises, is cancelled, or its process dies. Nested in a
        transaction of the same process, it is a savepoint: an error rolls back only its
        own work (if the outer block catches the error). ``isolation``: for PostgreSQL
        ``"read_committed"``, ``"repeatable_read"``, ``"serializable"``; for SQLite
        ``"deferred"``, ``"immediate"`` (the default: writers queue on the lock),
        ``"exclusive"``. A transaction belongs to its process: other processes never see
        it, and cannot join it.
        """
        return _Block(self, True, isolation, timeout)

    # -- queries --------------------------------------------------------------------------

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed (0 if none apply)."""
        lease, mine = await _lease_for(self, "execute")
        try:
            return await lease.execute(sql, *args)
        finally:
            if not mine:
                lease._checkin()

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once for each parameter sequence in ``args``."""
        lease, mine = await _lease_for(self, "execute_many")
        try:
            await lease.execute_many(sql, args)
        finally:
            if not mine:
                lease._checkin()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """All the rows of a query; each row reads ``row[0]`` or ``row["column"]``."""
        lease, mine = await _lease_for(self, "fetch")
        try:
            return await lease.fetch(sql, *args)
        finally:
            if not mine:
                lease._checkin()

    async def fetch_one(self, sql: str, *args: Any) -> Any:
        """The first row of a query, or None if it has none."""
        lease, mine = await _lease_for(self, "fetch_one")
        try:
            return await lease.fetch_one(sql, *args)
        finally:
            if not mine:
                lease._checkin()

    async def fetch_value(self, sql: str, *args: Any, column: int = 0) -> Any:
        """One value of the first row (its first column by default), or None."""
        lease, mine = await _lease_for(self, "fetch_value")
        try:
            return await lease.fetch_value(sql, *args, column=column)
        finally:
            if not mine:
                lease._checkin()

    def param(self, n: int) -> str:
        """The driver's placeholder for parameter ``n`` (1-based): ``?1`` or ``$1``."""
        return self.driver.param(n)

    # -- introspection and telemetry ------------------------------------------------------

    def statistics(self) -> PoolStatistics:
        """A snapshot: connections open, idle, in use, callers waiting, and counters."""
        return find_table(self.name, running=False).statistics()

    # -- migrations -----------------------------------------------------------------------

    async def migrate(self, directory: str | Path) -> list[str]:
        """Apply the ``NNN_name.sql`` files of ``directory`` not applied yet, in order;
        returns the versions applied. See ``beamish.data.migrate``."""
        from beamish.data._migrations import migrate

        return await migrate(self, directory)

    def migrator(self, directory: str | Path) -> ChildSpec:
        """A child that applies the migrations when its supervisor starts it, then stops
        (put it after the pool, before the children that need the schema)."""
        from beamish.data._migrations import migrator

        return migrator(self, directory)


# -- starting ---------------------------------------------------------------------------


async def _start_pool(pool: Pool, link: bool) -> Pid:
    running = whereis(pool.name)
    if running is not None:
        raise StartError(
            ("already_started", running),
            f"cannot start pool {pool.name!r}: a pool or a process of that name runs "
            f"already ({running!r})",
        )
    table = PoolTable(pool, pool.size)
    if link:
        return await _PoolSupervisor.start_link(table, name=pool.name)
    return await _PoolSupervisor.start(table, name=pool.name)


class _PoolSupervisor(Supervisor):
    """manager, then the connections: rest_for_one, so a new manager gets new connections."""

    def init(self, table: PoolTable) -> Any:
        publish(table)  # owned by this supervisor: the pool's for as long as it runs
        name = table.pool.name
        return Supervisor.init([
            Supervisor.child_spec_of((PoolManager, name), id="manager"),
            Supervisor.child_spec_of((_Connections, name), id="connections"),
        ], strategy="rest_for_one")


class _Connections(Supervisor):
    """The connection processes, one for one.

    Its restart intensity is generous on purpose: a database going away makes every
    connection exit at once, and the replacements back off (``RestartHistory``) rather
    than crash again; the pool must outlive its database's outages.
    """

    def init(self, name: str) -> Any:
        size = find_table(name).size
        children = [
            Supervisor.child_spec_of((ConnectionServer, (name, slot)), id=("connection", slot))
            for slot in range(size)
        ]
        return Supervisor.init(
            children, strategy="one_for_one", max_restarts=10 * size + 10, max_seconds=5
        )


# -- checkout and checkin ---------------------------------------------------------------


def _me(pool: Pool, what: str) -> Pid:
    try:
        return _self()
    except NotInProcessError:
        raise NotInProcessError(
            f"Pool.{what}() of pool {pool.name!r} must be called inside a beamish process "
            "(the pool monitors its caller to take its connection back): run the code in one, "
            "e.g. beamish.run(main), beamish.spawn(fn) or `async with beamish.as_process():`"
        ) from None


async def _lease_for(pool: Pool, what: str) -> tuple[Connection, bool]:
    """The connection the calling process holds in a block (True), or a fresh checkout."""
    table = find_table(pool.name)
    lease = table.owners.get(_me(pool, what))
    if lease is not None:
        return lease, True
    return await _checkout(table, pool.queue_timeout), False


async def _checkout(table: PoolTable, timeout: float) -> Connection:
    manager = table.manager
    if manager is None:
        find_table(table.name)  # raises: not running
        raise AssertionError("unreachable")
    ref = make_ref()
    started = time.perf_counter()
    try:
        lease = await request(
            manager, Checkout(ref), timeout=timeout, what="Pool.checkout", server=table.name
        )
    except CallError as failed:
        send(manager, Cancel(ref))
        if failed.why == "timeout":
            table.timeouts += 1
            queue = table.queue
            raise PoolTimeout(
                pool=table.name, size=table.size, waited=time.perf_counter() - started,
                in_use=table.in_use, connected=table.connected,
                waiting=queue.waiting if queue is not None else 0,
                last_error=table.last_connect_error,
            ) from None
        if failed.why == "noproc":
            find_table(table.name)  # raises: not running
        raise PoolError(
            f"pool {table.name!r} stopped while the caller waited for a connection (its "
            f"manager exited with reason {failed.why!r})", pool=table.name,
        ) from None
    except BaseException:
        send(manager, Cancel(ref))  # cancelled or killed: give back anything handed out
        raise
    if type(lease) is not Connection:
        queue = table.queue
        assert lease == OVERLOADED_REPLY
        raise PoolOverloaded(
            pool=table.name, size=table.size, waiting=queue.waiting if queue else 0,
            max_waiting=table.pool.max_waiting,
        )
    if CHECKOUT.handlers or QUERY.handlers:
        lease._queue_time = waited = time.perf_counter() - started
        if CHECKOUT.handlers:
            queue = table.queue
            CHECKOUT.emit({"queue_time": waited}, {
                "pool": table.name, "in_use": table.in_use, "size": table.size,
                "waiting": queue.waiting if queue else 0,
            })
    return lease


class _Block:
    """The context manager of ``checkout()`` and ``transaction()``."""

    __slots__ = ("depth", "isolation", "lease", "me", "owned", "pool", "table", "timeout",
                 "transaction")

    def __init__(self, pool: Pool, transaction: bool, isolation: str | None,
                 timeout: float | None) -> None:
        if transaction and isolation is not None:
            pool.driver.begin_sql(isolation)  # a bad level fails here, before any checkout
        self.pool = pool
        self.transaction = transaction
        self.isolation = isolation
        self.timeout = pool.queue_timeout if timeout is None else _positive(timeout, "timeout")
        self.owned = False
        self.depth = 0

    async def __aenter__(self) -> Connection:
        pool = self.pool
        table = self.table = find_table(pool.name)
        me = self.me = _me(pool, "transaction" if self.transaction else "checkout")
        lease = table.owners.get(me)
        if lease is None:
            lease = await _checkout(table, self.timeout)
            table.owners[me] = lease
            self.owned = True
        else:
            lease._check()
        self.lease = lease
        if not self.transaction:
            return lease
        depth = self.depth = lease._depth
        try:
            if depth == 0:
                await lease.execute(pool.driver.begin_sql(self.isolation))
            else:
                if self.isolation is not None:
                    raise TransactionError(
                        f"isolation={self.isolation!r} given to a transaction nested in "
                        "another (a savepoint): set the isolation level on the outermost one"
                    )
                await lease.execute(f"SAVEPOINT beamish_{depth}")
        except BaseException:
            self._release()
            raise
        lease._depth = depth + 1
        return lease

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self.transaction:
                await self._finish(exc)
        finally:
            self._release()

    async def _finish(self, exc: BaseException | None) -> None:
        lease, depth = self.lease, self.depth
        lease._depth = depth
        if lease._state is not OPEN:
            if exc is None:
                lease._check()  # raises: the work was cancelled, or the connection lost
            return
        if exc is None:
            try:
                await lease.execute(
                    "COMMIT" if depth == 0 else f"RELEASE SAVEPOINT beamish_{depth}"
                )
            except BaseException:
                if lease._state is OPEN:
                    lease._state = ABORTED  # whatever is left open is rolled back at checkin
                raise
        elif isinstance(exc, Exception):
            try:
                if depth == 0:
                    await lease.execute("ROLLBACK")
                else:
                    await lease.execute(f"ROLLBACK TO SAVEPOINT beamish_{depth}")
                    await lease.execute(f"RELEASE SAVEPOINT beamish_{depth}")
            except Exception:  # the block's own error goes on; the connection is reset
                if lease._state is OPEN:
                    lease._state = ABORTED
            except BaseException:
                if lease._state is OPEN:
                    lease._state = ABORTED
                raise
        else:
            # Cancelled or killed: do not wait here (the process may be gone); the
            # connection process rolls the whole transaction back when it gets it back.
            lease._state = ABORTED

    def _release(self) -> None:
        if self.owned:
            self.owned = False
            if self.table.owners.get(self.me) is self.lease:
                del self.table.owners[self.me]
            self.lease._checkin()
