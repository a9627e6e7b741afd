"""The poller: a process that measures the node and the machine every ``period`` seconds
and emits what it read as telemetry events (``:telemetry_poller``'s role).

- ``("beamish", "runtime", "stats")``: ``processes``, ``process_limit``, ``run_queue``,
  ``spawned``, ``exited``, ``crashed``, ``messages``, ``long_schedules``, ``memory`` (the
  node's resident bytes), ``gc_collections`` (Python's collections so far, all
  generations) and ``loop_lag`` (how late the poller's own timer fired, in seconds: the
  event loop's delay for everyone); metadata ``node``.
- ``("beamish", "os", "stats")``: ``cpu_percent`` (the machine's, since the last poll),
  ``process_cpu_seconds`` (user + system of this node), ``load1``, ``memory_total``,
  ``memory_available``, ``disk_total`` and ``disk_free`` (of the file system of the current
  directory); metadata ``node``.

OS figures come from ``psutil``. The first poll is one ``period`` after the start, so the
lag and CPU figures cover a whole period.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import psutil

from beamish._otp.gen_server.server import GenServer, NoReply, Ok
from beamish._runtime.api import send_after, statistics
from beamish._runtime.events import event

__all__ = ["Poller"]

RUNTIME = event("beamish", "runtime", "stats")
OS = event("beamish", "os", "stats")
_POLL = "beamish.telemetry.poll"


class Poller(GenServer):
    """``Poller.spec(period=10.0)`` in a supervision tree (see the module)."""

    @classmethod
    def spec(cls, *, period: float = 10.0, id: str = "telemetry.poller") -> dict[str, Any]:
        if not isinstance(period, int | float) or period <= 0:
            raise ValueError(f"the poller's period is seconds > 0, got {period!r}")
        return {"id": id, "start": (cls.start_link, (float(period),))}

    def init(self, period: float) -> Any:
        psutil.cpu_percent(None)  # the first reading starts the interval
        state = {"period": period, "due": time.monotonic() + period}
        send_after(self.pid, _POLL, period)
        return Ok(state)

    def handle_info(self, message: Any, state: dict[str, Any]) -> Any:
        if message != _POLL:
            return NoReply(state)
        now = time.monotonic()
        lag = max(0.0, now - state["due"])
        state["due"] = now + state["period"]
        send_after(self.pid, _POLL, state["period"])
        if RUNTIME.handlers or OS.handlers:
            poll(_process(), lag)
        return NoReply(state)


def _process() -> psutil.Process:
    """This OS process, as psutil sees it (kept out of the poller's state: it holds a lock,
    and a state is something ``get_state`` can send)."""
    found = _PROCESS.get(os.getpid())
    if found is None:
        found = _PROCESS[os.getpid()] = psutil.Process(os.getpid())
    return found


_PROCESS: dict[int, psutil.Process] = {}


def poll(process: psutil.Process, lag: float) -> None:
    """Read and emit once (the poller's tick; also handy in a test or a console)."""
    stats = statistics()
    metadata = {"node": stats.node}
    if RUNTIME.handlers:
        with process.oneshot():
            memory = process.memory_info().rss
        RUNTIME.emit({
            "processes": stats.process_count, "process_limit": stats.process_limit,
            "run_queue": stats.run_queue, "spawned": stats.spawned, "exited": stats.exited,
            "crashed": stats.crashed, "messages": stats.messages_dispatched,
            "long_schedules": stats.long_schedules, "memory": memory,
            "gc_collections": sum(g["collections"] for g in gc.get_stats()),
            "loop_lag": lag,
        }, metadata)
    if OS.handlers:
        times = process.cpu_times()
        virtual = psutil.virtual_memory()
        disk = psutil.disk_usage(os.getcwd())
        OS.emit({
            "cpu_percent": psutil.cpu_percent(None),
            "process_cpu_seconds": times.user + times.system,
            "load1": os.getloadavg()[0], "memory_total": virtual.total,
            "memory_available": virtual.available, "disk_total": disk.total,
            "disk_free": disk.free,
        }, metadata)
