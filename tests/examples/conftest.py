"""Fixtures for the examples' tests: the feed's database, SQLite or the machine's
PostgreSQL (in a schema of its own, dropped after the test; see tests/data/conftest.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from beamish.data import Postgres, SQLite
from tests.data.conftest import PG_DSN, _admin, require_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def feed_driver(request, tmp_path):
    """A driver for the feed's database, and the name of its migrations directory."""
    if request.param == "sqlite":
        yield SQLite(tmp_path / "feed.sqlite3"), "sqlite"
        return
    require_postgres()
    schema = f"beamish_feed_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE SCHEMA {schema}"))
    yield Postgres(PG_DSN, server_settings={"search_path": schema}, connect_timeout=3.0), \
        "postgresql"
    asyncio.run(_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
