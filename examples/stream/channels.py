"""The stream's real-time side: a topic per stream, ``stream:<name>``.

The contract, for any Phoenix client: join ``stream:main`` with ``{"name": ...}`` (a name
for the chat; a viewer who gives none watches without chatting). The reply carries
``{"chat": [...], "viewers": n}``; the latest segment follows at once, then every new one:
``segment`` is a binary payload, a JSON line ``{"seq", "at"}`` and the SVG picture. A
viewer that cannot keep up gets the newest segment and skips the ones in between. Push
``chat`` with ``{"body": text}`` to talk (answered ``ok``); everyone receives ``chat``
(``id``, ``user``, ``body``, ``at``) and ``viewers`` (``count``) when it changes.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import beamish
from beamish import CallError, NoReply, Reply
from beamish.web import Channel, Socket, SocketState

from . import studio

STREAM_NAME = re.compile(r"[\w-]{1,40}")


class StreamChannel(Channel):
    """One viewer of one stream (a process per viewer)."""

    coalesce: ClassVar = ["segment"]  # a slow viewer skips to the newest segment

    async def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        stream = topic.removeprefix("stream:")
        if not STREAM_NAME.fullmatch(stream) or not studio.exists(stream):
            return ("error", {"reason": f"there is no stream {stream!r}"})
        name = payload.get("name") if isinstance(payload, dict) else None
        if name is not None and (not isinstance(name, str) or not 0 < len(name.strip())
                                 <= studio.MAX_NAME):
            return ("error", {"reason": f"a name has 1 to {studio.MAX_NAME} characters"})
        latest, chat, viewers = studio.joined(stream)
        beamish.send(beamish.self(), ("after_join", latest))
        socket = socket.assign(stream=stream, name=name.strip() if name else None)
        return ("ok", {"chat": chat, "viewers": viewers}, socket)

    async def handle_info(self, message: Any, socket: SocketState) -> Any:
        match message:
            case ("after_join", latest):
                await studio.StreamPresence.track(
                    beamish.self(), studio.viewers_topic(socket.assigns["stream"]),
                    str(socket.channel_pid), {"name": socket.assigns["name"]},
                )
                if latest is not None:  # a viewer who joins late starts from the latest
                    self.push(socket, "segment", latest)
        return NoReply(socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if event != "chat":
            return Reply(("error", {"reason": f"unknown event {event!r}"}), socket)
        name = socket.assigns["name"]
        if name is None:
            return Reply(("error", {"reason": "join with a name to chat"}), socket)
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, str) or not body.strip():
            return Reply(("error", {"reason": "a message needs a body"}), socket)
        if len(body) > studio.MAX_BODY:
            reason = f"a message has at most {studio.MAX_BODY} characters"
            return Reply(("error", {"reason": reason}), socket)
        try:
            message = await studio.chat(socket.assigns["stream"], name, body.strip())
        except CallError:
            return Reply(("error", {"reason": "the stream is restarting; try again"}), socket)
        return Reply(("ok", {"id": message["id"]}), socket)


class StreamSocket(Socket, pubsub=studio.PUBSUB, max_queue_bytes=4_194_304):
    """Anyone may watch. The queue bound (4 MiB) holds a few segments: with ``coalesce`` a
    slow viewer never reaches it. WebSocket only: the phoenix client cannot read binary
    frames over LongPoll, and the segments are binary."""

    channels: ClassVar[dict[str, type[Channel]]] = {"stream:*": StreamChannel}
