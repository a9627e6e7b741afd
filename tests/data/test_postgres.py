"""The PostgreSQL driver (asyncpg) against the real server: the shared suite, then faults."""

from __future__ import annotations

import pytest

from beamish.testing._driver_suite import DriverSuite, pool_of


class TestPostgres(DriverSuite):
    @pytest.fixture
    def driver(self, postgres):
        return postgres


async def test_postgres_isolation_and_placeholders(postgres):
    async with pool_of(postgres) as db:
        assert db.param(3) == "$3"
        async with db.transaction(isolation="serializable"):
            level = await db.fetch_value("SHOW transaction_isolation")
        assert level == "serializable"
        with pytest.raises(ValueError, match="read_committed, repeatable_read, serializable"):
            db.transaction(isolation="immediate")


def test_postgres_describe_hides_the_password():
    from beamish.data import Postgres

    assert Postgres("postgresql://app:s3cret@db:5432/x").describe() == (
        "postgresql://app:***@db:5432/x"
    )
