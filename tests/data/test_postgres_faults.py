"""Faults against the real PostgreSQL server: a backend killed mid-query, idle connections
terminated, backends terminated under load, and the whole server stopped and started again
(restored in a ``finally``); and the one place that tells a lost connection from a failed
query (``Postgres.is_disconnect``)."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import shutil
import subprocess
import time
import uuid

import asyncpg
import pytest

import beamish
from beamish import ANY, Supervisor, receive, send
from beamish.data import ConnectionLost, PoolError, PoolTimeout, Postgres
from beamish.testing._driver_suite import eventually, pool_of
from tests.data.conftest import PG_DSN


async def test_postgres_backend_terminated_mid_query(postgres):
    async with pool_of(postgres, size=2) as db:
        me = beamish.self()

        async def victim() -> None:
            async with db.checkout() as conn:
                send(me, ("backend", await conn.fetch_value("SELECT pg_backend_pid()")))
                try:
                    await conn.execute("SELECT pg_sleep(10)")
                except ConnectionLost as lost:
                    send(me, ("lost", lost))

        beamish.spawn(victim)
        _, backend = await receive(("backend", ANY), timeout=5)
        started = time.monotonic()
        assert await db.fetch_value(f"SELECT pg_terminate_backend({db.param(1)})", backend)
        _, lost = await receive(("lost", ANY), timeout=5)
        assert time.monotonic() - started < 3  # not the 10 s of the sleep
        assert lost.pool == "db" and "pool replaces the connection" in str(lost)
        assert lost.__cause__ is not None  # the driver's error, kept
        # the pool learns of the lost connection from its process, which may come after the
        # caller's ConnectionLost: a replacement is a disconnect counted, then 2 connected
        await eventually(lambda: db.statistics().disconnects >= 1
                         and db.statistics().connected == 2, what="a replacement")
        assert db.statistics().disconnects >= 1
        values = await asyncio.gather(*(db.fetch_value("SELECT 1") for _ in range(4)))
        assert values == [1, 1, 1, 1]


async def test_postgres_idle_connections_terminated_by_the_server_are_replaced(postgres):
    async with pool_of(postgres, size=3, idle_interval=0.1) as db:
        await eventually(lambda: db.statistics().connected == 3, what="3 connections")
        backends = await asyncio.gather(*(
            db.fetch_value("SELECT pg_backend_pid()") for _ in range(6)
        ))
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE pid = ANY({db.param(1)}::int[]) AND pid <> pg_backend_pid()",
            list(set(backends)),
        )
        await eventually(lambda: db.statistics().disconnects >= 2, what="the losses seen")
        await eventually(lambda: db.statistics().connected == 3, what="replacements")
        for _ in range(10):  # every connection handed out now works
            assert await db.fetch_value("SELECT 1") == 1


def _cluster() -> tuple[str, str]:
    ctl = shutil.which("pg_ctlcluster")
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if ctl is None or not versions:
        message = "cannot stop and start the PostgreSQL server here (no pg_ctlcluster)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return ctl, versions[-1]


def _server(action: str) -> None:
    ctl, version = _cluster()
    command = [ctl, "--skip-systemctl-redirect", version, "main", action]
    if action == "stop":
        command += ["-m", "fast"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def _wait_ready(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"])
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back within 30 s")


async def test_postgres_server_stopped_and_started_the_pool_recovers(postgres):
    _cluster()
    async with pool_of(postgres, size=2, queue_timeout=0.5, backoff=(0.05, 0.5)) as db:
        sup = beamish.whereis("db")
        assert await db.fetch_value("SELECT 1") == 1
        try:
            await beamish.offload(_server, "stop")
            await eventually(lambda: db.statistics().connected == 0, what="the loss seen")
            with pytest.raises(PoolError) as failure:  # PoolTimeout: nobody is connected
                await db.fetch_value("SELECT 1")
            assert isinstance(failure.value, PoolTimeout)
            assert "No connection is open" in str(failure.value)
            assert "The last attempt to connect failed" in str(failure.value)
            assert db.statistics().connect_errors >= 1
        finally:
            await beamish.offload(_server, "start")
            await beamish.offload(_wait_ready)

        async def answers() -> bool:
            try:
                return await db.fetch_value("SELECT 1") == 1
            except PoolError:
                return False

        await eventually(answers, timeout=20, what="the pool to reconnect")
        await eventually(lambda: db.statistics().connected == 2, what="both connections")
        assert beamish.whereis("db") == sup  # recovered without restarting the pool


# -- every lost connection is ConnectionLost --------------------------------------------------


def _server_error(sqlstate: str, severity: str, message: str) -> Exception:
    """An error as asyncpg builds it from a server's ErrorResponse."""
    error: Exception = asyncpg.PostgresError.new(
        {"S": severity, "V": severity, "C": sqlstate, "M": message}
    )
    return error


GONE = [
    # asyncpg's own word for a connection closed under a statement (08003)
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    # a statement started on a connection asyncpg already knows is closed
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InterfaceError("connection is closed"),
    # the server's FATAL arrived while the connection was idle; its close had not yet
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.InternalClientError('cannot switch to state 12; protocol is in the "failed" state'),
    asyncpg.InternalClientError("not connected"),
    # a statement cancelled because its connection is being closed under it
    asyncpg.InternalClientError("got result for unknown protocol state 3"),
    asyncpg.ProtocolError("unexpected message"),
    # the socket itself
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    OSError(113, "No route to host"),
    # the server ending the session, by class 08 or 57P0x, or any FATAL
    _server_error("57P01", "FATAL", "terminating connection due to administrator command"),
    _server_error("57P02", "FATAL", "terminating connection because of crash of another"),
    _server_error("57P03", "FATAL", "the database system is shutting down"),
    _server_error("57P04", "FATAL", "terminating connection because database was dropped"),
    _server_error("57P05", "FATAL", "terminating connection due to idle-session timeout"),
    _server_error("25P03", "FATAL", "terminating connection due to idle-in-transaction timeout"),
    _server_error("08006", "FATAL", "connection failure"),
    _server_error("08P01", "FATAL", "invalid frontend message type 0"),
    _server_error("XX000", "PANIC", "could not write to file"),
]

NOT_GONE = [
    _server_error("22012", "ERROR", "division by zero"),
    _server_error("23505", "ERROR", "duplicate key value violates unique constraint"),
    _server_error("57014", "ERROR", "canceling statement due to statement timeout"),
    _server_error("40001", "ERROR", "could not serialize access"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InternalClientError("no encoder for OID 1234"),
    asyncpg.OutdatedSchemaCacheError("cached statement plan is invalid"),
    asyncpg.DataError("invalid input for query argument $1"),
    TimeoutError(),  # a statement timed out; its connection is cancelled, not gone
    ValueError("not a driver error"),
]


@pytest.mark.parametrize("error", GONE, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_postgres_is_disconnect_for_every_way_asyncpg_says_the_connection_is_gone(error):
    assert Postgres(PG_DSN).is_disconnect(error)


@pytest.mark.parametrize("error", NOT_GONE, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_postgres_is_not_disconnect_for_a_query_of_its_own_wrong(error):
    assert not Postgres(PG_DSN).is_disconnect(error)


@pytest.fixture
def tagged(pg_schema):
    """A Postgres driver whose backends carry an application_name of their own, so a test can
    terminate exactly its pool's backends."""
    name = f"beamish-faults-{uuid.uuid4().hex[:8]}"
    settings = {"search_path": pg_schema, "application_name": name}
    return Postgres(PG_DSN, server_settings=settings, connect_timeout=3.0), name


async def _backends(admin, name: str) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
    )
    return [row["pid"] for row in rows]


async def test_postgres_idle_backend_of_a_held_connection_terminated_is_connection_lost(tagged):
    """The server's FATAL reaches an idle connection before its close does: the next
    statement then meets asyncpg mid-way (InternalClientError "cannot switch to state",
    InterfaceError "connection is closed" or ConnectionDoesNotExistError, depending on how
    far asyncpg got). Each is the same lost connection to the caller."""
    driver, name = tagged
    admin = await asyncpg.connect(PG_DSN)
    seen: collections.Counter[str] = collections.Counter()
    try:
        async with pool_of(
            driver, size=1, queue_timeout=10, backoff=(0.01, 0.05), healthy_after=0.01
        ) as db:
            for attempt in range(24):
                async with db.checkout() as conn:
                    backend = await conn.fetch_value("SELECT pg_backend_pid()")
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
                    for _ in range(attempt % 6):
                        await asyncio.sleep(0)  # catch asyncpg at each stage of the close
                    with pytest.raises(ConnectionLost) as lost:
                        for _ in range(3):  # the FATAL may trail the first statement
                            await conn.fetch_value("SELECT 1")
                    seen[type(lost.value.__cause__).__name__] += 1
                await eventually(lambda: db.statistics().connected == 1, what="a replacement")
            assert await db.fetch_value("SELECT 1") == 1
    finally:
        await admin.close()
    assert sum(seen.values()) == 24, seen


async def test_postgres_backends_terminated_under_load_surface_only_as_connection_lost(tagged):
    """12 processes run statements on a pool of 4 while backends are terminated one after
    another: every failure a caller sees is ConnectionLost, except the wrong query's own
    DivisionByZeroError; and the pool is whole afterwards. (40 kills: fewer than the 50
    restarts in 5 s its connection supervisor allows a pool of 4, however fast they come.)"""
    driver, name = tagged
    kills = 40
    admin = await asyncpg.connect(PG_DSN)
    me = beamish.self()
    try:
        async with pool_of(
            driver, size=4, queue_timeout=30, backoff=(0.01, 0.05), healthy_after=0.01
        ) as db:
            await eventually(lambda: db.statistics().connected == 4, what="4 connections")
            running = [True]

            async def statement(n: int) -> None:
                match n % 5:
                    case 0:
                        await db.fetch("SELECT g FROM generate_series(1, 50) g")
                    case 1:
                        async with db.transaction():
                            await db.execute("SELECT 1")
                            await db.fetch_value("SELECT pg_sleep(0.002)")
                    case 2:
                        async with db.checkout() as conn:
                            await conn.fetch_value("SELECT 1")
                            await conn.fetch_value("SELECT 2")
                    case 3:
                        await db.execute_many("SELECT $1::int", [(k,) for k in range(5)])
                    case _:
                        await db.fetch_value("SELECT 1 / 0")  # wrong by itself

            async def worker(seed: int) -> None:
                outcomes: collections.Counter[tuple[bool, str]] = collections.Counter()
                n = seed
                while running[0]:
                    n += 1
                    try:
                        await statement(n)
                        outcomes[(n % 5 == 4, "ok")] += 1
                    except Exception as exc:
                        outcomes[(n % 5 == 4, type(exc).__name__)] += 1
                send(me, ("outcomes", outcomes))

            workers = [beamish.spawn(worker, seed) for seed in range(12)]
            for _ in range(kills):
                await eventually(lambda: db.statistics().connected >= 2, what="connections")
                lost_before = db.statistics().disconnects
                pids = await _backends(admin, name)
                assert pids, "the pool says it is connected, the server lists no backend"
                await admin.fetchval("SELECT pg_terminate_backend($1)", random.choice(pids))
                await eventually(
                    lambda lost=lost_before: db.statistics().disconnects > lost,
                    what="the termination seen by the pool",
                )
            running[0] = False
            total: collections.Counter[tuple[bool, str]] = collections.Counter()
            for _ in workers:
                _, outcomes = await receive(("outcomes", ANY), timeout=30)
                total.update(outcomes)
            await eventually(lambda: db.statistics().connected == 4, what="a whole pool")
            assert await db.fetch_value("SELECT 1") == 1
    finally:
        await admin.close()
    right = {kind for wrong, kind in total if not wrong}
    wrong = {kind for is_wrong, kind in total if is_wrong}
    assert right <= {"ok", "ConnectionLost"}, total
    assert wrong <= {"DivisionByZeroError", "ConnectionLost"}, total
    assert total[(False, "ConnectionLost")] + total[(True, "ConnectionLost")] >= kills // 4, total
    assert total[(False, "ok")] > 0 and total[(True, "DivisionByZeroError")] > 0, total


async def test_postgres_connection_process_stopped_under_a_statement_is_connection_lost(postgres):
    """The connection's process stopped by its supervisor (the pool stopping, say) while its
    lease holder waits on a statement: closing the connection cancels the statement, and
    asyncpg answers the holder from the middle of its protocol; the holder hears
    ConnectionLost."""
    async with pool_of(postgres, size=1) as db:
        me = beamish.self()

        async def holder() -> None:
            async with db.checkout() as conn:
                send(me, ("server", conn._server))
                try:
                    await conn.execute("SELECT pg_sleep(10)")
                except Exception as exc:
                    send(me, ("failed", exc))

        beamish.spawn(holder)
        _, server = await receive(("server", ANY), timeout=5)
        (connections,) = [c.pid for c in await Supervisor.which_children("db")
                          if c.id == "connections"]
        exited = beamish.wait_exit(server)
        await Supervisor.terminate_child(connections, ("connection", 0))
        assert await exited == "shutdown"
        _, failure = await receive(("failed", ANY), timeout=5)
        assert isinstance(failure, ConnectionLost), repr(failure)
        assert failure.__cause__ is not None
        await Supervisor.restart_child(connections, ("connection", 0))
        await eventually(lambda: db.statistics().connected == 1, what="a replacement")
        assert await db.fetch_value("SELECT 1") == 1
