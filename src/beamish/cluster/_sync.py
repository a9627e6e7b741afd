"""``sync_nodes``: wait for the nodes a node expects before its applications start (Erlang's
``sync_nodes_optional`` with ``sync_nodes_timeout``).

A node that starts its applications before it has met the cluster decides alone: a
``Singleton`` guard finds the name free and starts a second server (the conflict is settled
a moment later, by killing one, which may be the one with the state); a restarted node
that meets its peers late may even win that conflict against the survivor that took over.
So ``beamish run --nodes N`` makes each node wait, after it joined, until its siblings are
connected and its global name table holds what they hold, for at most ``timeout`` seconds:
a sibling that does not come is not waited for longer (it is started after, or it is down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from beamish._errors import CallError
from beamish._otp.gen_server.server import GenServer
from beamish._runtime.api import node, nodes, send
from beamish.cluster._global import SERVER

__all__ = ["DEFAULT_SYNC_TIMEOUT", "sync_nodes"]

_log = logging.getLogger("beamish.cluster")

DEFAULT_SYNC_TIMEOUT = 5.0  # seconds
_POLL = 0.02


async def sync_nodes(names: Iterable[str], timeout: float = DEFAULT_SYNC_TIMEOUT) -> list[str]:
    """Wait until the nodes ``names`` (this node's own name is skipped) are connected and
    this node knows the global names they hold, for at most ``timeout`` seconds; return
    those that did not connect in time. Run it in a process of the node."""
    me = node()
    wanted = [name for name in dict.fromkeys(names) if name and name != me]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    missing = [n for n in wanted if n not in nodes()]
    while missing and loop.time() < deadline:
        await asyncio.sleep(_POLL)
        missing = [n for n in wanted if n not in nodes()]
    # Each peer's name server is asked for the names its node's processes hold, which this
    # node's server takes in (it would hear of them anyway, when the peer sees this node
    # come up, but not before a given moment); this node's server answers a ping once it
    # has taken in what was sent to it before.
    for peer in wanted:
        if peer in missing:
            continue
        try:
            names = await GenServer.call((SERVER, peer), "names",
                                         timeout=max(0.1, deadline - loop.time()))
        except CallError as error:
            _log.warning("node %s did not answer while this node synced with it: %s", peer,
                         error.reason)
            continue
        send(SERVER, ("sync", names))
    await GenServer.call(SERVER, "ping")
    if missing:
        _log.warning("started without meeting %s within %gs", ", ".join(missing), timeout)
    return missing
