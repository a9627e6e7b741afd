"""Schema migrations: ordered SQL files, each applied once and recorded in a table.

A migration is a file ``NNN_description.sql`` (``001_create_tasks.sql``): its version is the
whole name without ``.sql``, and files apply in the order of their number. Each applies in
a transaction of its own together with its row in ``schema_migrations``, so a failing file
leaves no trace and the ones before it stay applied. On PostgreSQL the table is locked for
the transaction, and SQLite's ``BEGIN IMMEDIATE`` holds the write lock, so two nodes
starting at once apply each file once.
"""

from __future__ import annotations

import itertools
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from beamish._errors import StartIgnored
from beamish._otp.supervisor.child_spec import ChildSpec

if TYPE_CHECKING:
    from beamish.data._pool import Pool

__all__ = ["migrate", "migration_files", "migrator"]

_log = logging.getLogger("beamish.data")
_NAME = re.compile(r"^(\d+)_[\w\-]+\.sql$")
TABLE = "schema_migrations"


def migration_files(directory: str | Path) -> list[tuple[str, Path]]:
    """The ``(version, path)`` of each migration in ``directory``, in the order to apply.

    Raises ``ValueError`` for a ``.sql`` file not named ``NNN_description.sql`` and for two
    files with the same number: the order must never be a guess.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"the migrations directory {str(folder)!r} does not exist")
    found: list[tuple[int, str, Path]] = []
    for path in folder.glob("*.sql"):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(
                f"migration file {path.name!r} is not named NNN_description.sql (e.g. "
                "001_create_tasks.sql): the number gives the order in which files apply"
            )
        found.append((int(match.group(1)), path.stem, path))
    found.sort()
    for (a, name_a, _), (b, name_b, _) in itertools.pairwise(found):
        if a == b:
            raise ValueError(
                f"migrations {name_a!r} and {name_b!r} have the same number {a}: give each "
                "file its own"
            )
    return [(version, path) for _, version, path in found]


async def migrate(pool: Pool, directory: str | Path) -> list[str]:
    """Apply the migrations of ``directory`` that ``pool``'s database has not recorded yet.

    Returns the versions applied now, in order (an empty list if the schema is current).
    Call it from a process (an Application's ``start``, a script under ``beamish.run``), or
    let a supervisor run it with ``pool.migrator(directory)``.
    """
    files = migration_files(directory)
    p1, p2 = pool.param(1), pool.param(2)
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied: list[str] = []
    for version, path in files:
        async with pool.transaction() as conn:
            if pool.driver.name == "postgresql":
                await conn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
            done = await conn.fetch_value(f"SELECT 1 FROM {TABLE} WHERE version = {p1}", version)
            if done is not None:
                continue
            await conn.execute_script(path.read_text())
            await conn.execute(
                f"INSERT INTO {TABLE} (version, applied_at) VALUES ({p1}, {p2})",
                version, datetime.now(UTC).isoformat(timespec="seconds"),
            )
        _log.info("pool %r applied migration %s", pool.name, version)
        applied.append(version)
    return applied


def migrator(pool: Pool, directory: str | Path) -> ChildSpec:
    """A supervisor child that applies the migrations when started, then stops.

    Like Ecto's ``Ecto.Migrator`` in a supervision tree: place it after the pool and before
    the children that need the schema. Its start applies the migrations (a failure fails
    the supervisor's start, with the error) and starts no process, so nothing is restarted.
    """
    return ChildSpec(
        id=("migrations", pool.name), start=(_run, (pool, str(directory))),
        restart="temporary", modules=(migrate,),
    )


async def _run(pool: Pool, directory: str) -> None:
    await migrate(pool, directory)
    raise StartIgnored()
