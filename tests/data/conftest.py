"""Fixtures for the data layer's tests: a SQLite file per test, a PostgreSQL schema per test.

PostgreSQL is the machine's server (127.0.0.1:5432, database ``test``; ``BEAMISH_TEST_PG``
names another DSN). Under ``CI=true`` a test that cannot reach it FAILS; elsewhere it is
skipped with a reason that names the server.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from beamish.data import Postgres, SQLite

PG_DSN = os.environ.get("BEAMISH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_reachable: list[str | None] = []  # [None] when reachable, [error] when not: asked once


def _ask_server() -> str | None:
    async def ask() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(ask())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_postgres() -> str:
    """The DSN of the test server; fails (CI) or skips (elsewhere) when it is unreachable."""
    if not _reachable:
        _reachable.append(_ask_server())
    error = _reachable[0]
    if error is not None:
        message = f"PostgreSQL at {PG_DSN} is not reachable ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    return PG_DSN


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_schema():
    """A fresh schema, dropped after the test."""
    require_postgres()
    schema = f"beamish_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE SCHEMA {schema}"))
    yield schema
    asyncio.run(_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.fixture
def postgres(pg_schema):
    """A Postgres driver whose connections work in the test's own schema."""
    return Postgres(PG_DSN, server_settings={"search_path": pg_schema}, connect_timeout=3.0)


@pytest.fixture
def sqlite(tmp_path):
    """An SQLite driver on a fresh file."""
    return SQLite(tmp_path / "test.db")
