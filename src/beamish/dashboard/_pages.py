"""What the dashboard's pages show, read from the node: pure functions of the runtime.

``home()`` is the node at a glance; ``process_page(query)`` one page of the process table;
``applications()`` each running application's supervision tree (at most ``MAX_CHILDREN``
children of a supervisor drawn, the rest counted; a supervisor that does not answer its
``which_children`` within a second is drawn without its children); ``sockets()`` the
socket connections and their channels' topics; ``pools()`` each pool's statistics.
A page reads ``process_info`` only for the rows it shows when sorted by pid (the default),
so paging through a million processes does not scan them all; sorting by another column
reads at most ``MAX_SCAN`` processes (the first ones, by pid) and says so.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import psutil

from beamish._runtime.api import process_info, processes, statistics
from beamish._runtime.pid import Pid

__all__ = [
    "COLUMNS", "MAX_CHILDREN", "MAX_SCAN", "MAX_SOCKETS", "PAGE_SIZE", "Query",
    "applications", "home", "pools", "presences", "process_page", "process_row", "sockets",
    "view_page",
]

PAGE_SIZE = 50
MAX_SCAN = 100_000
COLUMNS = ("pid", "name", "message_queue_len", "memory", "messages_handled",
           "current_function", "status")
_STARTED = time.time()


@dataclass(frozen=True, slots=True)
class Query:
    """What the process table shows: a sort column and direction, a search, a page."""

    sort: str = "pid"
    descending: bool = False
    search: str = ""
    page: int = 0

    @classmethod
    def parse(cls, payload: Any) -> Query:
        """A query from a client's payload; anything unknown falls back to the default."""
        if not isinstance(payload, dict):
            return cls()
        sort = payload.get("sort")
        page = payload.get("page")
        search = payload.get("search")
        return cls(
            sort=sort if sort in COLUMNS else "pid",
            descending=payload.get("descending") is True,
            search=search[:100] if isinstance(search, str) else "",
            page=page if type(page) is int and 0 <= page < 1_000_000 else 0,
        )


def home() -> dict[str, Any]:
    """The node at a glance: versions, uptime, processes, memory, run queue, and the OS."""
    stats = statistics()
    me = psutil.Process(os.getpid())
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(os.getcwd())
    return {
        "node": stats.node, "python": sys.version.split()[0],
        "platform": platform.platform(terse=True), "uptime": round(stats.uptime, 1),
        "processes": stats.process_count, "process_limit": stats.process_limit,
        "run_queue": stats.run_queue, "spawned": stats.spawned, "crashed": stats.crashed,
        "messages": stats.messages_dispatched, "long_schedules": stats.long_schedules,
        "memory": me.memory_info().rss, "os_pid": os.getpid(),
        "cpu_percent": psutil.cpu_percent(None), "load": list(os.getloadavg()),
        "os_memory_total": memory.total, "os_memory_available": memory.available,
        "disk_total": disk.total, "disk_free": disk.free,
    }


def process_row(pid: Pid) -> dict[str, Any] | None:
    """One process as the table shows it (None if it is gone)."""
    info = process_info(pid)
    if info is None:
        return None
    return {
        "pid": repr(info.pid), "name": info.name or "", "status": info.status,
        "message_queue_len": info.message_queue_len, "memory": info.memory,
        "messages_handled": info.messages_handled, "current_function": info.current_function,
        "initial_call": info.initial_call,
    }


def process_page(query: Query) -> tuple[dict[str, Any], dict[str, Pid]]:
    """One page of the table, and the pids it shows by their text (what a kill may name)."""
    every = processes()
    total = len(every)
    scanned = every
    start = query.page * PAGE_SIZE
    if query.sort != "pid" or query.search:
        scanned = every[:MAX_SCAN]
        pairs = [(row, pid) for pid in scanned if (row := process_row(pid)) is not None]
        if query.search:
            needle = query.search.lower()
            pairs = [(r, p) for r, p in pairs if needle in r["name"].lower() or needle in r["pid"]
                     or needle in r["initial_call"].lower()
                     or needle in r["current_function"].lower()]
        key = query.sort
        if key != "pid":
            pairs.sort(key=lambda pair: pair[0][key], reverse=query.descending)
        elif query.descending:
            pairs.reverse()
        matching = len(pairs)
        shown = pairs[start:start + PAGE_SIZE]
    else:
        ordered = every[::-1] if query.descending else every
        shown = [(row, pid) for pid in ordered[start:start + PAGE_SIZE]
                 if (row := process_row(pid)) is not None]
        matching = total
    return {
        "rows": [row for row, _ in shown], "total": total, "matching": matching,
        "page": query.page, "pages": max(1, -(-matching // PAGE_SIZE)), "sort": query.sort,
        "descending": query.descending, "search": query.search,
        "scanned": len(scanned), "partial": len(scanned) < total,
    }, {row["pid"]: pid for row, pid in shown}


MAX_CHILDREN = 100  # of one supervisor, drawn; the rest are counted
_MAX_DEPTH = 12
_CALL_TIMEOUT = 1.0


async def applications() -> tuple[list[dict[str, Any]], dict[str, Pid]]:
    """Each running application with its supervision tree, and the pids drawn by text."""
    from beamish._otp.application.application import started_applications

    drawn: dict[str, Pid] = {}
    found = []
    for app in reversed(await started_applications()):  # in start order
        tree = await _tree(app.supervisor, "root", "supervisor", drawn, 0) \
            if app.supervisor is not None else None
        found.append({"name": app.name, "status": app.status, "pid": repr(app.pid),
                      "tree": tree})
    return found, drawn


async def _tree(pid: Pid, child_id: Any, kind: str, drawn: dict[str, Pid],
                depth: int) -> dict[str, Any]:
    from beamish._otp.gen_server.server import GenServer

    info = process_info(pid)
    node: dict[str, Any] = {
        "pid": repr(pid), "id": _label(child_id), "type": kind,
        "name": (info.name if info is not None else None) or "",
        "initial_call": info.initial_call if info is not None else "",
        "children": [], "more": 0,
    }
    drawn[repr(pid)] = pid
    if kind != "supervisor" or depth >= _MAX_DEPTH:
        return node
    try:
        children = await GenServer.call(pid, ("which_children",), _CALL_TIMEOUT)
    except Exception:  # gone, or busy past the timeout: drawn without its children
        node["unreachable"] = True
        return node
    ordered = list(reversed(children))  # in start order
    for child in ordered[:MAX_CHILDREN]:
        if isinstance(child.pid, Pid):
            node["children"].append(
                await _tree(child.pid, child.id, child.type, drawn, depth + 1))
        else:
            node["children"].append({"pid": str(child.pid), "id": _label(child.id),
                                     "type": child.type, "name": "", "initial_call": "",
                                     "children": [], "more": 0})
    node["more"] = max(0, len(ordered) - MAX_CHILDREN)
    return node


def _label(child_id: Any) -> str:
    """A child id as the tree shows it: a class by its name, anything else as text."""
    if isinstance(child_id, type):
        return child_id.__qualname__
    return child_id if isinstance(child_id, str) else repr(child_id)



MAX_SOCKETS = 200  # connections listed on the Sockets page; all are counted


def sockets() -> tuple[dict[str, Any], dict[str, Pid]]:
    """The node's socket connections (each a transport process) and their channels' topics:
    counts by socket class and transport, the busiest topics, and the first connections by
    pid. Reads at most ``MAX_SCAN`` processes."""
    from beamish.web._transport import SocketTransport

    counts: dict[str, int] = {}
    topics: dict[str, int] = {}
    listed: list[dict[str, Any]] = []
    drawn: dict[str, Pid] = {}
    every = processes()
    total = 0
    for pid in every[:MAX_SCAN]:
        record = getattr(pid, "_proc", None)
        actor = record.actor if record is not None else None
        if type(actor) is not SocketTransport:
            continue
        total += 1
        about = actor.describe()
        key = f"{about['socket']} over {about['transport']}"
        counts[key] = counts.get(key, 0) + 1
        joined = about["topics"]
        for topic in joined:
            topics[topic] = topics.get(topic, 0) + 1
        if len(listed) < MAX_SOCKETS:
            drawn[repr(pid)] = pid
            listed.append({
                "pid": repr(pid), "socket": about["socket"], "transport": about["transport"],
                "id": about["id"], "channels": len(joined), "topics": joined[:10],
                "message_queue_len": actor.mailbox_size(),
            })
    busiest = sorted(topics.items(), key=lambda item: (-item[1], item[0]))[:50]
    return {
        "total": total, "by_socket": counts, "connections": listed, "presences": presences(),
        "pubsub": pubsub_topics(),
        "topics": [{"topic": t, "channels": n} for t, n in busiest],
        "topic_count": len(topics), "partial": len(every) > MAX_SCAN,
    }, drawn


def pools() -> list[dict[str, Any]]:
    """Every pool of the node with its statistics (``Pool.statistics()``), by name."""
    from dataclasses import asdict

    from beamish._runtime.tables import find_table, table_names
    from beamish.data._table import KEY

    found = []
    for name in table_names():
        if type(name) is tuple and len(name) == 2 and name[0] == KEY:
            table = find_table(name)
            if table is not None:
                found.append(asdict(table.data.statistics()))
    return sorted(found, key=lambda stats: str(stats["pool"]))


def pubsub_topics() -> list[dict[str, Any]]:
    """Each PubSub of the node: how many topics have subscribers here (channels and plain
    processes alike), how many subscriptions, and the 50 busiest topics."""
    from beamish._runtime.tables import table_names
    from beamish.pubsub import PubSub

    found = []
    for name in table_names():
        if not (type(name) is tuple and len(name) == 2 and name[0] == "beamish.pubsub"):
            continue
        try:
            counts = PubSub.topics(name[1], limit=MAX_SCAN)
        except Exception:  # stopped meanwhile
            continue
        busiest = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:50]
        found.append({"pubsub": str(name[1]), "topics": len(counts),
                      "subscriptions": sum(counts.values()),
                      "busiest": [{"topic": str(t), "subscribers": n} for t, n in busiest]})
    return sorted(found, key=lambda p: p["pubsub"])


def presences() -> list[dict[str, Any]]:
    """Who is present, by tracker (a Presence is one) and topic: how many keys (users) each
    topic has on this node's replica, the 50 fullest topics of each tracker."""
    from beamish._runtime.tables import find_table, table_names

    found = []
    for name in table_names():
        if not (type(name) is tuple and len(name) == 2 and name[0] == "beamish.tracker"):
            continue
        table = find_table(name)
        pool = table.data if table is not None else None
        counts: dict[str, int] = {}
        for state in getattr(pool, "states", ()) or ():
            for topic, keys in getattr(state, "_topics", {}).items():
                if keys:
                    counts[topic] = counts.get(topic, 0) + len(keys)
        fullest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:50]
        found.append({"tracker": str(name[1]), "topics": len(counts),
                      "present": sum(counts.values()),
                      "fullest": [{"topic": t, "keys": n} for t, n in fullest]})
    return sorted(found, key=lambda p: p["tracker"])


async def view_page(view: str, query: Query) -> tuple[str, Any, dict[str, Pid]] | None:
    """What a page showing ``view`` is pushed: the event, its payload, and the pids it
    shows by their text (what the page may then name); None for a view with no page here."""
    if view == "home":
        return "home", home(), {}
    if view == "processes":
        page, shown = process_page(query)
        return "processes", page, shown
    if view == "applications":
        apps, drawn = await applications()
        return "applications", {"applications": apps}, drawn
    if view == "sockets":
        page, drawn = sockets()
        return "sockets", page, drawn
    if view == "data":
        return "data", {"pools": pools()}, {}
    return None

