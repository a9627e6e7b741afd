"""Migrations: ordered SQL files, applied once, recorded; a failing one leaves no trace."""

from __future__ import annotations

import pytest

from beamish import Supervisor
from beamish.data import migration_files
from beamish.testing._driver_suite import pool_of

CREATE = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n"


def write(folder, name, sql):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql)


@pytest.fixture(params=["sqlite", "postgres"])
def driver(request):
    return request.getfixturevalue(request.param)


async def test_migrate_applies_each_file_once_in_order(driver, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "10_add_done.sql", "ALTER TABLE tasks ADD COLUMN done INTEGER DEFAULT 0;")
    write(folder, "2_seed.sql", "INSERT INTO tasks (id, title) VALUES (1, 'a; b');\n"
                                "INSERT INTO tasks (id, title) VALUES (2, 'c');")
    write(folder, "1_create.sql", CREATE)
    async with pool_of(driver) as db:
        assert await db.migrate(folder) == ["1_create", "2_seed", "10_add_done"]
        assert await db.migrate(folder) == []
        rows = await db.fetch("SELECT title, done FROM tasks ORDER BY id")
        assert [tuple(r) for r in rows] == [("a; b", 0), ("c", 0)]
        write(folder, "11_more.sql", "INSERT INTO tasks (id, title) VALUES (3, 'd');")
        assert await db.migrate(folder) == ["11_more"]
        versions = await db.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert sorted(r[0] for r in versions) == ["10_add_done", "11_more", "1_create", "2_seed"]


async def test_migrate_a_failing_file_leaves_no_trace(driver, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "1_create.sql", CREATE)
    write(folder, "2_broken.sql", "INSERT INTO tasks (id, title) VALUES (1, 'x');\n"
                                  "INSERT INTO nowhere VALUES (1);")
    async with pool_of(driver) as db:
        with pytest.raises(Exception, match="nowhere"):
            await db.migrate(folder)
        assert await db.fetch_value("SELECT count(*) FROM tasks") == 0
        versions = await db.fetch("SELECT version FROM schema_migrations")
        assert [r[0] for r in versions] == ["1_create"]


async def test_migrator_runs_at_start_in_a_supervision_tree(sqlite, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "1_create.sql", CREATE)
    from beamish.data import Pool

    db = Pool(sqlite, name="db")
    sup = await Supervisor.start_link([db.child_spec(), db.migrator(folder)])
    children = await Supervisor.which_children(sup)
    # the migrator is done: a temporary child that ignored its start, so (as in OTP) the
    # supervisor keeps neither a process nor a spec for it
    assert [c.id for c in children] == [db.child_spec().id]
    assert await db.fetch_value("SELECT count(*) FROM tasks") == 0
    await Supervisor.stop(sup)


def test_migration_files_must_be_numbered(tmp_path):
    write(tmp_path, "create.sql", CREATE)
    with pytest.raises(ValueError, match=r"NNN_description\.sql"):
        migration_files(tmp_path)
    (tmp_path / "create.sql").unlink()
    write(tmp_path, "1_a.sql", CREATE)
    write(tmp_path, "01_b.sql", CREATE)
    with pytest.raises(ValueError, match="same number 1"):
        migration_files(tmp_path)
