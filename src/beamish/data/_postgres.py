"""The PostgreSQL driver, on asyncpg.

asyncpg connections are asyncio objects: the process holding a lease awaits them directly,
on the loop, with no thread in between. asyncpg keeps a cache of prepared statements per
connection, so a query a pool runs often is parsed once per connection.

Two things come from asyncpg's own pool, for a cancelled statement: asyncpg cancels it on
the server in the background, and ``reset`` waits for that before it rolls back, exactly as
asyncpg's ``Pool.release`` does (through the same protected methods).

A lost connection. asyncpg says "the connection is gone" in several ways, depending on how
far it got when the server went away; ``Postgres.is_disconnect`` knows them all, and the
pool's lease turns each into ``ConnectionLost`` (as it does any error of a statement whose
connection ``is_closed()`` by then: closing a connection cancels its statement, which then
fails with ``QueryCanceledError`` or an ``InternalClientError``):

- ``ConnectionDoesNotExistError``: the socket closed under a statement;
- ``InterfaceError("... connection is closed")``: a statement on a connection asyncpg has
  already seen close;
- ``InternalClientError("cannot switch to state ...")`` and its kin: the server's FATAL
  (``pg_terminate_backend``, a shutdown, an idle timeout) reached an idle connection, and
  the next statement started before the close did. asyncpg's protocol then waits for a
  "ready" that never comes, so the connection is unusable whatever its socket says. Other
  ``InternalClientError`` s (a type without a codec, a stale statement cache) are the
  query's;
- ``ProtocolError``: the bytes no longer make sense, and nothing after them will;
- ``OSError`` (a reset, a broken pipe), but not ``TimeoutError``;
- a server error of SQLSTATE class 08 (connection exception), ``57P01``-``57P05`` (shutdowns,
  a dropped database, the idle-session timeout), or of severity ``FATAL``/``PANIC`` (the
  server ends the session after any of them, the idle-in-transaction timeout included).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from beamish._runtime.isolation import mark_shared

__all__ = ["Postgres", "PostgresConnection"]

_LEVELS = {
    "read_committed": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "repeatable_read": "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "serializable": "BEGIN ISOLATION LEVEL SERIALIZABLE",
}
# SQLSTATEs that mean the session is over, beside class 08 (connection exceptions):
# admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped, idle_session_timeout.
_GONE = ("57P01", "57P02", "57P03", "57P04", "57P05")
# Severities after which the server closes the session.
_FATAL = ("FATAL", "PANIC")
# How asyncpg's protocol says it can no longer run a statement on this connection.
_BROKEN = (
    "cannot switch to",
    "cannot process message",
    "got result for unknown protocol state",
    "_on_result:",
    "not connected",
    "unknown error in protocol implementation",
    "waiter is not done while handling critical protocol error",
)
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


@mark_shared
class Postgres:
    """A PostgreSQL database, reached with asyncpg.

    ::

        Postgres("postgresql://app@127.0.0.1:5432/app")
        Postgres(host="127.0.0.1", user="postgres", database="test")

    ``dsn`` and the keyword options are asyncpg's ``connect`` arguments (``host``, ``port``,
    ``user``, ``password``, ``database``, ``ssl``, ``server_settings``...), plus
    ``connect_timeout`` (seconds to open a connection) and ``statement_cache_size``
    (prepared statements kept per connection).
    """

    __slots__ = ("connect_timeout", "dsn", "options", "statement_cache_size")
    name = "postgresql"
    default_size = 10
    max_size = None

    def __init__(
        self, dsn: str | None = None, *, connect_timeout: float = 5.0,
        statement_cache_size: int = 100, **options: Any,
    ) -> None:
        if dsn is not None and not isinstance(dsn, str):
            raise TypeError(f"Postgres() takes a DSN string (postgresql://...), got {dsn!r}")
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.statement_cache_size = statement_cache_size
        self.options = tuple(sorted(options.items()))

    def __repr__(self) -> str:
        return f"Postgres({self.describe()!r})"

    def describe(self) -> str:
        if self.dsn is not None:
            return _PASSWORD.sub(r"\1***@", self.dsn)
        shown = {k: v for k, v in self.options if k in ("host", "port", "user", "database")}
        return "PostgreSQL " + " ".join(f"{k}={v}" for k, v in shown.items())

    def param(self, n: int) -> str:
        return f"${n}"

    def begin_sql(self, isolation: str | None) -> str:
        if isolation is None:
            return "BEGIN"
        sql = _LEVELS.get(isolation)
        if sql is None:
            raise ValueError(
                f"PostgreSQL transactions take isolation= one of {', '.join(_LEVELS)} (or None "
                f"for the server's default), got {isolation!r}"
            )
        return sql

    def is_disconnect(self, error: BaseException) -> bool:
        """True if ``error`` means this connection is gone (see the module's docstring)."""
        import asyncpg  # type: ignore[import-untyped]

        if isinstance(error, OSError):
            return not isinstance(error, TimeoutError)
        if isinstance(error, asyncpg.PostgresError):
            state = getattr(error, "sqlstate", None) or ""
            severity = getattr(error, "severity_en", None) or getattr(error, "severity", None)
            return state.startswith("08") or state in _GONE or severity in _FATAL
        if isinstance(error, asyncpg.InterfaceError):
            return "connection is closed" in str(error)
        if isinstance(error, asyncpg.ProtocolError):
            return True
        if isinstance(error, asyncpg.InternalClientError):
            return str(error).startswith(_BROKEN)
        return False

    async def connect(self) -> PostgresConnection:
        import asyncpg

        raw = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout,
            statement_cache_size=self.statement_cache_size, **dict(self.options),
        )
        return PostgresConnection(raw)


class PostgresConnection:
    """One asyncpg connection, with the driver protocol's methods."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def raw(self) -> Any:
        """The ``asyncpg.Connection``."""
        return self._raw

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        status: str = await self._raw.execute(sql, *args)
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self._raw.executemany(sql, args)

    async def execute_script(self, sql: str) -> None:
        await self._raw.execute(sql)  # no arguments: the simple protocol, many statements

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        rows: list[Any] = await self._raw.fetch(sql, *args)
        return rows

    async def fetch_one(self, sql: str, args: Sequence[Any]) -> Any:
        return await self._raw.fetchrow(sql, *args)

    def in_transaction(self) -> bool:
        return bool(self._raw.is_in_transaction())

    async def ping(self) -> None:
        await self._raw.execute("SELECT 1")

    async def reset(self) -> None:
        raw = self._raw
        protocol = getattr(raw, "_protocol", None)
        if protocol is not None and protocol._is_cancelling():
            await protocol._wait_for_cancellation(None)
        if raw.is_closed():
            raise ConnectionError("the connection closed while a statement was cancelled")
        await raw.reset()

    def on_close(self, callback: Callable[[], None]) -> None:
        self._raw.add_termination_listener(lambda _connection: callback())

    def is_closed(self) -> bool:
        return bool(self._raw.is_closed())

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._raw.close(), 2.0)
        except Exception:
            self._raw.terminate()
        except BaseException:
            self._raw.terminate()
            raise

    def terminate(self) -> None:
        self._raw.terminate()
