"""The SQLite driver: the standard library's ``sqlite3``, in one thread per connection.

How it works. ``sqlite3`` blocks, so each connection gets a thread of its own that opens
it and then runs, one after the other, the jobs the event loop queues for it; each job's
result comes back through a future resolved on the loop. A statement whose caller was
cancelled still runs to its end in that thread, and the next job (the rollback its
connection process queues) runs after it: a connection never sees two statements at once.

Connections run in autocommit mode: the pool opens transactions itself (``BEGIN
IMMEDIATE`` by default, so that two writers queue on the database's lock instead of failing
when a reader tries to become a writer). File databases use write-ahead logging by default,
so readers do not block the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from beamish._runtime.isolation import mark_shared
from beamish.data._driver import split_script

__all__ = ["SQLite", "SQLiteConnection"]

_MODES = {"deferred": "BEGIN DEFERRED", "immediate": "BEGIN IMMEDIATE",
          "exclusive": "BEGIN EXCLUSIVE"}
_STOP: Any = object()


@mark_shared
class SQLite:
    """An SQLite database: a file, or ``":memory:"``.

    ::

        SQLite("app.db")                       # WAL, 5 s busy timeout, foreign keys on
        SQLite(":memory:")                     # one connection, gone when it closes
        SQLite("app.db", pragmas={"cache_size": -64000})

    - ``wal``: use write-ahead logging (file databases; default True);
    - ``busy_timeout``: seconds a statement, or the switch to WAL when a connection opens,
      waits for another connection's lock;
    - ``foreign_keys``: enforce foreign keys (SQLite's own default is off; ours is on);
    - ``pragmas``: more ``PRAGMA name = value`` to run on each new connection.

    An in-memory database lives inside its one connection: a pool of it has size 1, and a
    replaced connection starts empty. Use a file (a temporary one in tests) to share data
    between several connections.
    """

    __slots__ = ("busy_timeout", "foreign_keys", "path", "pragmas", "wal")
    name = "sqlite"

    def __init__(
        self, path: str | os.PathLike[str] = ":memory:", *, wal: bool = True,
        busy_timeout: float = 5.0, foreign_keys: bool = True,
        pragmas: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"SQLite() takes a file path or ':memory:', got {path!r}")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) or (
            busy_timeout < 0
        ):
            raise ValueError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.path = os.fspath(path)
        self.wal = wal
        self.busy_timeout = float(busy_timeout)
        self.foreign_keys = foreign_keys
        self.pragmas = tuple((pragmas or {}).items())

    @property
    def memory(self) -> bool:
        return self.path == ":memory:" or "mode=memory" in self.path

    @property
    def default_size(self) -> int:
        return 1 if self.memory else 5

    @property
    def max_size(self) -> int | None:
        return 1 if self.memory else None

    def __repr__(self) -> str:
        return f"SQLite({self.path!r})"

    def describe(self) -> str:
        return f"SQLite database {self.path!r}"

    def param(self, n: int) -> str:
        return f"?{n}"

    def begin_sql(self, isolation: str | None) -> str:
        if isolation is None:
            return "BEGIN IMMEDIATE"
        sql = _MODES.get(isolation)
        if sql is None:
            raise ValueError(
                f"SQLite transactions take isolation= one of {', '.join(_MODES)} (or None for "
                f"'immediate'), got {isolation!r}"
            )
        return sql

    def is_disconnect(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error)

    async def connect(self) -> SQLiteConnection:
        connection = SQLiteConnection(self)
        try:
            await connection._call(_open_job, self)
        except BaseException:
            connection.terminate()
            raise
        return connection


def _open(driver: SQLite) -> sqlite3.Connection:
    uri = driver.path.startswith("file:")
    raw = sqlite3.connect(
        driver.path, isolation_level=None, check_same_thread=False, uri=uri,
        timeout=driver.busy_timeout,
    )
    try:
        raw.row_factory = sqlite3.Row
        if driver.wal and not driver.memory:
            _use_wal(raw, driver.busy_timeout)
            raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute(f"PRAGMA busy_timeout = {int(driver.busy_timeout * 1000)}")
        raw.execute(f"PRAGMA foreign_keys = {'ON' if driver.foreign_keys else 'OFF'}")
        for name, value in driver.pragmas:
            if not str(name).replace("_", "").isalnum():
                raise ValueError(f"invalid pragma name {name!r}")
            raw.execute(f"PRAGMA {name} = {value}")
    except BaseException:
        raw.close()
        raise
    return raw


def _use_wal(raw: sqlite3.Connection, timeout: float) -> None:
    """Switch the database to write-ahead logging, retrying while another connection holds
    its lock, up to ``timeout`` seconds.

    The switch writes to the database. When another connection holds the write lock, SQLite
    answers "database is locked" at once instead of waiting out the busy timeout (its busy
    handler is not called for a lock upgrade, which could deadlock): the connections of a
    pool opening a new file together met this at connect. So the driver waits here, as the
    busy timeout would have.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            raw.execute("PRAGMA journal_mode = WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class _Worker(threading.Thread):
    """The connection's own thread: opens it, then runs queued jobs in order until stopped.

    It holds the ``sqlite3.Connection`` but not the ``SQLiteConnection`` object, so that one
    can be garbage-collected (its ``__del__`` then stops the thread).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, label: str) -> None:
        super().__init__(name=f"beamish-sqlite {label}", daemon=True)
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.loop = loop
        self.raw: sqlite3.Connection | None = None

    def run(self) -> None:
        jobs, loop = self.jobs, self.loop
        while True:
            job = jobs.get()
            if job is _STOP:
                raw, self.raw = self.raw, None
                if raw is not None:
                    with contextlib.suppress(Exception):  # closing never fails loudly
                        raw.close()
                return
            fn, args, future = job
            try:
                result, failed = fn(self, *args), False
            except BaseException as exc:
                result, failed = exc, True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_resolve, future, result, failed)


def _resolve(future: asyncio.Future[Any], result: Any, failed: bool) -> None:
    if future.done():
        return
    if failed:
        future.set_exception(result)
    else:
        future.set_result(result)


def _open_job(worker: _Worker, driver: SQLite) -> None:
    worker.raw = _open(driver)


def _raw_of(worker: _Worker) -> sqlite3.Connection:
    raw = worker.raw
    if raw is None:
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
    return raw


class SQLiteConnection:
    """One SQLite connection and its thread (see the module's docstring)."""

    __slots__ = ("__weakref__", "_loop", "_worker", "driver")

    def __init__(self, driver: SQLite) -> None:
        self.driver = driver
        self._loop = asyncio.get_running_loop()
        self._worker: _Worker | None = _Worker(self._loop, driver.path)
        self._worker.start()

    @property
    def raw(self) -> sqlite3.Connection:
        """The ``sqlite3.Connection`` (use it only through the connection's thread)."""
        worker = self._worker
        if worker is None or worker.raw is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return worker.raw

    def _call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        worker = self._worker
        if worker is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: asyncio.Future[Any] = self._loop.create_future()
        worker.jobs.put((fn, args, future))
        return future

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        count: int = await self._call(_execute, sql, _bind(args))
        return count

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self._call(_execute_many, sql, [tuple(a) for a in args])

    async def execute_script(self, sql: str) -> None:
        await self._call(_script, sql)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        rows: list[Any] = await self._call(_fetch, sql, _bind(args))
        return rows

    async def fetch_one(self, sql: str, args: Sequence[Any]) -> Any:
        return await self._call(_fetch_one, sql, _bind(args))

    def in_transaction(self) -> bool:
        worker = self._worker
        raw = worker.raw if worker is not None else None
        return raw is not None and raw.in_transaction

    async def ping(self) -> None:
        await self._call(_fetch_one, "SELECT 1", ())

    async def reset(self) -> None:
        await self._call(_rollback)

    def on_close(self, callback: Callable[[], None]) -> None:
        return None  # an SQLite connection never closes by itself

    def is_closed(self) -> bool:
        return self._worker is None

    async def close(self) -> None:
        self.terminate()

    def terminate(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.jobs.put(_STOP)

    def __del__(self) -> None:
        # A connection process killed outright runs no terminate: end the thread here.
        self.terminate()


def _bind(args: Sequence[Any]) -> Any:
    if len(args) == 1 and isinstance(args[0], Mapping):
        return args[0]  # named parameters (:name), SQLite only
    return args


def _execute(worker: _Worker, sql: str, args: Any) -> int:
    raw = _raw_of(worker)
    cursor = raw.execute(sql, args)
    count = cursor.rowcount
    cursor.close()
    return count if count > 0 else 0


def _execute_many(worker: _Worker, sql: str, args: list[tuple[Any, ...]]) -> None:
    raw = _raw_of(worker)
    raw.executemany(sql, args).close()


def _script(worker: _Worker, sql: str) -> None:
    # Not executescript: it would commit an open transaction first.
    raw = _raw_of(worker)
    for statement in split_script(sql, sqlite3.complete_statement):
        raw.execute(statement).close()


def _fetch(worker: _Worker, sql: str, args: Any) -> list[Any]:
    raw = _raw_of(worker)
    cursor = raw.execute(sql, args)
    rows = cursor.fetchall()
    cursor.close()
    return rows


def _fetch_one(worker: _Worker, sql: str, args: Any) -> Any:
    raw = _raw_of(worker)
    cursor = raw.execute(sql, args)
    row = cursor.fetchone()
    cursor.close()
    return row


def _rollback(worker: _Worker) -> None:
    raw = _raw_of(worker)
    if raw.in_transaction:
        raw.execute("ROLLBACK")
