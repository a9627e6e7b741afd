"""The rooms: one process per room, keeping its last messages and announcing new ones.

A room is started the first time someone joins it, under a DynamicSupervisor, and is found
by name through a Registry, so no process holds a table of rooms. The room is also where a
room's messages get their order: it stores each message in the database (through the pool,
so its id is the row's), keeps the last ones in memory for joins, and broadcasts it to the
room's channels itself, so every member sees the messages in the order of the history. A
room that starts (the first join, or a restart after a crash) reads its last messages back
from the database, so the history outlives the room's process and the node.

::

    Rooms (rest_for_one)
    ├── Registry "chat.room_registry"       room name -> room process
    └── DynamicSupervisor "chat.room_supervisor"
        ├── Room "lobby"
        └── Room "elixir" ...
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from beamish import (
    ChildSpec,
    Continue,
    DynamicSupervisor,
    GenServer,
    NoReply,
    Ok,
    Pid,
    Registry,
    Reply,
    StartError,
    Supervisor,
    SupervisorFlags,
)
from beamish.data import Pool
from beamish.web import broadcast

REGISTRY = "chat.room_registry"
SUPERVISOR = "chat.room_supervisor"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, as the room stored and numbered it."""

    id: str  # the message's row in the database: unique, and in the order of the room
    user: str
    body: str
    at: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "body": self.body, "at": self.at}


@dataclass(frozen=True, slots=True)
class RoomState:
    pubsub: str
    name: str
    keep: int  # how many messages the history holds
    db: Pool | None = None
    history: tuple[Message, ...] = ()

    @property
    def topic(self) -> str:
        return f"room:{self.name}"

    def add(self, message: Message) -> RoomState:
        """The state with ``message`` at the end of the history (the oldest ones go)."""
        kept = (*self.history, message)[-self.keep:] if self.keep > 0 else ()
        return replace(self, history=kept)

    def after(self, message_id: str | None) -> list[Message]:
        """The kept messages that follow ``message_id`` (all of them if it is not kept)."""
        ids = [m.id for m in self.history]
        start = ids.index(message_id) + 1 if message_id in ids else 0
        return list(self.history[start:])


_INSERT = "INSERT INTO messages (room, user, body, at) VALUES (?1, ?2, ?3, ?4) RETURNING id"
_LAST = "SELECT id, user, body, at FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT ?2"


class Room(GenServer):
    """One room: its history, and the order of its messages."""

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        """``(Room, "lobby")``: the room named "lobby". Restarted if it crashes (it reads its
        history back from the database), never after a clean stop."""
        return ChildSpec(id=arg, start=(cls.start_named, (arg,)), restart="transient")

    @classmethod
    async def start_named(cls, pubsub: str, keep: int, db: Pool, name: str) -> Pid:
        # pubsub, keep and db come first: the supervisor's extra_arguments
        return await cls.start_link((pubsub, keep, db, name), name=Registry.via(REGISTRY, name))

    def init(self, arg: tuple[str, int, Pool, str]) -> Ok:
        pubsub, keep, db, name = arg
        return Ok(RoomState(pubsub, name, keep, db), Continue("load"))  # before any call

    async def handle_continue(self, term: Any, state: RoomState) -> NoReply:
        assert state.db is not None
        rows = await state.db.fetch(_LAST, state.name, state.keep)
        for row in reversed(rows):
            state = state.add(Message(str(row["id"]), row["user"], row["body"], row["at"]))
        return NoReply(state)

    async def handle_call(self, request: Any, from_: Any, state: RoomState) -> Reply:
        match request:
            case ("history", after):
                return Reply(state.after(after), state)
            case ("post", str(user), str(body)):
                assert state.db is not None
                at = _now()
                row = await state.db.fetch_value(_INSERT, state.name, user, body, at)
                message = Message(str(row), user, body, at)
                broadcast(state.pubsub, state.topic, "new_msg", message.to_json())
                return Reply(message, state.add(message))
        raise ValueError(f"a room does not understand {request!r}")


class Rooms(Supervisor):
    """The rooms' subtree: the registry first, then the supervisor of the rooms."""

    def init(self, arg: tuple[str, int, int, Pool]) -> SupervisorFlags:
        pubsub, keep, max_rooms, db = arg
        children = [
            (Registry, {"keys": "unique", "name": REGISTRY}),
            {
                "id": "rooms",
                "start": (_start_room_supervisor, (pubsub, keep, max_rooms, db)),
                "type": "supervisor",
            },
        ]
        # the rooms are linked to the registry: if it goes, they go, and restart after it
        flags: SupervisorFlags = Supervisor.init(children, strategy="rest_for_one")
        return flags


async def _start_room_supervisor(pubsub: str, keep: int, max_rooms: int, db: Pool) -> Pid:
    return await DynamicSupervisor.start_link(
        name=SUPERVISOR, max_children=max_rooms, extra_arguments=(pubsub, keep, db)
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
