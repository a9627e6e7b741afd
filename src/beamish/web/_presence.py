"""Presence: who is in each topic, for channels and their clients (Phoenix.Presence).

How it works. A ``Presence`` subclass is a callback module; starting it starts a supervisor
(``rest_for_one``, registered as ``"<name>.Supervisor"``) of two children:

- a hidden server (registered as ``"<name>.Broadcaster"``) that turns each diff of the
  tracker into a ``presence_diff``: it groups joins and leaves by key, runs ``fetch``,
  broadcasts ``Broadcast(topic, "presence_diff", {"joins": ..., "leaves": ...})`` to the
  topic's subscribers on this node, then runs ``handle_metas`` with the client state.
  Every node's tracker reports every change, remote ones included, so each node broadcasts
  to its own subscribers only (as Phoenix does). Diffs pass through one mailbox, so they are
  broadcast in order, and a slow ``fetch`` delays broadcasts, never tracking;
- the tracker (``beamish.pubsub``'s ``Tracker``, registered as ``"<name>"``), whose
  ``handle_diff`` hands each diff to that server.

``list`` and ``get_by_key`` read the tracker's tables from the caller, with no message, and
run ``fetch`` there. ``track``, ``untrack`` and ``update`` are calls to the tracker's shard.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, overload

from beamish._otp.gen_server.server import GenServer, NoReply, Ok, Stop
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._otp.supervisor.supervisor import Supervisor
from beamish._runtime.events import event
from beamish._runtime.pid import Pid
from beamish.pubsub._pubsub import PubSub
from beamish.pubsub._tracker import Tracker, UserDiffs
from beamish.web._fastlane import fastlane
from beamish.web._messages import Broadcast

__all__ = ["Presence", "SocketLike"]

_TRACKER_OPTIONS = (
    "pool_size", "broadcast_period", "max_silent_periods", "down_period", "permdown_period",
    "replica",
)
_OPTIONS = ("pubsub", "name", "dispatcher", *_TRACKER_OPTIONS)

Presences = dict[str, dict[str, Any]]
"""``{key: {"metas": [meta, ...], ...}}``: the ``presence_state`` payload, by key."""

DIFF = event("beamish", "presence", "diff")


class SocketLike(Protocol):
    """What Presence needs of a channel's socket: its topic and its channel process (both
    set once the channel has joined)."""

    @property
    def topic(self) -> str | None: ...

    @property
    def channel_pid(self) -> Pid | None: ...


class Presence:
    """Track who is in each topic, and keep every client's list in sync.

    ::

        class ChatPresence(Presence, pubsub="chat"):
            pass

        # in the supervision tree, after the PubSub: [(PubSub, {"name": "chat"}), ChatPresence]

        # in a channel, after join:
        await ChatPresence.track(socket, user_id, {"online_at": now})
        push(socket, "presence_state", ChatPresence.list(socket))

    ``track`` makes a process a presence in a topic under a key (a user id, say) with a meta
    (a dict); several presences may share a key (one user, two tabs). ``list`` returns the
    ``presence_state`` payload the ``phoenix`` JavaScript client reads,
    ``{key: {"metas": [{**meta, "phx_ref": ...}, ...]}}``, and every change is broadcast to
    the topic as a ``presence_diff``, ``{"joins": {...}, "leaves": {...}}`` of the same shape.
    A presence ends when it is untracked or its process exits.

    Options, on the class line (``name`` only there) or given at start: ``pubsub``
    (required), ``name`` (the tracker's; default the class's module and name),
    ``dispatcher`` (how diffs reach subscribers, see ``PubSub.broadcast``), and the
    tracker's ``pool_size``, ``broadcast_period``, ``max_silent_periods``, ``down_period``,
    ``permdown_period``, ``replica``.

    Optional callbacks:

    - ``fetch(topic, presences)``: returns ``presences`` extended with more data (a user's
      name from a cache, say), each key keeping its ``"metas"``. Runs for ``list``,
      ``get_by_key`` and every diff, once per call, never per presence. Must not block: it
      runs in the caller of ``list`` and in the presence's broadcaster.
    - ``init(options)`` and ``handle_metas(topic, diff, presences, state)``: a client state
      kept in the broadcaster. ``init`` returns ``Ok(state)``; ``handle_metas`` gets each
      (fetched) diff of ``topic`` and the topic's presences after it, ``{key: [meta, ...]}``,
      and returns ``Ok(state)``. Define both, or neither.
    """

    presence_options: ClassVar[dict[str, Any]] = {}
    tracker_name: ClassVar[str] = ""

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__()
        _check_keys(options, f"class {cls.__qualname__}")
        merged = {**getattr(cls, "presence_options", {}), **options}
        cls.presence_options = merged
        cls.tracker_name = merged.get("name") or f"{cls.__module__}.{cls.__qualname__}"
        if inspect.iscoroutinefunction(cls.fetch):
            raise TypeError(
                f"{cls.__qualname__}.fetch must be a plain function (def, not async def): it "
                "runs in list() and get_by_key(), which do not wait. Keep the data it adds in "
                "memory (a cache, an Agent's state read beforehand)"
            )

    # -- callbacks -------------------------------------------------------------------------

    def fetch(self, topic: str, presences: Presences) -> Presences:
        """Extend ``presences`` (``{key: {"metas": [...]}}``); default: unchanged."""
        return presences

    # -- starting --------------------------------------------------------------------------

    @classmethod
    async def start_link(cls, **options: Any) -> Pid:
        """Start the presence's supervisor, linked to the caller; the PubSub must run."""
        return await _start(cls, options)

    @classmethod
    def child_spec(cls, options: Mapping[str, Any] | None = None) -> ChildSpec:
        """For a supervisor, after the PubSub: ``ChatPresence`` or
        ``(ChatPresence, {"pool_size": 4})``."""
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(
                f"{cls.__qualname__}.child_spec takes a dict of options, e.g. "
                f'({cls.__qualname__}, {{"pool_size": 4}}), got {options!r}'
            )
        given = dict(options or {})
        _resolve(cls, given)  # fail now, not when the supervisor starts it
        return ChildSpec(
            id=cls.tracker_name, start=(_start, (cls, given)), type="supervisor", modules=(cls,)
        )

    # -- tracking (a call to the tracker) --------------------------------------------------

    @overload
    @classmethod
    async def track(cls, socket: SocketLike, key: Any, meta: Mapping[str, Any], /) -> str: ...

    @overload
    @classmethod
    async def track(
        cls, pid: Pid, topic: str, key: Any, meta: Mapping[str, Any], /
    ) -> str: ...

    @classmethod
    async def track(cls, target: Any, *args: Any) -> str:
        """Track a channel (``track(socket, key, meta)``: its process, in its topic) or any
        process (``track(pid, topic, key, meta)``); returns the presence's ``phx_ref``.

        Raises ``TrackerError`` with ``("already_tracked", pid, topic, key)`` if it is.
        """
        pid, topic, (key, meta) = _target(cls, "track", target, args, ("key", "meta"))
        return await Tracker.track(cls.tracker_name, pid, topic, key, meta)

    @overload
    @classmethod
    async def untrack(cls, socket: SocketLike, key: Any, /) -> None: ...

    @overload
    @classmethod
    async def untrack(cls, pid: Pid, topic: str, key: Any, /) -> None: ...

    @classmethod
    async def untrack(cls, target: Any, *args: Any) -> None:
        """Stop tracking: ``untrack(socket, key)`` or ``untrack(pid, topic, key)``."""
        pid, topic, (key,) = _target(cls, "untrack", target, args, ("key",))
        await Tracker.untrack(cls.tracker_name, pid, topic, key)

    @overload
    @classmethod
    async def update(
        cls, socket: SocketLike, key: Any,
        meta: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]], /,
    ) -> str: ...

    @overload
    @classmethod
    async def update(
        cls, pid: Pid, topic: str, key: Any,
        meta: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]], /,
    ) -> str: ...

    @classmethod
    async def update(cls, target: Any, *args: Any) -> str:
        """Replace a presence's meta (or apply a function to it): ``update(socket, key,
        meta)`` or ``update(pid, topic, key, meta)``; returns the new ``phx_ref``.

        Clients see the old meta leave and the new one join, under the same key. Raises
        ``TrackerError("nopresence")`` if it is not tracked.
        """
        pid, topic, (key, meta) = _target(cls, "update", target, args, ("key", "meta"))
        return await Tracker.update(cls.tracker_name, pid, topic, key, meta)

    # -- reads (no message) ----------------------------------------------------------------

    @classmethod
    def list(cls, socket_or_topic: SocketLike | str) -> Presences:
        """The ``presence_state`` of a topic: ``{key: {"metas": [meta, ...]}}``, fetched.

        Keys are strings (other keys are converted with ``str``); every meta carries its
        ``phx_ref`` (and ``phx_ref_prev`` after an update).
        """
        topic = _topic_of(cls, socket_or_topic)
        grouped = group(Tracker.list(cls.tracker_name, topic))
        return _fetch(cls, topic, grouped)

    @classmethod
    def get_by_key(cls, socket_or_topic: SocketLike | str, key: Any) -> dict[str, Any]:
        """The presences under one key, ``{"metas": [...], ...}`` (fetched); ``{}`` if none."""
        topic = _topic_of(cls, socket_or_topic)
        entries = Tracker.get_by_key(cls.tracker_name, topic, key)
        if not entries:
            return {}
        name = _key_str(key)
        fetched = _fetch(cls, topic, {name: {"metas": [meta for _, meta in entries]}})
        found: dict[str, Any] = fetched[name]
        return found


# -- the pieces ----------------------------------------------------------------------------------


def group(pairs: list[tuple[Any, dict[str, Any]]]) -> Presences:
    """``[(key, meta), ...]`` grouped as ``{key: {"metas": [meta, ...]}}``, in order."""
    out: Presences = {}
    for key, meta in pairs:
        name = _key_str(key)
        found = out.get(name)
        if found is None:
            out[name] = {"metas": [meta]}
        else:
            found["metas"].append(meta)
    return out


def _key_str(key: Any) -> str:
    return key if type(key) is str else str(key)


def _fetch(cls: type[Presence], topic: str, presences: Presences) -> Presences:
    if cls.fetch is Presence.fetch or not presences:
        return presences
    return cls().fetch(topic, presences)


def _topic_of(cls: type[Presence], target: Any) -> str:
    if type(target) is str:
        return target
    topic = getattr(target, "topic", None)
    if type(topic) is not str:
        raise TypeError(
            f"{cls.__qualname__} takes a topic (a str) or a joined channel's socket, got "
            f"{target!r}"
        )
    return topic


def _target(
    cls: type[Presence], what: str, target: Any, args: tuple[Any, ...], rest: tuple[str, ...]
) -> tuple[Pid, str, tuple[Any, ...]]:
    forms = (
        f"{cls.__qualname__}.{what}(socket, {', '.join(rest)}) or "
        f"{cls.__qualname__}.{what}(pid, topic, {', '.join(rest)})"
    )
    if type(target) is Pid:
        if len(args) != len(rest) + 1:
            raise TypeError(f"{forms}: got a pid and {len(args)} more argument(s)")
        return target, args[0], args[1:]
    if not hasattr(target, "channel_pid"):
        raise TypeError(f"{forms}: {target!r} is neither a pid nor a channel's socket")
    pid, topic = target.channel_pid, getattr(target, "topic", None)
    if type(pid) is not Pid or type(topic) is not str:
        raise TypeError(
            f"{forms}: {target!r} has no channel process or topic yet; track a socket from "
            "its channel, once joined (in join or after it)"
        )
    if len(args) != len(rest):
        raise TypeError(f"{forms}: got a socket and {len(args)} more argument(s)")
    return pid, topic, args


def _check_keys(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(_OPTIONS), key=repr)
    if unknown:
        raise TypeError(
            f"{where} got unknown presence option(s) {', '.join(map(repr, unknown))}; the "
            f"options are {', '.join(_OPTIONS)}"
        )


def _resolve(cls: type[Presence], given: Mapping[str, Any]) -> dict[str, Any]:
    _check_keys(given, f"{cls.__qualname__}.start_link()")
    if "name" in given and given["name"] != cls.tracker_name:
        raise TypeError(
            f"{cls.__qualname__}: name goes on the class line (class {cls.__qualname__}("
            "Presence, name=...)), so that track() and list() find it"
        )
    options = {**cls.presence_options, **given, "name": cls.tracker_name}
    if type(options.get("pubsub")) is not str:
        raise TypeError(
            f"{cls.__qualname__} needs pubsub= (the name of a running PubSub), e.g. class "
            f'{cls.__qualname__}(Presence, pubsub="chat"); got {options.get("pubsub")!r}'
        )
    dispatcher = options.get("dispatcher")
    if dispatcher is not None and not callable(dispatcher):
        raise TypeError(
            f"dispatcher must be a function (entries, from_pid, message), got {dispatcher!r}"
        )
    has_metas = callable(getattr(cls, "handle_metas", None))
    if has_metas and not callable(getattr(cls, "init", None)):
        raise TypeError(
            f"missing {cls.__qualname__}.init(options) callback for client state: when you "
            "define handle_metas, define init too, e.g.\n\n"
            "    def init(self, options):\n        return Ok({})\n"
        )
    tracker = {k: options[k] for k in _TRACKER_OPTIONS if k in options}
    Tracker.child_spec({"name": cls.tracker_name, "pubsub": options["pubsub"], **tracker})
    return options


async def _start(cls: type[Presence], given: dict[str, Any]) -> Pid:
    options = _resolve(cls, given)
    name = cls.tracker_name
    broadcaster = f"{name}.Broadcaster"
    tracker = {k: options[k] for k in _TRACKER_OPTIONS if k in options}
    children = [
        ChildSpec(
            id="broadcaster", start=(_start_broadcaster, (cls, options, broadcaster)),
            modules=(cls,),
        ),
        _PresenceTracker.child_spec(
            {"name": name, "pubsub": options["pubsub"], "arg": broadcaster, **tracker}
        ),
    ]
    return await Supervisor.start_link(
        children, name=f"{name}.Supervisor", strategy="rest_for_one"
    )


async def _start_broadcaster(cls: type[Presence], options: dict[str, Any], name: str) -> Pid:
    return await _Broadcaster.start_link((cls, options), name=name)


class _PresenceTracker(Tracker):
    """The tracker of a Presence: hands each diff to the presence's broadcaster."""

    def handle_diff(self, diffs: UserDiffs, state: Any) -> Any:
        GenServer.cast(state, diffs)
        return Ok(state)


class _ClientState:
    __slots__ = ("dispatcher", "presence", "pubsub", "state", "topics")

    def __init__(self, presence: Presence, pubsub: str, dispatcher: Any) -> None:
        self.presence = presence
        self.pubsub = pubsub
        self.dispatcher = dispatcher
        self.state: Any = None
        self.topics: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def __repr__(self) -> str:
        return (
            f"<{type(self.presence).__qualname__} broadcaster on {self.pubsub!r}: "
            f"client state {self.state!r}, {len(self.topics)} topic(s) followed>"
        )


class _Broadcaster(GenServer):
    """Turns the tracker's diffs into presence_diff broadcasts, then runs handle_metas."""

    def init(self, arg: tuple[type[Presence], dict[str, Any]]) -> Any:
        cls, options = arg
        data = _ClientState(cls(), options["pubsub"], options.get("dispatcher") or fastlane)
        init = getattr(data.presence, "init", None)
        if not callable(getattr(data.presence, "handle_metas", None)) or init is None:
            return Ok(data)
        result = init(dict(options))
        if inspect.isawaitable(result):
            return _finish_init(result, data)
        return _init_result(result, data)

    def handle_cast(self, diffs: UserDiffs, data: _ClientState) -> Any:
        presence = data.presence
        fetched = type(presence).fetch is not Presence.fetch
        payloads = []
        for topic, (joins, leaves) in diffs.items():
            payload = {"joins": group(joins), "leaves": group(leaves)}
            if fetched:
                payload = {
                    "joins": presence.fetch(topic, payload["joins"]),
                    "leaves": presence.fetch(topic, payload["leaves"]),
                }
            message = Broadcast(topic, "presence_diff", payload)
            PubSub.local_broadcast(data.pubsub, topic, message, data.dispatcher)
            if DIFF.handlers:
                DIFF.emit({"joins": len(joins), "leaves": len(leaves)},
                          {"topic": topic, "presence": type(presence).__qualname__,
                           "pubsub": data.pubsub})
            payloads.append((topic, payload))
        handle_metas = getattr(presence, "handle_metas", None)
        if handle_metas is None:
            return NoReply(data)
        if inspect.iscoroutinefunction(handle_metas):
            return _metas_async(handle_metas, payloads, data)
        for topic, payload in payloads:
            result = handle_metas(topic, payload, _merge_diff(data, topic, payload), data.state)
            if not _set_state(result, data):
                return Stop(("bad_return_value", result), data)
        return NoReply(data)


async def _finish_init(awaitable: Any, data: _ClientState) -> Any:
    return _init_result(await awaitable, data)


def _init_result(result: Any, data: _ClientState) -> Any:
    if not _set_state(result, data):
        return Stop(("bad_return_value", result))
    return Ok(data)


async def _metas_async(
    handle_metas: Callable[..., Any], payloads: list[tuple[str, Any]], data: _ClientState
) -> Any:
    for topic, payload in payloads:
        presences = _merge_diff(data, topic, payload)
        result = await handle_metas(topic, payload, presences, data.state)
        if not _set_state(result, data):
            return Stop(("bad_return_value", result), data)
    return NoReply(data)


def _set_state(result: Any, data: _ClientState) -> bool:
    if type(result) is Ok:
        data.state = result.state
        return True
    if type(result) is tuple and len(result) == 2 and result[0] == "ok":
        data.state = result[1]
        return True
    return False


def _merge_diff(
    data: _ClientState, topic: str, payload: dict[str, Presences]
) -> dict[str, list[dict[str, Any]]]:
    """Apply a diff to the client state's view of ``topic``; return a copy of that view."""
    keys = data.topics.setdefault(topic, {})
    for key, presence in payload["joins"].items():
        metas = keys.setdefault(key, [])
        metas.extend(m for m in presence.get("metas", []) if m not in metas)
    for key, presence in payload["leaves"].items():
        left = presence.get("metas", [])
        remaining = [m for m in keys.get(key, []) if m not in left]
        if remaining:
            keys[key] = remaining
        else:
            keys.pop(key, None)
    if not keys:
        del data.topics[topic]
        return {}
    return {key: list(metas) for key, metas in keys.items()}
