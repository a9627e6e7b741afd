"""Tracker: processes tracked as presences in topics, replicated to every node.

The user-facing side (Phoenix.Tracker in Python): the callback module users subclass, its
options and child spec, and the functions to track and read. The shards that keep and
replicate the state are in ``_tracker_shard.py``; the state itself, a pure CRDT, in
``_tracker_state.py``.

Reads (``list``, ``get_by_key``, ``replicas``) go straight to the shard's state, found
through the runtime's table index, without a message, the way Registry's readers use its
tables: the shard is the only writer and changes its state within one step of its own, so a
reader sees it before or after a change, never halfway; what a reader gets is a copy. Writes
(``track``, ``untrack``, ``update``) are calls to the topic's shard, which monitors the
tracked pid and runs ``handle_diff``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, overload

from beamish._errors import TrackerError
from beamish._otp.gen_server.server import GenServer, Ok
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._otp.supervisor.supervisor import Supervisor
from beamish._runtime.api import is_alive
from beamish._runtime.pid import Pid
from beamish._runtime.tables import find_table, new_table
from beamish.pubsub._tracker_shard import (
    Options,
    Pool,
    UserDiffs,
    check_meta,
    copy_meta,
    start_shard,
)
from beamish.pubsub._tracker_state import TrackerState

__all__ = ["Tracker", "TrackerError", "UserDiffs"]

_log = logging.getLogger("beamish.tracker")
_OPTIONS = (
    "name", "pubsub", "pool_size", "broadcast_period", "max_silent_periods", "down_period",
    "permdown_period", "replica", "scope", "arg",
)
_UNSET: Any = object()

_Listing = list[tuple[Any, dict[str, Any]]]
_PidMetas = list[tuple[Pid, dict[str, Any]]]


# -- options and the pool index ------------------------------------------------------------------


def _resolve(cls: type[Tracker], given: Mapping[str, Any]) -> Options:
    options = {**cls.tracker_defaults, **given}
    _check_option_keys(options, f"{cls.__qualname__}.start_link()")
    name, pubsub = options.get("name"), options.get("pubsub")
    for key, value in (("name", name), ("pubsub", pubsub)):
        if type(value) is not str or not value:
            raise TypeError(
                f"a tracker needs {key}= (a non-empty str), got {value!r}; e.g. "
                f'{cls.__qualname__}.start_link(name="presence", pubsub="chat") or '
                f'class {cls.__qualname__}(Tracker, name="presence", pubsub="chat")'
            )
    pool_size = options.get("pool_size", 1)
    if type(pool_size) is not int or pool_size < 1:
        raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
    period = _seconds(options.get("broadcast_period", 1.5), "broadcast_period")
    silent = options.get("max_silent_periods", 10)
    if type(silent) is not int or silent < 1:
        raise ValueError(f"max_silent_periods must be an int >= 1, got {silent!r}")
    quiet = period * silent  # the longest a live replica stays quiet
    down = _seconds(options.get("down_period", 2 * quiet), "down_period")
    if down <= quiet:
        raise ValueError(
            f"down_period ({down}s) must be longer than broadcast_period x max_silent_periods "
            f"({quiet}s), the longest a live replica may stay quiet; otherwise live replicas "
            "would be taken for down"
        )
    permdown = _seconds(options.get("permdown_period", 1200.0), "permdown_period")
    if permdown <= down:  # as Phoenix.Tracker: a replica is down before it is forgotten
        raise ValueError(
            f"permdown_period ({permdown}s) must be longer than down_period ({down}s): a "
            "silent replica is first marked down, and forgotten only later"
        )
    replica, scope = options.get("replica"), options.get("scope")
    for key, value in (("replica", replica), ("scope", scope)):
        if value is not None and (type(value) is not str or not value):
            raise TypeError(f"{key} must be a non-empty str or None, got {value!r}")
    return Options(
        name=str(name), pubsub=str(pubsub), pool_size=pool_size, broadcast_period=period,
        max_silent_periods=silent, down_period=down, permdown_period=permdown,
        replica=replica, scope=str(scope or name),
    )


def _check_option_keys(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(_OPTIONS), key=repr)
    if unknown:
        raise TypeError(
            f"{where} got unknown tracker option(s) {', '.join(map(repr, unknown))}; the "
            f"options are {', '.join(_OPTIONS)}"
        )


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{what} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _pool(tracker: str) -> Pool:
    found = find_table(("beamish.tracker", tracker)) if type(tracker) is str else None
    pool: Pool | None = found.data if found is not None else None
    if pool is None:
        raise TrackerError(
            ("unknown_tracker", tracker),
            f"no tracker is running under the name {tracker!r}; start it first, e.g. "
            f'Tracker.start_link(name={tracker!r}, pubsub="my_pubsub"), or put it in a '
            "supervisor after its PubSub",
        )
    return pool


def _shard_of(topic: str, size: int) -> int:
    return 0 if size == 1 else zlib.crc32(topic.encode()) % size


def _state_of(tracker: str, topic: str) -> TrackerState | None:
    pool = _pool(tracker)
    i = _shard_of(topic, pool.size)
    pid = pool.pids[i]
    return pool.states[i] if pid is not None and is_alive(pid) else None


def _shard_pid(tracker: str, topic: str) -> Pid:
    pool = _pool(tracker)
    pid = pool.pids[_shard_of(topic, pool.size)]
    if pid is None or not is_alive(pid):
        raise TrackerError(
            ("unknown_tracker", tracker),
            f"the shard of tracker {tracker!r} for topic {topic!r} is not running (it is "
            "restarting or stopping)",
        )
    return pid


# -- the callback module -------------------------------------------------------------------------


class Tracker:
    """Track processes as presences in topics, on every node (Phoenix.Tracker, in Python).

    ::

        class Presences(Tracker, name="presences", pubsub="chat"):
            def handle_diff(self, diffs, state):
                for topic, (joins, leaves) in diffs.items():
                    ...                      # joins, leaves: [(key, meta), ...]
                return Ok(state)

        await PubSub.start_link("chat")
        await Presences.start_link()         # or put Presences in a supervisor after PubSub
        ref = await Tracker.track("presences", pid, "room:1", "ada", {"status": "away"})
        Tracker.list("presences", "room:1")  # [('ada', {'status': 'away', 'phx_ref': ref})]

    A presence is a pid in a topic under a key, with a meta (a dict, to which the tracker
    adds a unique ``"phx_ref"``). It lasts until it is untracked or its pid exits. Each node
    runs the same tracker; they replicate to each other through the PubSub, and each node's
    ``handle_diff`` hears of every join and leave, local or remote.

    Callbacks (each may be ``async def``; each is optional):

    - ``init(arg)``: returns ``Ok(state)``; runs in each shard. Default: ``Ok(arg)``.
    - ``handle_diff(diffs, state)``: returns ``Ok(state)``. ``diffs`` is, per topic,
      ``(joins, leaves)`` of ``(key, meta)`` pairs. Default: nothing.
    - ``handle_info(message, state)``: returns ``Ok(state)``, for other messages a shard
      gets. Default: logs them.

    Options, given to ``start_link``, in the child spec's dict, or on the class line:
    ``name`` and ``pubsub`` (required); ``pool_size`` (shards, default 1);
    ``broadcast_period`` (seconds between heartbeats, 1.5); ``max_silent_periods`` (periods
    a shard may skip a heartbeat when nothing changed, 10); ``down_period`` (silence after
    which a replica is down, default twice the longest silence, 30 s); ``permdown_period``
    (after which it is forgotten, 1200 s); ``replica`` (this replica's name, default the
    node's); ``scope`` (the name replicas share, default ``name``).
    """

    tracker_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        _check_option_keys(options, f"class {cls.__qualname__}")
        if "arg" in options:
            raise TypeError(
                f"class {cls.__qualname__}: the init argument is given at start "
                "(start_link(arg) or the child spec's 'arg'), not on the class line"
            )
        cls.tracker_defaults = {**getattr(cls, "tracker_defaults", {}), **options}

    # -- callbacks -------------------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        return Ok(arg)

    def handle_diff(self, diffs: UserDiffs, state: Any) -> Any:
        return Ok(state)

    def handle_info(self, message: Any, state: Any) -> Any:
        _log.warning("%s received an unexpected message: %r", type(self).__qualname__, message)
        return Ok(state)

    # -- starting --------------------------------------------------------------------------

    @classmethod
    async def start_link(cls, arg: Any = None, **options: Any) -> Pid:
        """Start the tracker, linked to the caller: a supervisor of its shards.

        ``arg`` goes to ``init`` in every shard; ``options`` override the class line's.
        The PubSub must be running. Returns the supervisor's pid (registered as ``name``).
        """
        opts = _resolve(cls, options)
        pool = Pool(opts.name, opts.pool_size)
        children = [
            ChildSpec(
                id=("shard", i), start=(start_shard, (cls, arg, opts, pool, i)), shutdown=5.0
            )
            for i in range(opts.pool_size)
        ]
        pid = await Supervisor.start_link(
            children, name=opts.name, strategy="one_for_one", max_restarts=3, max_seconds=5
        )
        new_table(("beamish.tracker", opts.name), pool, owner=pid)
        return pid

    @classmethod
    def child_spec(cls, options: Mapping[str, Any] | None = None) -> ChildSpec:
        """For a supervisor: ``MyTracker`` (options on its class line) or
        ``(MyTracker, {"name": ..., "pubsub": ..., "arg": ...})``. Put it after its PubSub."""
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(
                f"{cls.__qualname__}.child_spec takes a dict of tracker options, e.g. "
                f'({cls.__qualname__}, {{"name": "presences", "pubsub": "chat"}}), got '
                f"{options!r}"
            )
        given = dict(options or {})
        arg = given.pop("arg", None)
        opts = _resolve(cls, given)  # fail now, not when the supervisor starts it
        return ChildSpec(
            id=opts.name, start=(_start_with, (cls, arg, given)), type="supervisor",
            modules=(cls,),
        )

    # -- writes (a call to the topic's shard) ----------------------------------------------

    @staticmethod
    async def track(
        tracker: str, pid: Pid, topic: str, key: Any, meta: Mapping[str, Any]
    ) -> str:
        """Track ``pid`` in ``topic`` under ``key`` with ``meta``; returns its ``phx_ref``.

        The presence lasts until it is untracked or ``pid`` exits. Raises ``TrackerError``
        with ``("already_tracked", pid, topic, key)`` if it is tracked already.
        """
        _check_pid(pid, "track")
        _check_topic(topic)
        _check_key(key)
        request = ("track", pid, topic, key, check_meta(meta))
        ref: str = _answer(await GenServer.call(_shard_pid(tracker, topic), request), request)
        return ref

    @overload
    @staticmethod
    async def untrack(tracker: str, pid: Pid) -> None: ...

    @overload
    @staticmethod
    async def untrack(tracker: str, pid: Pid, topic: str, key: Any) -> None: ...

    @staticmethod
    async def untrack(tracker: str, pid: Pid, topic: Any = _UNSET, key: Any = _UNSET) -> None:
        """Stop tracking ``pid`` in ``topic`` under ``key``; without them, everywhere.

        Untracking what is not tracked does nothing.
        """
        _check_pid(pid, "untrack")
        if topic is _UNSET and key is _UNSET:
            pool = _pool(tracker)
            for shard in pool.pids:
                if shard is not None and is_alive(shard):
                    await GenServer.call(shard, ("untrack_all", pid))
            return
        if topic is _UNSET or key is _UNSET:
            raise TypeError(
                "Tracker.untrack takes (tracker, pid) to untrack a pid everywhere, or "
                "(tracker, pid, topic, key) for one presence"
            )
        _check_topic(topic)
        await GenServer.call(_shard_pid(tracker, topic), ("untrack", pid, topic, key))

    @staticmethod
    async def update(
        tracker: str, pid: Pid, topic: str, key: Any,
        meta: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]],
    ) -> str:
        """Replace the meta of a presence; returns its new ``phx_ref``.

        ``meta`` is the new meta, or a function of the old one (it gets a copy, with its
        ``phx_ref``). The new meta carries ``"phx_ref_prev"``, the previous ``phx_ref``.
        Raises ``TrackerError("nopresence")`` if the presence is not tracked.
        """
        _check_pid(pid, "update")
        _check_topic(topic)
        change = meta if callable(meta) else check_meta(meta)
        request = ("update", pid, topic, key, change)
        ref: str = _answer(await GenServer.call(_shard_pid(tracker, topic), request), request)
        return ref

    # -- reads (no message) ----------------------------------------------------------------

    @staticmethod
    def get_by_key(tracker: str, topic: str, key: Any) -> _PidMetas:
        """The ``(pid, meta)`` presences in ``topic`` under ``key``, on every node."""
        state = _state_of(tracker, topic)
        if state is None:
            return []
        return [(e.pid, copy_meta(e.meta)) for e in state.get_by_key(topic, key)]

    @staticmethod
    def replicas(tracker: str) -> dict[str, str]:
        """The other replicas the tracker hears from: ``{replica id: "up" | "down"}``.

        As its first shard sees them; a replica id is its name and version, ``"name#vsn"``.
        """
        peers = _pool(tracker).peers[0]
        if not peers:
            return {}
        return {info.peer.id: "down" if info.down else "up" for info in peers.values()}

    @staticmethod
    def list(tracker: str, topic: str) -> _Listing:
        """The ``(key, meta)`` presences in ``topic``, on every node, grouped by key."""
        state = _state_of(tracker, topic)
        if state is None:
            return []
        return [(e.key, copy_meta(e.meta)) for e in state.get_by_topic(topic)]


# -- helpers -------------------------------------------------------------------------------------


async def _start_with(cls: type[Tracker], arg: Any, options: dict[str, Any]) -> Pid:
    return await cls.start_link(arg, **options)


def _answer(result: Any, request: tuple[Any, ...]) -> Any:
    match result:
        case ("ok", value):
            return value
        case ("error", ("already_tracked", pid, topic, key) as reason):
            raise TrackerError(
                reason,
                f"{pid!r} is already tracked in {topic!r} under {key!r}; a pid is tracked "
                "once per topic and key: use update() to change its meta",
            )
        case ("error", "nopresence"):
            _, pid, topic, key, _ = request
            raise TrackerError(
                "nopresence",
                f"cannot update: {pid!r} is not tracked in {topic!r} under {key!r}",
            )
        case ("raise", exc):
            raise exc
    raise TrackerError(("unexpected_reply", result), f"unexpected reply {result!r}")


def _check_pid(pid: Any, what: str) -> None:
    if type(pid) is not Pid:
        raise TypeError(f"Tracker.{what} takes the pid of the tracked process, got {pid!r}")


def _check_topic(topic: Any) -> None:
    if type(topic) is not str:
        raise TypeError(f"a tracker topic is a str, got {topic!r} ({type(topic).__name__})")


def _check_key(key: Any) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"a presence key must be hashable (a str, an int, a tuple), got {key!r}"
        ) from None
