"""The dashboard's agent: the process that answers another node's dashboard for this one.

``Dashboard.spec()`` runs it (registered locally as ``AGENT``) on every node. A page
looking at another node asks that node's agent for its pages (``("page", view, query)``),
which it computes here, from this node's runtime, and returns as plain data. Pages of
other nodes are read-only: a kill or a process's details are asked of the node the page is
served from, about its own processes.
"""

from __future__ import annotations

from typing import Any

from beamish._otp.gen_server.server import GenServer, Ok, Reply
from beamish.dashboard._pages import Query, view_page

__all__ = ["AGENT", "DashboardAgent", "page"]

AGENT = "beamish.dashboard"


async def page(view: str, query: Any) -> tuple[str, Any] | None:
    """The push of ``view`` (its event and payload) on this node, or None for none."""
    found = await view_page(view, Query.parse(query))
    return None if found is None else (found[0], found[1])


class DashboardAgent(GenServer):
    """See the module."""

    def init(self, arg: Any) -> Any:
        return Ok(None)

    async def handle_call(self, request: Any, from_: Any, state: Any) -> Any:
        match request:
            case ("page", str() as view, query):
                return Reply(await page(view, query), state)
        return Reply(None, state)
