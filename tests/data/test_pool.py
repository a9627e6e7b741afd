"""Pool: starting, naming, supervision, misuse, and what it tells (driver-independent)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

import beamish
from beamish import StartError, Supervisor
from beamish.data import Pool, PoolError, SQLite
from beamish.testing._driver_suite import eventually, pool_of


async def test_pool_starts_under_a_supervisor_as_a_tree(sqlite):
    db = Pool(sqlite, name="db", size=3)
    sup = await Supervisor.start_link([db.child_spec()])
    [child] = await Supervisor.which_children(sup)
    assert child.id == ("Pool", "db") and child.type == "supervisor"
    assert beamish.whereis("db") == child.pid
    manager, connections = reversed(await Supervisor.which_children(child.pid))
    assert manager.id == "manager" and connections.id == "connections"
    assert len(await Supervisor.which_children(connections.pid)) == 3
    await eventually(lambda: db.statistics().connected == 3, what="3 connections")
    assert await db.fetch_value("SELECT 40 + 2") == 42
    await Supervisor.stop(sup)
    with pytest.raises(PoolError, match="no pool named 'db' is running"):
        await db.fetch_value("SELECT 1")


async def test_pool_a_second_pool_of_the_same_name_is_refused(sqlite):
    async with pool_of(sqlite) as db:
        with pytest.raises(StartError) as failure:
            await Pool(sqlite, name="db").start_link()
        assert failure.value.reason[0] == "already_started"
        assert await db.fetch_value("SELECT 1") == 1  # the running one is untouched


async def test_pool_a_crashed_connection_process_is_replaced(sqlite):
    async with pool_of(sqlite, size=2) as db:
        await eventually(lambda: db.statistics().connected == 2, what="2 connections")
        sup = beamish.whereis("db")
        [connections, _] = await Supervisor.which_children(sup)  # most recent first
        victim = (await Supervisor.which_children(connections.pid))[0].pid
        beamish.exit(victim, "kill")
        await eventually(lambda: db.statistics().connected == 2, what="a replacement")
        results = await asyncio.gather(*(db.fetch_value("SELECT 1") for _ in range(5)))
        assert results == [1] * 5


async def test_pool_a_crashed_manager_restarts_the_connections_too(sqlite):
    async with pool_of(sqlite, size=2) as db:
        sup = beamish.whereis("db")
        [_, manager] = await Supervisor.which_children(sup)  # most recent first
        beamish.exit(manager.pid, "kill")
        await eventually(lambda: db.statistics().connected == 2, what="reconnected")
        assert await db.fetch_value("SELECT 1") == 1


async def test_pool_connects_in_the_background_and_callers_wait(tmp_path):
    missing = tmp_path / "no such dir" / "x.db"
    async with pool_of(SQLite(missing), size=1, queue_timeout=0.3, backoff=(0.05, 0.1)) as db:
        with pytest.raises(PoolError) as failure:
            await db.fetch_value("SELECT 1")
        text = str(failure.value)
        assert "0 of 1 connected" in text and "unable to open database file" in text
        missing.parent.mkdir()
        await eventually(lambda: db.statistics().connected == 1, what="the retry")
        assert await db.fetch_value("SELECT 1") == 1


def test_pool_must_be_called_in_a_process(sqlite):
    db = Pool(sqlite, name="db")

    async def main() -> None:
        await db.start_link()

        async def outside() -> None:
            await db.fetch_value("SELECT 1")

        context = contextvars.copy_context()
        context.run(beamish.current_runtime().bind)  # the runtime, but no process
        with pytest.raises(beamish.NotInProcessError, match=r"Pool.fetch_value\(\) of pool"):
            await asyncio.get_running_loop().create_task(outside(), context=context)
        await db.stop()

    beamish.run(main)


@pytest.mark.parametrize(("options", "message"), [
    ({"name": ""}, "non-empty str"),
    ({"name": "db", "size": 0}, "size must be an int >= 1"),
    ({"name": "db", "queue_timeout": 0}, "queue_timeout must be a number of seconds > 0"),
    ({"name": "db", "backoff": (2, 1)}, "backoff must be"),
    ({"name": "db", "max_waiting": -1}, "max_waiting must be an int >= 0"),
])
def test_pool_options_are_checked(options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Pool(SQLite(":memory:"), **options)


def test_pool_rejects_what_is_not_a_driver():
    with pytest.raises(TypeError, match=r"driver such as SQLite\(path\)"):
        Pool("sqlite:///x.db", name="db")  # type: ignore[arg-type]


async def test_pool_statistics_and_hooks_need_a_running_pool(sqlite):
    db = Pool(sqlite, name="nothing")
    with pytest.raises(PoolError, match="start it first"):
        db.statistics()


async def test_pool_owners_never_leak_to_another_process(sqlite):
    async with pool_of(sqlite, size=2) as db, db.checkout() as outer:
        async with db.transaction() as inner:  # nested: the same connection
            assert inner is outer

        async def other() -> object:
            async with db.checkout() as theirs:
                return theirs is outer

        task = beamish.Task.async_(other)
        assert await beamish.Task.await_(task) is False


async def test_pool_can_start_again_after_it_stopped(sqlite):
    db = Pool(sqlite, name="db")
    for _ in range(2):
        await db.start_link()
        assert await db.fetch_value("SELECT 1") == 1
        await db.stop()
