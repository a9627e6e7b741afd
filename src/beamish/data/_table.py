"""A running pool's table: what every process of the runtime reads to use the pool.

An owned table (``_runtime/tables.py``) of the pool's supervisor, named
``("beamish.data", pool name)``: it lives as long as the pool does (across restarts of its
manager and connections), and each runtime has its own, so two runtimes can run pools of the
same name. Callers read it directly, without a message, as
Registry callers read the registry's tables: to find the manager, the connection their
process already holds (``owners``), the hooks, and the figures for ``statistics()``. The
manager and the connection processes keep the figures up to date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from beamish._errors import PoolError
from beamish._runtime.api import is_alive
from beamish._runtime.pid import Pid
from beamish._runtime.tables import find_table as _find_table
from beamish._runtime.tables import new_table as _new_table
from beamish.data._queue import PoolQueue, RestartHistory
from beamish.data._telemetry import PoolStatistics

if TYPE_CHECKING:
    from beamish.data._lease import Connection
    from beamish.data._pool import Pool

__all__ = ["KEY", "PoolTable", "find_table", "publish"]

KEY = "beamish.data"


class PoolTable:
    __slots__ = (
        "checkouts", "connect_errors", "connected", "disconnects", "driver",
        "in_use", "last_connect_error", "manager", "name", "overloads", "owners", "pool",
        "queue", "size", "slots", "timeouts",
    )

    def __init__(self, pool: Pool, size: int) -> None:
        self.pool = pool
        self.name = pool.name
        self.driver = pool.driver
        self.size = size
        self.manager: Pid | None = None
        self.queue: PoolQueue[Any, Any] | None = None
        self.owners: dict[Pid, Connection] = {}
        self.slots = [RestartHistory(pool.healthy_after) for _ in range(size)]
        self.connected = 0
        self.in_use = 0
        self.checkouts = 0
        self.timeouts = 0
        self.overloads = 0
        self.connect_errors = 0
        self.disconnects = 0
        self.last_connect_error: str | None = None

    def statistics(self) -> PoolStatistics:
        queue = self.queue
        return PoolStatistics(
            pool=self.name, size=self.size, connected=self.connected,
            idle=queue.idle if queue is not None else 0, in_use=self.in_use,
            waiting=queue.waiting if queue is not None else 0,
            max_waiting=self.pool.max_waiting, checkouts=self.checkouts,
            timeouts=self.timeouts, overloads=self.overloads,
            connect_errors=self.connect_errors, disconnects=self.disconnects,
            last_connect_error=self.last_connect_error,
        )


def publish(table: PoolTable) -> None:
    """Make ``table`` the pool's, owned by the caller (the pool's supervisor)."""
    _new_table((KEY, table.pool.name), table)


def find_table(name: str, *, running: bool = True) -> PoolTable:
    """The table of the running pool ``name``; raises PoolError if none runs.

    With ``running=False``, the table of a pool that was started, even if its manager is
    being restarted right now (for statistics).
    """
    found = _find_table((KEY, name))
    table: PoolTable | None = found.data if found is not None else None
    if table is not None and not running:
        return table
    if table is None or table.manager is None or not is_alive(table.manager):
        raise PoolError(
            f"no pool named {name!r} is running here: start it first, with "
            f"`await db.start_link()` or by putting `db.child_spec()` in a supervisor's "
            "children (where db = Pool(driver, name=...))",
            pool=name,
        )
    return table
