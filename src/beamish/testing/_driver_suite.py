"""``DriverSuite``: the conformance suite of database drivers, run through a real pool.

A driver's test module subclasses ``DriverSuite`` and provides a ``driver`` fixture; every
test here then runs against it (beamish runs it for SQLite and PostgreSQL, and a driver for
another database runs it the same way)::

    from beamish.testing import DriverSuite

    class TestMyDriver(DriverSuite):
        @pytest.fixture
        def driver(self):
            return MyDriver(...)

SQL is written for both dialects, with ``db.param(n)`` for placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from beamish._errors import BeamishError
from beamish._runtime import api as beamish
from beamish._runtime.api import send
from beamish._runtime.patterns import ANY
from beamish._runtime.receive import receive
from beamish.data import (
    Connection,
    Pool,
    PoolOverloaded,
    PoolTimeout,
    TransactionError,
)
from beamish.testing._idle import wait_until_idle
from beamish.testing._supervised import start_supervised
from beamish.testing._telemetry import capture_events


@contextlib.asynccontextmanager
async def pool_of(driver: Any, **options: Any) -> AsyncIterator[Pool]:
    options.setdefault("name", "db")
    db = Pool(driver, **options)
    await start_supervised(db.child_spec())
    yield db


async def eventually(check: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def make_table(db: Pool) -> None:
    await db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")


async def count(db: Pool) -> int:
    return int(await db.fetch_value("SELECT count(*) FROM items"))


class DriverSuite:
    """Every driver passes these."""

    size = 2

    # -- the query API --------------------------------------------------------------------

    async def test_execute_returns_the_rows_changed(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            p1, p2 = db.param(1), db.param(2)
            insert = f"INSERT INTO items (id, name) VALUES ({p1}, {p2})"
            assert await db.execute(insert, 1, "a") == 1
            await db.execute(insert, 2, "b")
            assert await db.execute(f"UPDATE items SET price = {p1}", 1.5) == 2
            assert await db.execute(f"DELETE FROM items WHERE id = {p1}", 99) == 0

    async def test_fetch_rows_by_position_and_by_name(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            await db.execute_many(
                f"INSERT INTO items (id, name, price) VALUES "
                f"({db.param(1)}, {db.param(2)}, {db.param(3)})",
                [(1, "apple", 0.5), (2, "pear", 0.75)],
            )
            rows = await db.fetch("SELECT id, name, price FROM items ORDER BY id")
            assert [tuple(r) for r in rows] == [(1, "apple", 0.5), (2, "pear", 0.75)]
            first = rows[0]
            assert first[1] == first["name"] == "apple"
            assert list(first.keys()) == ["id", "name", "price"]
            assert dict(first) == {"id": 1, "name": "apple", "price": 0.5}
            assert len(first) == 3

    async def test_fetch_one_and_fetch_value(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            p1 = db.param(1)
            assert await db.fetch_one(f"SELECT * FROM items WHERE id = {p1}", 1) is None
            assert await db.fetch_value(f"SELECT name FROM items WHERE id = {p1}", 1) is None
            await db.execute(f"INSERT INTO items (id, name) VALUES (1, {p1})", "x")
            row = await db.fetch_one(f"SELECT id, name FROM items WHERE id = {p1}", 1)
            assert row["name"] == "x"
            assert await db.fetch_value("SELECT id, name FROM items", column=1) == "x"

    async def test_values_round_trip(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await db.execute("CREATE TABLE t (i BIGINT, f DOUBLE PRECISION, s TEXT, b BYTEA)"
                             if driver.name == "postgresql" else
                             "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB)")
            values = (2**62, 3.25, "héllo ✓", b"\x00\xff")
            params = ", ".join(db.param(n) for n in range(1, 5))
            await db.execute(f"INSERT INTO t VALUES ({params})", *values)
            await db.execute(f"INSERT INTO t VALUES ({params})", None, None, None, None)
            rows = await db.fetch("SELECT i, f, s, b FROM t ORDER BY i")
            assert [tuple(r) for r in rows] in (
                [values, (None,) * 4], [(None,) * 4, values],
            )

    async def test_parameters_are_bound_not_formatted(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            evil = "x'); DROP TABLE items; --"
            await db.execute(f"INSERT INTO items (id, name) VALUES (1, {db.param(1)})", evil)
            assert await db.fetch_value("SELECT name FROM items") == evil
            assert await count(db) == 1

    async def test_execute_script_runs_several_statements(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db, db.checkout() as conn:
            await conn.execute_script(
                "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);\n"
                "INSERT INTO a VALUES (2); -- a comment; with a semicolon\n"
                "CREATE TABLE b (s TEXT); INSERT INTO b VALUES ('semi;colon');"
            )
            assert await conn.fetch_value("SELECT sum(x) FROM a") == 3
            assert await conn.fetch_value("SELECT s FROM b") == "semi;colon"

    async def test_a_query_error_is_the_drivers_and_leaves_the_pool_usable(
        self, driver: Any
    ) -> None:
        async with pool_of(driver, size=1) as db:
            with pytest.raises(Exception) as failure:
                await db.execute("SELEKT nonsense")
            assert not isinstance(failure.value, BeamishError)
            assert await db.fetch_value("SELECT 1") == 1

    # -- transactions ---------------------------------------------------------------------

    async def test_transaction_commits_on_success(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            async with db.transaction() as conn:
                assert isinstance(conn, Connection) and conn.in_transaction
                await db.execute("INSERT INTO items (id) VALUES (1)")
                await conn.execute("INSERT INTO items (id) VALUES (2)")
            assert await count(db) == 2

    async def test_transaction_rolls_back_on_error(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            with pytest.raises(ValueError, match="boom"):
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    raise ValueError("boom")
            assert await count(db) == 0

    async def test_a_failed_statement_rolls_the_transaction_back(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            await make_table(db)
            with pytest.raises(Exception):  # noqa: B017 - the driver's own error class
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    await db.execute("INSERT INTO items (id) VALUES (1)")  # duplicate key
            assert await count(db) == 0
            await db.execute("INSERT INTO items (id) VALUES (1)")  # the connection is clean
            assert await count(db) == 1

    async def test_nested_transactions_are_savepoints(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            await make_table(db)
            async with db.transaction():
                await db.execute("INSERT INTO items (id) VALUES (1)")
                with pytest.raises(KeyError):
                    async with db.transaction():
                        await db.execute("INSERT INTO items (id) VALUES (2)")
                        raise KeyError("inner")
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (3)")
            ids = [r[0] for r in await db.fetch("SELECT id FROM items ORDER BY id")]
            assert ids == [1, 3]

    async def test_transaction_rolls_back_when_cancelled(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            await make_table(db)
            inside = asyncio.Event()

            async def work() -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    inside.set()
                    await asyncio.sleep(30)

            async with beamish.as_process():  # a task in the test's own process
                task = asyncio.ensure_future(work())
                await inside.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert await count(db) == 0

    async def test_a_transaction_belongs_to_its_process(self, driver: Any) -> None:
        async with pool_of(driver, size=2) as db:
            await make_table(db)
            me = beamish.self()

            async def other() -> None:
                send(me, ("seen", await count(db)))

            async with db.transaction():
                await db.execute("INSERT INTO items (id) VALUES (1)")
                assert await count(db) == 1  # this process sees its own write
                beamish.spawn(other)
                assert await receive(("seen", ANY), timeout=5) == ("seen", 0)
            assert await count(db) == 1

    async def test_a_connection_cannot_be_used_after_its_block(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            async with db.checkout() as conn:
                assert await conn.fetch_value("SELECT 1") == 1
            with pytest.raises(TransactionError, match="checked in"):
                await conn.fetch_value("SELECT 1")

    async def test_a_cancelled_inner_block_aborts_the_outer_one(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            await make_table(db)
            with pytest.raises(TransactionError, match="cancelled"):
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    with contextlib.suppress(asyncio.CancelledError):
                        async with db.transaction():
                            raise asyncio.CancelledError()  # swallowed: a bad idea
            assert await count(db) == 0

    # -- caller death, exhaustion ---------------------------------------------------------

    async def test_a_caller_killed_mid_transaction_leaves_no_partial_write(
        self, driver: Any
    ) -> None:
        async with pool_of(driver, size=1) as db:
            await make_table(db)
            me = beamish.self()

            async def writer() -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    send(me, "written")
                    await receive()  # until killed

            pid = beamish.spawn(writer)
            await receive("written", timeout=5)
            beamish.exit(pid, "kill")
            assert await count(db) == 0  # the same (only) connection, rolled back
            assert db.statistics().connected == 1

    async def test_a_caller_killed_mid_statement_returns_its_connection(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            await make_table(db)
            me = beamish.self()
            long = ("SELECT pg_sleep(2)" if driver.name == "postgresql" else
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                    "WHERE x < 2000000) SELECT count(*) FROM c")

            async def writer() -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO items (id) VALUES (1)")
                    send(me, "started")
                    await db.execute(long)

            pid = beamish.spawn(writer)
            await receive("started", timeout=5)
            await wait_until_idle()  # the long statement is with the database
            beamish.exit(pid, "kill")
            started = time.monotonic()
            assert await count(db) == 0
            assert time.monotonic() - started < 5

    async def test_exhaustion_gives_a_timely_pool_timeout(self, driver: Any) -> None:
        async with pool_of(driver, size=1, queue_timeout=0.2) as db:
            me = beamish.self()

            async def holder() -> None:
                async with db.checkout():
                    send(me, "holding")
                    await receive()

            pid = beamish.spawn_link(holder)
            await receive("holding", timeout=5)
            started = time.monotonic()
            with pytest.raises(PoolTimeout) as failure:
                await db.fetch_value("SELECT 1")
            waited = time.monotonic() - started
            assert 0.15 < waited < 2.0
            error = failure.value
            assert (error.pool, error.size, error.in_use, error.connected) == ("db", 1, 1, 1)
            assert "'db' (size 1)" in str(error) and "raise size=" in str(error)
            assert db.statistics().timeouts == 1
            beamish.unlink(pid)
            beamish.exit(pid, "kill")
            assert await db.fetch_value("SELECT 1") == 1  # no deadlock: it came back

    async def test_a_full_queue_turns_callers_away_at_once(self, driver: Any) -> None:
        async with pool_of(driver, size=1, max_waiting=1, queue_timeout=5) as db:
            me = beamish.self()

            async def holder() -> None:
                async with db.checkout():
                    send(me, "holding")
                    await receive()

            async def waiter() -> None:
                send(me, ("waited", await db.fetch_value("SELECT 1")))

            hold = beamish.spawn(holder)
            await receive("holding", timeout=5)
            beamish.spawn(waiter)
            await eventually(lambda: db.statistics().waiting == 1, what="a waiter")
            started = time.monotonic()
            with pytest.raises(PoolOverloaded, match="max_waiting=1"):
                await db.fetch_value("SELECT 1")
            assert time.monotonic() - started < 0.5
            beamish.exit(hold, "kill")
            assert await receive(("waited", ANY), timeout=5) == ("waited", 1)

    async def test_a_cancelled_waiter_leaves_the_queue(self, driver: Any) -> None:
        async with pool_of(driver, size=1) as db:
            me = beamish.self()

            async def holder() -> None:
                async with db.checkout():
                    send(me, "holding")
                    await receive()

            hold = beamish.spawn(holder)
            await receive("holding", timeout=5)
            waiter = beamish.spawn(db.fetch_value, "SELECT 1")
            await eventually(lambda: db.statistics().waiting == 1, what="a waiter")
            beamish.exit(waiter, "kill")
            await eventually(lambda: db.statistics().waiting == 0, what="the waiter gone")
            beamish.exit(hold, "kill")
            assert await db.fetch_value("SELECT 1") == 1

    # -- telemetry ------------------------------------------------------------------------

    async def test_telemetry_sees_queries_and_checkouts(self, driver: Any) -> None:
        async with pool_of(driver, size=self.size) as db:
            with capture_events(("beamish", "data", "checkout")) as checkouts:
                with capture_events(("beamish", "data", "query")) as queries:
                    await db.fetch_value("SELECT 1")
                    with pytest.raises(Exception):  # noqa: B017
                        await db.execute("SELEKT")
                await db.fetch_value("SELECT 2")
            assert [(q.metadata["sql"], q.metadata["error"] is None, q.metadata["pool"])
                    for q in queries] == [
                ("SELECT 1", True, db.name), ("SELEKT", False, db.name),
            ]
            assert all(q.measurements["query_time"] > 0
                       and q.measurements["queue_time"] is not None for q in queries)
            assert len(checkouts) == 3
            first = checkouts[0]
            assert first.metadata["size"] == self.size and first.metadata["in_use"] >= 1
            assert first.measurements["queue_time"] >= 0
            stats = db.statistics()
            assert stats.checkouts == 3 and 1 <= stats.connected <= self.size
