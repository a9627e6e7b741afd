"""``Singleton``: a process that runs once per cluster, started from every node's tree.

With ``beamish run --nodes N`` (or any cluster) every node runs the whole application, so a
child of its supervisor exists once per node. Some processes must exist once per cluster (a
scheduler of jobs, a sequence, the owner of one external connection). ``Singleton.spec``
puts, in every node's tree, a small guard that:

- starts the server registered as ``("global", name)`` and linked to itself; on one node
  that succeeds, and the server runs there;
- on the others the name is taken: the guard monitors the holder, wherever it runs;
- when the holder goes (it stopped, crashed past its node's restarts, or its node went down
  with ``noconnection``), every guard tries again, and one node's wins;
- a guard starts the server holding the cluster lock ``("beamish.singleton", name)``
  (``global_names.set_lock``), and the lock is given back only after the registration has
  reached every node: two connected nodes never start it at once (at the cluster's start,
  or when the holder goes and every guard tries again);
- two guards that won at once all the same (a partition: each side takes the lock on the
  nodes it sees) are settled by global names' rule: the lower pid keeps the name, the other
  server is killed, and its guard, which stays up, watches the winner.

The server's own crashes are its node's supervisor's business: the guard is linked to it
(and traps exits), so when the server exits the guard exits with its reason, and the guard's
supervisor restarts both (within its intensity, as for any child). Only a server killed
because another node's holds the name (a conflict, even one settled while the server was
still starting) leaves its guard running: it watches the winner, as the other guards do.

A node that is not in a cluster is its whole cluster: there the guard starts the server
under the local name ``name`` (a string), so the same tree runs alone (``beamish run``) and
on several nodes (``--nodes 2``). ``Singleton.whereis(name)`` finds it either way, and
``Singleton.server(name)`` is what to call it by: ``("global", name)`` in a cluster,
``name`` alone. Whether the node is in a cluster is read when the guard starts (a node joins
before its applications start). Unlike OTP, which has no such behaviour built in (Elixir
teams use libraries such as Horde or Swarm for it), this needs no extra process per cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from beamish._errors import StartError
from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Stop
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._runtime.api import current_runtime, monitor, node, send_after, trap_exit, whereis
from beamish._runtime.api import self as _self
from beamish._runtime.messages import Down, Exit
from beamish._runtime.pid import Pid

__all__ = ["Singleton"]

_log = logging.getLogger("beamish.cluster")

RETRY = 0.05  # seconds between a holder's Down and the next try: its name leaves the
# table when its node's server has heard of the exit, a message later
LOCK = "beamish.singleton"  # the global lock (LOCK, name) a guard starts its server under


class Singleton(GenServer):
    """The guard of one cluster-wide server (see the module's documentation)."""

    @classmethod
    def spec(cls, server: type[GenServer], arg: Any = None, *, name: Any,
             **overrides: Any) -> ChildSpec:
        """A child spec for every node's tree: ``server.start_link(arg, name=("global",
        name))`` on one node of the cluster at a time."""
        spec = ChildSpec(id=("singleton", name), start=(cls.start_link, ((server, arg, name),)),
                         modules=(cls, server))
        return spec.replace(**overrides) if overrides else spec

    @staticmethod
    def whereis(name: Any) -> Pid | None:
        """Where the singleton ``name`` runs now, or None."""
        if current_runtime().global_registry is None:  # a node alone: a local name
            return whereis(name) if type(name) is str else None
        from beamish.cluster._global import whereis_name

        return whereis_name(name)

    @staticmethod
    def server(name: Any) -> Any:
        """The singleton ``name`` as a server to call or send to: ``("global", name)`` on a
        node in a cluster, ``name`` on a node alone."""
        return name if current_runtime().global_registry is None else ("global", name)

    @staticmethod
    def beside(name: Any, local_name: str) -> Any:
        """The process registered as ``local_name`` on the node where the singleton ``name``
        runs (a child of a singleton supervisor, say), as a server to call: ``local_name``
        if that is this node, or nobody runs it now (a call then fails with ``noproc``, or
        finds one started here meanwhile), else ``(local_name, node)``."""
        holder = Singleton.whereis(name)
        if holder is None or holder.node == node():
            return local_name
        return (local_name, holder.node)

    async def init(self, arg: Any) -> Ok:
        server, server_arg, name = arg
        if current_runtime().global_registry is None:  # a node alone is its whole cluster
            if type(name) is not str:
                raise TypeError(
                    f"a singleton on a node that is not in a cluster is registered under its "
                    f"name locally, which must be a string; got {name!r}"
                )
            pid = await server.start_link(server_arg, name=name)
            return Ok({"server": server, "arg": server_arg, "name": name, "running": pid,
                       "watching": None})
        state = {"server": server, "arg": server_arg, "name": name, "running": None,
                 "watching": None}
        await self._attempt(state)
        return Ok(state)

    async def _attempt(self, state: dict[str, Any]) -> None:
        from beamish.cluster._global import del_lock, set_lock

        state["running"] = state["watching"] = None
        trap_exit(True)  # a server killed by a name conflict must not take its guard along
        lock = (LOCK, state["name"])
        if not await set_lock(lock):  # another guard is starting it, for a long while
            send_after(_self(), ("beamish.singleton.retry", None), RETRY)
            return
        try:  # under the lock: a server another guard started is registered everywhere
            await self._start(state)
        finally:
            del_lock(lock)

    async def _start(self, state: dict[str, Any]) -> None:
        try:
            pid = await state["server"].start_link(state["arg"], name=("global", state["name"]))
        except StartError as failure:
            reason = failure.reason
            if type(reason) is tuple and len(reason) == 2 and reason[0] == "already_started":
                holder = reason[1]
            else:
                holder = self._winner(state, None)
                if holder is None:  # it failed to start: its guard fails likewise
                    raise
            state["watching"] = (holder, monitor(holder))
            return
        state["running"] = pid
        _log.info("singleton %r runs on node %s (%s)", state["name"], node(), pid)

    @staticmethod
    def _winner(state: dict[str, Any], loser: Pid | None) -> Pid | None:
        """Another node's server that holds the name, if this node's lost it to that one."""
        from beamish.cluster._global import whereis_name

        holder = whereis_name(state["name"])
        if holder is None or holder == loser or holder.node == node():
            return None
        return holder

    async def handle_info(self, message: Any, state: dict[str, Any]) -> Any:
        watching = state["watching"]
        running = state["running"]
        if type(message) is Exit and running is not None and message.pid == running:
            winner = self._winner(state, running)
            if winner is None:  # the server exited (a crash, a stop): the guard with it
                return Stop(message.reason, state)
            _log.info("singleton %r: this node's server lost the name to %s on %s",
                      state["name"], winner, winner.node)
            state["running"] = None
            state["watching"] = (winner, monitor(winner))
        elif type(message) is Exit:  # a server of an earlier attempt: already dealt with
            pass
        elif type(message) is Down and watching is not None and message.ref == watching[1]:
            state["watching"] = None
            send_after(_self(), ("beamish.singleton.retry", watching[1]), RETRY)
        elif (type(message) is tuple and len(message) == 2
              and message[0] == "beamish.singleton.retry" and state["running"] is None
              and state["watching"] is None):
            await self._attempt(state)
        return NoReply(state)
