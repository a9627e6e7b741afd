"""The real-time side: the socket, the room channel, and who is online.

The contract, for any Phoenix client: connect to ``/socket`` (``/socket/websocket``), join
``room:<name>`` with ``{"username": ...}`` (the reply carries ``{"messages": [...]}``, the
room's recent history), push ``new_msg`` with ``{"body": text}`` (answered ``ok``), and
receive every member's ``new_msg`` (``id``, ``user``, ``body``, ``at``) and the room's
``presence_state`` and ``presence_diff``.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import beamish
from beamish import CallError, NoReply, Reply, SupervisorError
from beamish.web import Channel, Presence, Socket, SocketState

from . import rooms

PUBSUB = "chat.pubsub"
MAX_NAME = 32  # characters in a username
MAX_BODY = 2000  # characters in a message
ROOM_NAME = re.compile(r"[\w-]{1,40}")  # letters, digits, _ and -


class ChatPresence(Presence, pubsub=PUBSUB):
    """Who is in each room: one key per username, one meta per open tab."""


class RoomChannel(Channel):
    """One member in one room (a process per member and room)."""

    async def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        room = topic.removeprefix("room:")
        if not ROOM_NAME.fullmatch(room):
            return ("error", {"reason": "a room name is 1 to 40 letters, digits, _ or -"})
        username = payload.get("username") if isinstance(payload, dict) else None
        if not isinstance(username, str) or not username.strip():
            return ("error", {"reason": "a username is required"})
        username = username.strip()
        if len(username) > MAX_NAME:
            return ("error", {"reason": f"a username has at most {MAX_NAME} characters"})
        try:
            await rooms.ensure_started(room)
            messages = await rooms.history(room)
        except SupervisorError:
            return ("error", {"reason": "too many rooms open; try an existing one"})
        except CallError:
            return ("error", {"reason": "the room is restarting; try again"})
        last_id = messages[-1].id if messages else None
        # Pushing needs a joined channel: finish the join in handle_info, once joined.
        beamish.send(beamish.self(), ("after_join", last_id))
        # the node too: with `beamish run --nodes N` the page shows which one it reached
        reply = {"messages": [m.to_json() for m in messages], "node": beamish.node()}
        return ("ok", reply, socket.assign(room=room, username=username))

    async def handle_info(self, message: Any, socket: SocketState) -> Any:
        match message:
            case ("after_join", last_id):
                username = socket.assigns["username"]
                await ChatPresence.track(socket, username, {"online_at": _now_ms()})
                self.push(socket, "presence_state", ChatPresence.list(socket))
                # The channel subscribed to the room just after join returned: a message
                # posted in between reached the room but not this client. Send it now (the
                # page drops what it got twice, by id).
                for missed in await rooms.history(socket.assigns["room"], after=last_id):
                    self.push(socket, "new_msg", missed.to_json())
        return NoReply(socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if event != "new_msg":
            return Reply(("error", {"reason": f"unknown event {event!r}"}), socket)
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, str) or not body.strip():
            return Reply(("error", {"reason": "a message needs a body"}), socket)
        if len(body) > MAX_BODY:
            reason = f"a message has at most {MAX_BODY} characters"
            return Reply(("error", {"reason": reason}), socket)
        try:
            # the room numbers it, keeps it and broadcasts it to every member
            posted = await rooms.post(socket.assigns["room"], socket.assigns["username"],
                                      body.strip())
        except CallError:
            return Reply(("error", {"reason": "the room is restarting; try again"}), socket)
        return Reply(("ok", {"id": posted.id}), socket)


class UserSocket(Socket, longpoll=True):
    """Anyone may connect; the name comes with each join. Over a WebSocket, or LongPoll where
    WebSockets are blocked."""

    channels: ClassVar[dict[str, type[Channel]]] = {"room:*": RoomChannel}


def _now_ms() -> int:
    return int(time.time() * 1000)
