"""The SQLite driver: the shared suite, plus what only SQLite has."""

from __future__ import annotations

import pytest

from beamish.data import Pool, SQLite
from tests.data.driver_suite import DriverSuite, pool_of


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
