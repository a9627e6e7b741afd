"""Faults against the real PostgreSQL server: a backend killed mid-query, idle connections
terminated, and the whole server stopped and started again (restored in a ``finally``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

import beamish
from beamish import ANY, receive, send
from beamish.data import ConnectionLost, PoolError, PoolTimeout
from tests.data.driver_suite import eventually, pool_of


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
        await eventually(lambda: db.statistics().connected == 2, what="a replacement")
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
