"""beamish.data: the database reached by message passing.

A supervised pool of connection processes (``Pool``) for SQLite (``SQLite``, the embedded
default) and PostgreSQL (``Postgres``, on asyncpg); transactions bound to the calling
process; a small query API with parameters bound by the driver; ordered SQL migrations;
telemetry hooks. See ``docs/guides/data.md``.
"""

import contextlib

from beamish._errors import (
    ConnectionLost,
    PoolError,
    PoolOverloaded,
    PoolTimeout,
    TransactionError,
)
from beamish.data._driver import Driver, DriverConnection, Row
from beamish.data._lease import Connection
from beamish.data._migrations import migrate, migration_files
from beamish.data._pool import Pool
from beamish.data._postgres import Postgres
from beamish.data._sqlite import SQLite
from beamish.data._telemetry import CheckoutEvent, PoolStatistics, QueryEvent

__all__ = [
    "CheckoutEvent",
    "Connection",
    "ConnectionLost",
    "Driver",
    "DriverConnection",
    "Pool",
    "PoolError",
    "PoolOverloaded",
    "PoolStatistics",
    "PoolTimeout",
    "Postgres",
    "QueryEvent",
    "Row",
    "SQLite",
    "TransactionError",
    "migrate",
    "migration_files",
]


def _set_public_module() -> None:
    g = globals()
    for name in __all__:
        obj = g[name]
        if getattr(obj, "__module__", "").startswith("beamish.data._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_set_public_module()
del _set_public_module
