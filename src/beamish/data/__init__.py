"""beamish.data: the database reached by message passing.

A supervised pool of connection processes (``Pool``) for SQLite (``SQLite``, the embedded
default) and PostgreSQL (``Postgres``, on asyncpg); transactions bound to the calling
process; a small query API with parameters bound by the driver; ordered SQL migrations;
telemetry events (``beamish.data.query``, ``beamish.data.checkout``). See
``docs/guides/data.md``.
"""

from beamish._errors import (
    ConnectionLost,
    PoolError,
    PoolOverloaded,
    PoolTimeout,
    TransactionError,
)
from beamish._public import publish
from beamish.data._driver import Driver, DriverConnection, Row
from beamish.data._lease import Connection
from beamish.data._migrations import migrate, migration_files
from beamish.data._pool import Pool
from beamish.data._postgres import Postgres
from beamish.data._sqlite import SQLite
from beamish.data._telemetry import PoolStatistics

__all__ = [
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
    "Row",
    "SQLite",
    "TransactionError",
    "migrate",
    "migration_files",
]


publish(globals(), __all__, __name__)
del publish
