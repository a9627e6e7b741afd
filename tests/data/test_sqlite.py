"""The SQLite driver: the shared suite, plus what only SQLite has."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from beamish.data import Pool, SQLite
from beamish.testing._driver_suite import DriverSuite, pool_of


class TestSQLiteFile(DriverSuite):
    @pytest.fixture
    def driver(self, sqlite):
        return sqlite


class TestSQLiteMemory(DriverSuite):
    size = 1

    @pytest.fixture
    def driver(self):
        return SQLite(":memory:")

    # these need two connections to one database
    test_a_transaction_belongs_to_its_process = None  # type: ignore[assignment]


async def test_sqlite_file_uses_wal_by_default(sqlite):
    async with pool_of(sqlite) as db:
        assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        assert await db.fetch_value("PRAGMA foreign_keys") == 1
        assert db.param(2) == "?2"


async def test_sqlite_connects_in_wal_while_another_connection_holds_the_write_lock(
    tmp_path, caplog
):
    """Switching to WAL writes to the database; SQLite answers "database is locked" at once
    when another connection holds the write lock, busy timeout or not. A pool's connections
    opening a new file together met this, and the first attempt failed with a warning."""
    path = str(tmp_path / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.05, holder.execute, ("COMMIT",))
    release.start()
    try:
        async with pool_of(SQLite(path), size=1) as db:
            assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        assert "could not connect" not in caplog.text
    finally:
        release.join()
        holder.close()


async def test_sqlite_named_parameters(sqlite):
    async with pool_of(sqlite) as db:
        assert await db.fetch_value("SELECT :a + :b", {"a": 1, "b": 2}) == 3


def test_sqlite_memory_database_has_one_connection():
    assert Pool(SQLite(":memory:"), name="m").size == 1
    with pytest.raises(ValueError, match="in-memory database lives inside one connection"):
        Pool(SQLite(":memory:"), name="m", size=2)


def test_sqlite_isolation_levels_are_checked():
    driver = SQLite(":memory:")
    assert driver.begin_sql(None) == "BEGIN IMMEDIATE"
    assert driver.begin_sql("deferred") == "BEGIN DEFERRED"
    with pytest.raises(ValueError, match="deferred, immediate, exclusive"):
        Pool(driver, name="m").transaction(isolation="serializable")
