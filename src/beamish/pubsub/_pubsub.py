"""PubSub: topic-based publish/subscribe between processes, on one node and across a cluster.

How it works. A PubSub is a duplicate-key ``Registry`` (keys by topic, partitioned) plus an
adapter for other nodes. ``subscribe`` registers the caller under the topic, with optional
metadata; the registry links the caller to a partition, which drops its subscriptions when
it exits. ``broadcast`` reads the subscribers straight from the registry's tables (no
message to any PubSub process) and sends to each — or hands them to a *dispatcher*, which
decides what each subscriber gets (Channels use one to write an already-encoded frame
straight to each WebSocket: Phoenix's "fastlane"). Sends never block, so a slow subscriber
can never hold a publisher up: its messages wait in its own mailbox.

Messages are isolated per subscriber, as every ``send`` is: broadcast immutable values
(tuples, frozen dataclasses, str, bytes) and the fan-out copies nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beamish._otp.registry.registry import Registry, _table
from beamish._otp.supervisor.child_spec import ChildSpec
from beamish._runtime.api import current_runtime, send
from beamish._runtime.events import event
from beamish._runtime.pid import Pid
from beamish._runtime.tables import find_table, new_table
from beamish.pubsub._adapter import Adapter, LocalAdapter

__all__ = ["Dispatcher", "PubSub", "dispatcher_name", "dispatcher_named", "register_dispatcher"]

Dispatcher = Callable[[list[tuple[Pid, Any]], Pid | None, Any], Any]
"""``dispatcher(entries, from_pid, message)``: deliver ``message`` to the subscribers in
``entries`` (``(pid, metadata)`` pairs), skipping ``from_pid`` if given."""

_ADAPTERS = "beamish.pubsub"  # a running PubSub's adapter: the table (_ADAPTERS, name)

# Dispatchers by name, so that a broadcast can be described on the wire.
_DISPATCHERS: dict[str, Dispatcher] = {}
_DISPATCHER_NAMES: dict[Any, str] = {}

BROADCAST = event("beamish", "pubsub", "broadcast")
_NONE: dict[str, Any] = {}  # no measurements (never written)


def register_dispatcher(name: str, dispatcher: Dispatcher) -> Dispatcher:
    """Give ``dispatcher`` a name by which other nodes find it (they must register the same
    function under the same name: define it in a module every node imports)."""
    if type(name) is not str or not name:
        raise TypeError(f"a dispatcher's name is a non-empty str, got {name!r}")
    if not callable(dispatcher):
        raise TypeError(f"a dispatcher is a function (entries, from_pid, message), got "
                        f"{dispatcher!r}")
    taken = _DISPATCHERS.get(name)
    if taken is not None and taken is not dispatcher:
        raise ValueError(f"the dispatcher name {name!r} is taken by {taken!r}")
    _DISPATCHERS[name] = dispatcher
    _DISPATCHER_NAMES[dispatcher] = name
    return dispatcher


def dispatcher_name(dispatcher: Dispatcher | None) -> str | None:
    """The name a broadcast's dispatcher travels under (None for the plain one)."""
    if dispatcher is None:
        return None
    name = _DISPATCHER_NAMES.get(dispatcher)
    if name is None:
        raise TypeError(
            f"the dispatcher {dispatcher!r} has no name, so a broadcast through it cannot "
            "reach other nodes: register it with PubSub.register_dispatcher(name, fn)"
        )
    return name


def dispatcher_named(name: str | None) -> Dispatcher | None:
    """The dispatcher registered as ``name``; raises LookupError naming it if none is."""
    if name is None:
        return None
    found = _DISPATCHERS.get(name)
    if found is None:
        raise LookupError(f"no dispatcher is registered as {name!r} on this node")
    return found


def _plain(entries: list[tuple[Pid, Any]], from_pid: Pid | None, message: Any) -> None:
    if from_pid is None:
        for pid, _ in entries:
            send(pid, message)
    else:
        for pid, _ in entries:
            if pid != from_pid:
                send(pid, message)


class PubSub:
    """Publish/subscribe by topic (Phoenix.PubSub, in Python's idiom)::

        await PubSub.start_link("chat")           # or put (PubSub, {"name": "chat"}) in a tree
        PubSub.subscribe("chat", "room:lobby")    # the calling process
        PubSub.broadcast("chat", "room:lobby", ("new_msg", "hello"))
        assert await receive() == ("new_msg", "hello")

    A process subscribed twice to a topic gets each message twice; ``unsubscribe`` drops all
    its subscriptions to the topic. Subscriptions end when the subscriber exits.
    """

    @staticmethod
    async def start_link(
        name: str, *, partitions: int = 1, adapter: Callable[[str], Adapter] | None = None
    ) -> Pid:
        """Start a PubSub named ``name``: its registry and its adapter (single node by
        default; ``adapter`` builds one from the node name)."""
        runtime = current_runtime()
        built = (adapter(runtime.node) if adapter is not None
                 else LocalAdapter(runtime.node, name, runtime._tables))
        pid = await Registry.start_link(keys=("duplicate", "key"), name=name,
                                        partitions=partitions)
        new_table((_ADAPTERS, name), built, owner=pid)  # gone with the registry
        return pid

    @staticmethod
    def child_spec(options: dict[str, Any]) -> ChildSpec:
        """For a supervisor: ``(PubSub, {"name": "chat", "partitions": 4})``."""
        if not isinstance(options, dict) or "name" not in options:
            raise TypeError(f"PubSub's child spec takes a dict with a name, got {options!r}")
        unknown = set(options) - {"name", "partitions", "adapter"}
        if unknown:
            raise TypeError(
                f"unknown PubSub option(s) {', '.join(sorted(unknown))}; the options are "
                "name, partitions, adapter"
            )
        return ChildSpec(
            id=("PubSub", options["name"]), start=(_start, (dict(options),)),
            type="supervisor", modules=(PubSub,),
        )

    @staticmethod
    def subscribe(pubsub: str, topic: str, metadata: Any = None) -> None:
        """Subscribe the calling process to ``topic``, with ``metadata`` for dispatchers."""
        _check_topic(topic)
        Registry.register(pubsub, topic, metadata)

    @staticmethod
    def unsubscribe(pubsub: str, topic: str) -> None:
        """Drop every subscription of the calling process to ``topic``."""
        Registry.unregister(pubsub, topic)

    @staticmethod
    def subscribers(pubsub: str, topic: str) -> list[tuple[Pid, Any]]:
        """The ``(pid, metadata)`` subscriptions to ``topic`` on this node."""
        return Registry.lookup(pubsub, topic)

    @staticmethod
    def topics(pubsub: str, *, limit: int = 10_000) -> dict[str, int]:
        """The topics with subscribers on this node and how many each has (channels and
        plain subscribers alike), for at most ``limit`` topics: for introspection (the
        dashboard), not for routing."""
        return _table(pubsub).key_counts(limit)[0]

    @staticmethod
    def broadcast(pubsub: str, topic: str, message: Any,
                  dispatcher: Dispatcher | None = None) -> None:
        """Send ``message`` to every subscriber of ``topic``, on every node.

        The other nodes are handed it first, then this node's subscribers get it (Phoenix's
        order): a large fan-out here does not hold up the others'."""
        adapter = _adapter(pubsub)
        adapter.broadcast(topic, message, dispatcher, None)
        PubSub.local_broadcast(pubsub, topic, message, dispatcher)
        if BROADCAST.handlers:
            BROADCAST.emit(_NONE, {"pubsub": pubsub, "topic": topic, "from": None})

    @staticmethod
    def broadcast_from(pubsub: str, from_pid: Pid, topic: str, message: Any,
                       dispatcher: Dispatcher | None = None) -> None:
        """Like ``broadcast``, skipping the subscriptions of ``from_pid``."""
        adapter = _adapter(pubsub)
        adapter.broadcast(topic, message, dispatcher, from_pid)
        PubSub.local_broadcast_from(pubsub, from_pid, topic, message, dispatcher)
        if BROADCAST.handlers:
            BROADCAST.emit(_NONE, {"pubsub": pubsub, "topic": topic, "from": from_pid})

    @staticmethod
    def local_broadcast(pubsub: str, topic: str, message: Any,
                        dispatcher: Dispatcher | None = None) -> None:
        """Send ``message`` to the subscribers of ``topic`` on this node only."""
        _adapter(pubsub)  # a clear error if no such PubSub runs
        fan_out = dispatcher or _plain
        Registry.dispatch(pubsub, topic, lambda entries: fan_out(entries, None, message))

    @staticmethod
    def local_broadcast_from(pubsub: str, from_pid: Pid, topic: str, message: Any,
                             dispatcher: Dispatcher | None = None) -> None:
        _adapter(pubsub)
        fan_out = dispatcher or _plain
        Registry.dispatch(pubsub, topic, lambda entries: fan_out(entries, from_pid, message))

    @staticmethod
    def direct_broadcast(node: str, pubsub: str, topic: str, message: Any,
                         dispatcher: Dispatcher | None = None) -> None:
        """Send ``message`` to the subscribers of ``topic`` on ``node`` only (unknown node:
        nothing is delivered, and no error)."""
        adapter = _adapter(pubsub)
        if node == adapter.node_name():
            PubSub.local_broadcast(pubsub, topic, message, dispatcher)
        else:
            adapter.direct_broadcast(node, topic, message, dispatcher, None)

    @staticmethod
    def node_name(pubsub: str) -> str:
        return _adapter(pubsub).node_name()

    register_dispatcher = staticmethod(register_dispatcher)


def _adapter(pubsub: str) -> Adapter:
    found = find_table((_ADAPTERS, pubsub))
    adapter: Adapter | None = found.data if found is not None else None
    if adapter is None:
        from beamish._errors import RegistryError

        raise RegistryError(
            ("unknown_pubsub", pubsub),
            f"no PubSub named {pubsub!r} is running; start it with PubSub.start_link("
            f"{pubsub!r}) or put (PubSub, {{'name': {pubsub!r}}}) in a supervisor first",
        )
    return adapter


def _check_topic(topic: Any) -> None:
    if type(topic) is not str:
        raise TypeError(f"a PubSub topic is a str, got {topic!r} ({type(topic).__name__})")


async def _start(options: dict[str, Any]) -> Pid:
    name = options.pop("name")
    return await PubSub.start_link(name, **options)
