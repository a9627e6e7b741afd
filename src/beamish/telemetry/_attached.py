"""``attached_spec``: a child spec whose process keeps a reporter's handlers attached exactly
while it runs (the Prometheus reporter's, the OpenTelemetry tracer's).

The reporter is any object with ``attach()`` (idempotent: a restarted process attaches
afresh) and ``detach()``. The process traps exits, so a supervisor's shutdown runs its
``terminate``, which detaches.
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._otp.gen_server.server import GenServer, Ok
from beamish._runtime.api import trap_exit

__all__ = ["Attachable", "attached_spec"]


class Attachable(Protocol):
    def attach(self) -> None: ...

    def detach(self) -> None: ...


class _Attacher(GenServer):
    def init(self, reporter: Attachable) -> Any:
        trap_exit(True)
        reporter.attach()
        return Ok(reporter)

    def terminate(self, reason: Any, reporter: Attachable) -> None:
        reporter.detach()


def attached_spec(reporter: Attachable, child_id: str) -> dict[str, Any]:
    """The child spec of ``reporter``'s attaching process, under ``child_id``."""
    return {"id": child_id, "start": (_Attacher.start_link, (reporter,))}
