"""The dashboard's live feed: a Phoenix socket and one channel per open page.

The page joins ``dashboard:live`` with the token it was served with; the channel then pushes
``home`` every ``refresh`` seconds, and the page shown besides it: ``processes`` (a page of
the process table), ``applications`` (the supervision trees), ``sockets`` (the connections
and topics) or ``data`` (the pools); a page not shown costs nothing (asking every
supervisor for its children, or reading processes, is not free),
and answers the page's requests: ``view`` (which page is shown), ``logs`` (watch the log
records at a level that match a request id, a pid or words: ``_logtap.py``), ``query``
(sort, search,
page of the process table), ``details`` (one process: its links, monitors, and a
behaviour's state) and ``kill`` (an exit signal ``kill`` to a process the page was shown,
in the table or in a tree: a process it never showed cannot be named). Everything that changes state
goes through this joined channel, never through a plain HTTP request, so a page of another
site cannot make a browser do it (the socket checks the origin, the join the token).
"""

from __future__ import annotations

import logging
from typing import Any

from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Reply
from beamish._runtime.api import exit, node, nodes, process_info, send_after
from beamish._runtime.api import self as _self
from beamish.dashboard._agent import AGENT
from beamish.dashboard._logtap import LogLine, unwatch, watch
from beamish.dashboard._pages import Query, home, view_page
from beamish.web._channel import Channel
from beamish.web._socket import Socket, SocketState

__all__ = ["DashboardChannel", "socket_class"]

_log = logging.getLogger("beamish.dashboard")
_TICK = "beamish.dashboard.tick"
_STATE_TIMEOUT = 1.0
_REMOTE_TIMEOUT = 2.0
_VIEWS = ("home", "processes", "applications", "sockets", "data", "logs", "metrics")
_PAGES = ("processes", "applications", "sockets", "data")  # pushed while shown, besides home
_LEVELS = ("debug", "info", "warning", "error")


class DashboardChannel(Channel):
    """One open dashboard page (see the module)."""

    refresh: float = 1.0
    metrics: Any = None  # the PrometheusReporter whose figures the Metrics page charts

    def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        if topic != "dashboard:live":
            return ("error", {"reason": f"no such dashboard topic: {topic}"})
        send_after(_self(), _TICK, 0)
        return Ok(socket.assign(query=Query(), shown={}, drawn={}, view="home", node=None))

    async def handle_info(self, message: Any, socket: SocketState) -> Any:
        if type(message) is LogLine:
            Channel.push(socket, "log", message.line)
            return NoReply(socket)
        if message != _TICK:
            return NoReply(socket)
        if socket.assigns["node"] is not None:  # another node's pages, read-only
            await self._push_remote(socket)
            send_after(_self(), _TICK, self.refresh)
            return NoReply(socket)
        Channel.push(socket, "home", {**home(), "nodes": [node(), *nodes()], "viewing": node()})
        # a page (a page of processes; a tree asks every supervisor) only while it is shown
        if socket.assigns["view"] in _PAGES:
            socket = await self._push(socket, socket.assigns["view"])
        if socket.assigns["view"] == "metrics" and self.metrics is not None:
            Channel.push(socket, "metrics", {"metrics": self.metrics.snapshot()})
        send_after(_self(), _TICK, self.refresh)
        return NoReply(socket)

    async def _push(self, socket: SocketState, view: str) -> SocketState:
        """Push ``view``'s page; the pids it shows become the ones the page may name (the
        table's in ``shown``, a tree's or the sockets' in ``drawn``)."""
        found = await view_page(view, socket.assigns["query"])
        if found is None:
            return socket
        event, payload, pids = found
        Channel.push(socket, event, payload)
        return socket.assign(shown=pids) if view == "processes" else socket.assign(drawn=pids)

    async def _push_remote(self, socket: SocketState) -> None:
        target = socket.assigns["node"]
        views = ["home"]
        if socket.assigns["view"] in _PAGES:
            views.append(socket.assigns["view"])
        for view in views:
            query = _query_payload(socket.assigns["query"])
            try:
                found = await GenServer.call((AGENT, target), ("page", view, query),
                                             _REMOTE_TIMEOUT)
            except Exception as exc:
                Channel.push(socket, "node_error", {
                    "node": target, "reason": f"{type(exc).__name__}: {exc}"[:300]})
                return
            if found is not None:
                event, payload = found
                if event == "home":
                    payload = {**payload, "nodes": [node(), *nodes()], "viewing": target}
                Channel.push(socket, event, payload)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if event == "query":
            socket = socket.assign(query=Query.parse(payload))
            return Reply("ok", await self._push(socket, "processes"))
        if event == "view":
            view = payload.get("view") if isinstance(payload, dict) else None
            socket = socket.assign(view=view if view in _VIEWS else "home")
            if socket.assigns["view"] != "logs":
                unwatch(_self())
            if socket.assigns["view"] in _PAGES:
                socket = await self._push(socket, socket.assigns["view"])
            return Reply("ok", socket)
        if event == "node":
            wanted = payload.get("node") if isinstance(payload, dict) else None
            if wanted == node() or wanted is None:
                socket = socket.assign(node=None)
            elif wanted in nodes():
                socket = socket.assign(node=wanted)
            else:
                return Reply(("error", {"reason": "no such node in the cluster"}), socket)
            send_after(_self(), _TICK, 0)
            return Reply("ok", socket)
        if socket.assigns["node"] is not None and event in ("kill", "details", "query"):
            if event == "query":
                return Reply("ok", socket.assign(query=Query.parse(payload)))
            return Reply(("error", {"reason": "another node's pages are read-only"}), socket)
        if event == "logs":
            match = payload.get("match") if isinstance(payload, dict) else None
            level = payload.get("level") if isinstance(payload, dict) else None
            watch(_self(), match if isinstance(match, str) else "",
                  level if level in _LEVELS else "info")
            return Reply("ok", socket)
        named = payload.get("pid") if isinstance(payload, dict) else None
        target = socket.assigns["shown"].get(named) or socket.assigns["drawn"].get(named)
        if event == "kill":
            if target is None:
                return Reply(("error", {"reason": "that process is not on the page"}), socket)
            _log.warning("dashboard: killing %r, as a dashboard user asked", target)
            exit(target, "kill")
            return Reply("ok", socket)
        if event == "details":
            if target is None:
                return Reply(("error", {"reason": "that process is not on the page"}), socket)
            return Reply(("ok", await _details(target)), socket)
        return Reply(("error", {"reason": "unknown request"}), socket)

    def terminate(self, reason: Any, socket: SocketState) -> None:
        unwatch(_self())


async def _details(pid: Any) -> dict[str, Any]:
    info = process_info(pid)
    if info is None:
        return {"pid": repr(pid), "alive": False}
    found: dict[str, Any] = {
        "pid": repr(pid), "alive": True, "name": info.name, "kind": info.kind,
        "status": info.status, "initial_call": info.initial_call,
        "current_function": info.current_function, "links": [repr(p) for p in info.links],
        "monitors": [repr(p) for p in info.monitors],
        "monitored_by": [repr(p) for p in info.monitored_by],
        "parent": repr(info.parent) if info.parent is not None else None,
        "trap_exit": info.trap_exit, "messages_handled": info.messages_handled,
    }
    if info.kind == "actor":
        try:  # a behaviour answers get_state; anything else times out or refuses
            from beamish._runtime.crash import clip

            found["state"] = clip(await GenServer.get_state(pid, timeout=_STATE_TIMEOUT))
        except Exception as exc:
            found["state"] = f"(no state: {type(exc).__name__})"
    return found


def socket_class(check_token: Any, refresh: float, metrics: Any = None) -> type[Socket]:
    """A Socket class for one dashboard: its connect checks the page's token."""

    class Live(DashboardChannel):
        pass

    Live.refresh = refresh
    Live.metrics = metrics

    class DashboardSocket(Socket):
        channels = {"dashboard:*": Live}  # noqa: RUF012

        def connect(self, params: dict[str, str], socket: SocketState,
                    connect_info: dict[str, Any]) -> Any:
            return Ok(socket) if check_token(params.get("token")) else "error"

    Live.__qualname__ = "DashboardChannel"  # what logs, metrics and the page call them
    DashboardSocket.__qualname__ = "DashboardSocket"
    return DashboardSocket


def _query_payload(query: Query) -> dict[str, Any]:
    return {"sort": query.sort, "descending": query.descending, "search": query.search,
            "page": query.page}

