"""The driver protocol: what the pool needs from a database library, stated once.

A driver is a small immutable description of where the database is (``SQLite(path)``,
``Postgres(dsn)``); ``await driver.connect()`` opens one ``DriverConnection``. The pool
never looks further: a connection process owns one ``DriverConnection``, and the process
holding the lease calls its query methods directly. Both drivers pass the same conformance
suite (``tests/data/driver_suite.py``); a new driver should too.

Parameters are always bound by the database library, never formatted into the SQL. Each
driver keeps its database's own placeholder style (``?`` for SQLite, ``$1`` for PostgreSQL);
``driver.param(n)`` spells the n-th (1-based) one for SQL written for either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Driver", "DriverConnection", "Row", "split_script"]


@runtime_checkable
class Row(Protocol):
    """A result row: values by position (``row[0]``) or by column name (``row["id"]``).

    ``tuple(row)`` gives the values, ``dict(row)`` maps column names to values, and
    ``row.keys()`` lists the column names. SQLite rows are ``sqlite3.Row`` and PostgreSQL
    rows ``asyncpg.Record``; both have this shape.
    """

    def __getitem__(self, key: Any, /) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def keys(self) -> Any: ...


class DriverConnection(Protocol):
    """One open database connection. Used by one process at a time (its lease holder).

    Query methods raise the library's own errors. Which of them mean that the connection
    itself is gone is decided in one place, the lease (``_lease.py``), from two facts: the
    driver's ``is_disconnect(error)`` (what the error says) and the connection's
    ``is_closed()`` (whether it is closing or closed as the error comes: a statement that
    fails because its connection is being closed under it fails for that reason, whatever
    its error says). Either way the caller gets ``ConnectionLost``.
    """

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run one statement; returns the number of rows it changed (0 if none apply)."""
        ...

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter sequence."""
        ...

    async def execute_script(self, sql: str) -> None:
        """Run several ``;``-separated statements without parameters (migrations)."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        """All rows of a query."""
        ...

    async def fetch_one(self, sql: str, args: Sequence[Any]) -> Any:
        """The first row of a query, or None."""
        ...

    def in_transaction(self) -> bool:
        """True while a transaction is open on the connection (as the library knows it)."""
        ...

    async def ping(self) -> None:
        """A health check: a trivial round trip; raises if the connection is unusable."""
        ...

    async def reset(self) -> None:
        """Make the connection as good as new for the next user after an abnormal end:
        wait out a cancelled statement, roll back an open transaction, reset the session.
        Raises if that is impossible (the pool then replaces the connection)."""
        ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the event loop) if the connection closes on its own,
        e.g. when the server terminates it. Drivers that cannot tell may ignore it."""
        ...

    def is_closed(self) -> bool:
        """True once the connection is closing or closed, by the server, the network or
        ``close``/``terminate``: no statement can run on it any more."""
        ...

    async def close(self) -> None:
        """Close gracefully; never raises."""
        ...

    def terminate(self) -> None:
        """Close at once, without waiting (used from finalizers); never raises."""
        ...

    @property
    def raw(self) -> Any:
        """The library's own connection object, for what this API does not cover."""
        ...


class Driver(Protocol):
    """Where a database is and how to open connections to it."""

    name: str
    """``"sqlite"`` or ``"postgresql"``: the SQL dialect."""

    default_size: int
    """How many connections a pool of this driver opens when ``size`` is not given."""

    async def connect(self) -> DriverConnection:
        """Open one connection, ready for queries."""
        ...

    def param(self, n: int) -> str:
        """The placeholder for the n-th (1-based) parameter of a statement."""
        ...

    def begin_sql(self, isolation: str | None) -> str:
        """The statement that opens a transaction (with an isolation level, if given)."""
        ...

    def is_disconnect(self, error: BaseException) -> bool:
        """True if ``error`` means the connection is gone (not a problem of the query), from
        the error alone; list every form the library gives it (``_postgres.py`` does)."""
        ...

    def describe(self) -> str:
        """Where the database is, for messages (never a password)."""
        ...


def split_script(sql: str, complete: Callable[[str], bool]) -> list[str]:
    """Cut ``sql`` into statements, at each ``;`` after which ``complete(text)`` holds.

    ``complete`` decides whether the text so far ends a statement (``sqlite3``'s
    ``complete_statement`` knows string literals, comments and triggers), so a ``;`` inside
    a literal does not cut. Blank pieces are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    for piece in sql.split(";"):
        current.append(piece)
        text = ";".join(current) + ";"
        if complete(text):
            if text.strip(" \t\r\n;"):
                statements.append(text.strip())
            current = []
    rest = ";".join(current).strip()
    if rest:
        statements.append(rest)
    return statements
