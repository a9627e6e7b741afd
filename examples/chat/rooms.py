"""The rooms: one process per room, keeping its last messages and announcing new ones.

A room is started the first time someone joins it, under a DynamicSupervisor, and is found
by name through a Registry, so no process holds a table of rooms. The room is also where a
room's messages get their order: it numbers each message, keeps it, and broadcasts it to
the room's channels itself, so every member sees the messages in the order of the history.

::

    Rooms (rest_for_one)
    ├── Registry "chat.room_registry"       room name -> room process
    └── DynamicSupervisor "chat.room_supervisor"
        ├── Room "lobby"
        └── Room "elixir" ...
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from beamish import (
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    Ok,
    Pid,
    Registry,
    Reply,
    StartError,
    Supervisor,
    SupervisorFlags,
)
from beamish.web import broadcast

REGISTRY = "chat.room_registry"
SUPERVISOR = "chat.room_supervisor"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, as the room numbered and kept it."""

    id: str  # unique: the room's incarnation and the message's number, "3f9a1c2e-17"
    user: str
    body: str
    at: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "body": self.body, "at": self.at}


@dataclass(frozen=True, slots=True)
class RoomState:
    pubsub: str
    topic: str
    keep: int  # how many messages the history holds
    incarnation: str  # new at each start, so that ids stay unique if the room restarts
    posted: int = 0
    history: tuple[Message, ...] = ()

    def post(self, user: str, body: str) -> tuple[Message, RoomState]:
        message = Message(f"{self.incarnation}-{self.posted + 1}", user, body, _now())
        kept = (*self.history, message)[-self.keep:] if self.keep > 0 else ()
        return message, replace(self, posted=self.posted + 1, history=kept)

    def after(self, message_id: str | None) -> list[Message]:
        """The kept messages that follow ``message_id`` (all of them if it is not kept)."""
        ids = [m.id for m in self.history]
        start = ids.index(message_id) + 1 if message_id in ids else 0
        return list(self.history[start:])


class Room(GenServer):
    """One room: its history, and the order of its messages."""

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """``(Room, "lobby")``: the room named "lobby". Restarted if it crashes (with an empty
        history), never after a clean stop."""
        return ChildSpec(id=arg, start=(cls.start_named, (arg,)), restart="transient")

    @classmethod
    async def start_named(cls, pubsub: str, keep: int, name: str) -> Pid:
        # pubsub and keep come first: the supervisor's extra_arguments
        return await cls.start_link((pubsub, keep, name), name=Registry.via(REGISTRY, name))

    def init(self, arg: tuple[str, int, str]) -> Ok:
        pubsub, keep, name = arg
        return Ok(RoomState(pubsub, f"room:{name}", keep, incarnation=secrets.token_hex(4)))

    def handle_call(self, request: Any, from_: Any, state: RoomState) -> Reply:
        match request:
            case ("history", after):
                return Reply(state.after(after), state)
            case ("post", str(user), str(body)):
                message, state = state.post(user, body)
                broadcast(state.pubsub, state.topic, "new_msg", message.to_json())
                return Reply(message, state)
        raise ValueError(f"a room does not understand {request!r}")


class Rooms(Supervisor):
    """The rooms' subtree: the registry first, then the supervisor of the rooms."""

    def init(self, arg: tuple[str, int, int]) -> SupervisorFlags:
        pubsub, keep, max_rooms = arg
        children = [
            (Registry, {"keys": "unique", "name": REGISTRY}),
            {
                "id": "rooms",
                "start": (_start_room_supervisor, (pubsub, keep, max_rooms)),
                "type": "supervisor",
            },
        ]
        # the rooms are linked to the registry: if it goes, they go, and restart after it
        flags: SupervisorFlags = Supervisor.init(children, strategy="rest_for_one")
        return flags


async def _start_room_supervisor(pubsub: str, keep: int, max_rooms: int) -> Pid:
    return await DynamicSupervisor.start_link(
        name=SUPERVISOR, max_children=max_rooms, extra_arguments=(pubsub, keep)
    )


# -- the client side: what the channels call ----------------------------------------------------


async def ensure_started(name: str) -> Pid:
    """The room's process, started if it is not running yet.

    Raises ``SupervisorError("max_children")`` when there are already as many rooms as
    allowed.
    """
    found = Registry.lookup(REGISTRY, name)
    if found:
        return found[0][0]
    try:
        pid: Pid = await DynamicSupervisor.start_child(SUPERVISOR, (Room, name))
    except StartError as error:
        match error.reason:
            case ("already_started", Pid() as pid):  # someone else started it meanwhile
                return pid
        raise
    return pid


async def history(name: str, *, after: str | None = None) -> list[Message]:
    """The room's kept messages, oldest first; only those after the message ``after``."""
    messages: list[Message] = await GenServer.call(
        Registry.via(REGISTRY, name), ("history", after)
    )
    return messages


async def post(name: str, user: str, body: str) -> Message:
    """Add a message to the room; the room broadcasts it as ``new_msg`` to its members."""
    message: Message = await GenServer.call(Registry.via(REGISTRY, name), ("post", user, body))
    return message


def count() -> int:
    """How many rooms are running."""
    return Registry.count(REGISTRY)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
