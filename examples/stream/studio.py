"""The stream's processes. ::

    stream.supervisor (rest_for_one)
    ├── PubSub "stream.pubsub"
    ├── StreamPresence        who watches (a presence per viewer's page)
    ├── Relay "main"          on every node: what a viewer who joins here starts from
    └── Singleton "stream.studio.main"        once per cluster
        └── Studio (rest_for_one)
            ├── Stage "main"  the stream's state: numbering, the chat, on air, the count
            └── Camera "main" the broadcaster: a segment every 1/fps seconds, to the Stage

**One broadcast per segment, whatever the audience.** The Stage broadcasts each segment
once, as a binary frame built once for every viewer (the fastlane); the viewers' channel
processes are not woken. Each node's Relay keeps the latest one, which a viewer who joins
late gets first. The channel coalesces segments (``coalesce = ["segment"]``): a viewer whose
connection cannot keep up skips to the newest segment instead of queueing the ones in
between, and sees by the segments' numbers how many it skipped; the page says so.

**The viewer count is counted, not diffed.** Each viewer's channel is tracked by Presence
under ``viewers:<stream>``, a topic no client joins; the Stage counts the presences every
second and broadcasts ``viewers`` only when the count changed. Presence's diffs would
reach every viewer at every join and leave (quadratic in the audience, at a premiere);
one number a second does not.

**The chat is not persisted**: the Relays keep the last ``CHAT_KEEP`` messages for those
who join, and the Stage broadcasts each new one.

**Once per cluster, joins on every node.** The Studio (the Stage and its Camera) runs once in
the cluster (``Singleton.spec``; on a node alone, there). Each node's Relay is subscribed to
the stream's topic and keeps what the Stage broadcast last (the latest segment, the chat's
last messages, the viewer count): a viewer joins from its own node's Relay, with no call
across nodes, and only a chat message or a change of air goes to the Stage. When the
Studio's node goes, another node's guard starts it, and its Stage goes on from that node's
Relay: the segments number on and the chat keeps its last messages (a successor starts on
air). The viewers of the node that went reconnect, to the others.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import beamish
from beamish import Continue, GenServer, NoReply, Ok, Reply, Supervisor, SupervisorFlags
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.web import Broadcast, Presence, broadcast

from . import segments

PUBSUB = "stream.pubsub"
CHAT_KEEP = 50
MAX_BODY = 500  # characters in a chat message
MAX_NAME = 32


class StreamPresence(Presence, pubsub=PUBSUB):
    """The viewers of each stream, one presence per page."""


def stage_name(stream: str) -> str:
    return f"stream.stage.{stream}"


def topic_of(stream: str) -> str:
    return f"stream:{stream}"


def viewers_topic(stream: str) -> str:
    return f"viewers:{stream}"


def studio_name(stream: str) -> str:
    return f"stream.studio.{stream}"


def relay_table(stream: str) -> str:
    return f"stream.relay.{stream}"


def _stage(stream: str) -> Any:
    """The stream's Stage, on whichever node its studio runs (here, for a stage run alone)."""
    return Singleton.beside(studio_name(stream), stage_name(stream))


@dataclass(slots=True)
class Relayed:
    """What a node's Relay has heard of a stream."""

    latest: bytes | None = None
    seq: int = 0
    chat: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CHAT_KEEP))
    viewers: int = 0


class Relay(GenServer):
    """On every node: the stream's latest segment, chat messages and viewer count, as the
    Stage broadcast them (see the module)."""

    @classmethod
    async def start_for(cls, stream: str) -> beamish.Pid:
        return await cls.start_link(stream, name=f"stream.relay_server.{stream}")

    def init(self, stream: str) -> Ok:
        relayed = Relayed()  # the table's, which the state holds too
        beamish.new_table(relay_table(stream), relayed)
        PubSub.subscribe(PUBSUB, topic_of(stream))
        return Ok(relayed)

    def handle_info(self, message: Any, relayed: Relayed) -> NoReply:
        match message:
            case Broadcast(_, "segment", bytes(segment)):
                seq = segments.split(segment)[0]["seq"]
                if seq > relayed.seq:
                    relayed.latest, relayed.seq = segment, seq
            case Broadcast(_, "chat", dict(chat)):
                relayed.chat.append(chat)
            case Broadcast(_, "viewers", {"count": int(count)}):
                relayed.viewers = count
        return NoReply(relayed)


def relayed(stream: str) -> Relayed | None:
    """This node's Relay of ``stream``, or None if there is no such stream."""
    table = beamish.find_table(relay_table(stream))
    return table.data if table is not None else None  # type: ignore[no-any-return]


@dataclass(slots=True)
class StageState:
    """What only the Stage knows; what viewers join from is in the Relays."""

    stream: str
    seq: int = 0
    chat_seq: int = 0
    viewers: int = 0
    on_air: bool = True  # off air, the camera's segments are not sent (an intermission)


class Stage(GenServer):
    """One stream's state (see the module)."""

    @classmethod
    async def start_for(cls, stream: str) -> beamish.Pid:
        return await cls.start_link(stream, name=stage_name(stream))

    def init(self, stream: str) -> Ok:
        beamish.send_after(beamish.self(), "count", 1.0)
        state = StageState(stream)
        heard = relayed(stream)
        if heard is not None:  # a successor goes on from what this node's viewers saw
            state.seq, state.viewers = heard.seq, heard.viewers
            state.chat_seq = max((m["id"] for m in heard.chat), default=0)
        return Ok(state)

    def handle_cast(self, request: Any, state: StageState) -> NoReply:
        match request:
            case ("segment", int(seq), bytes(segment)) if state.on_air:
                state.seq = seq
                broadcast(PUBSUB, topic_of(state.stream), "segment", segment)
        return NoReply(state)

    def handle_call(self, request: Any, from_: Any, state: StageState) -> Reply:
        match request:
            case "seq":
                return Reply(state.seq, state)
            case ("on_air", bool(on_air)):
                state.on_air = on_air
                return Reply(on_air, state)
            case ("chat", str(user), str(body)):
                state.chat_seq += 1
                message = {"id": state.chat_seq, "user": user, "body": body,
                           "at": round(time.time() * 1000)}
                broadcast(PUBSUB, topic_of(state.stream), "chat", message)
                return Reply(message, state)
        raise ValueError(f"a stage does not understand {request!r}")

    def handle_info(self, message: Any, state: StageState) -> NoReply:
        if message == "count":
            beamish.send_after(beamish.self(), "count", 1.0)
            count = sum(len(p["metas"]) for p in
                        StreamPresence.list(viewers_topic(state.stream)).values())
            if count != state.viewers:
                state.viewers = count
                broadcast(PUBSUB, topic_of(state.stream), "viewers", {"count": count})
        return NoReply(state)


class Camera(GenServer):
    """The built-in broadcaster: a test card at ``fps`` segments a second of ``size`` bytes."""

    @classmethod
    async def start_for(cls, stream: str, fps: float, size: int) -> beamish.Pid:
        return await cls.start_link((stream, fps, size), name=f"stream.camera.{stream}")

    def init(self, arg: tuple[str, float, int]) -> Ok:
        stream, fps, size = arg
        return Ok((stream, fps, size, 0, time.monotonic()), Continue("resume"))

    async def handle_continue(self, term: Any, state: Any) -> NoReply:
        # a camera that restarts goes on from the stage's last number: viewers never see
        # the numbers go back
        stream, fps, size, _, due = state
        seq: int = await GenServer.call(stage_name(stream), "seq")
        beamish.send_after(beamish.self(), "shoot", 1 / fps)
        return NoReply((stream, fps, size, seq, due + 1 / fps))

    def handle_info(self, message: Any, state: Any) -> NoReply:
        if message != "shoot":
            return NoReply(state)
        stream, fps, size, seq, due = state
        # on a steady beat: the next segment is due one period after this one was
        due += 1 / fps
        beamish.send_after(beamish.self(), "shoot", max(0.0, due - time.monotonic()))
        seq += 1
        at = time.time()
        segment = segments.encode(seq, at, segments.test_card(seq, at=at, size=size))
        GenServer.cast(stage_name(stream), ("segment", seq, segment))
        return NoReply((stream, fps, size, seq, due))


# -- what the channels call -------------------------------------------------------------------


def exists(stream: str) -> bool:
    return relayed(stream) is not None


def joined(stream: str) -> tuple[bytes | None, list[dict[str, Any]], int]:
    """The latest segment, the chat's last messages and the viewer count, from this node's
    Relay (no message: a join never waits on the Stage)."""
    heard = relayed(stream)
    if heard is None:
        raise LookupError(f"there is no stream {stream!r} on this node")
    return heard.latest, list(heard.chat), heard.viewers


async def set_on_air(stream: str, on_air: bool) -> None:
    """Put the stream on air, or off (the camera's segments are dropped meanwhile; viewers
    keep the last one). The benchmark takes it off air while its viewers join."""
    await GenServer.call(_stage(stream), ("on_air", on_air))


async def chat(stream: str, user: str, body: str) -> dict[str, Any]:
    """Post to the stream's chat; the Stage broadcasts it to every viewer."""
    message: dict[str, Any] = await GenServer.call(_stage(stream), ("chat", user, body))
    return message


class Studio(Supervisor):
    """A stream's Stage and Camera, together on one node: ``(Studio, (stream, fps, size))``."""

    def init(self, arg: tuple[str, float, int]) -> SupervisorFlags:
        stream, fps, size = arg
        children = [
            {"id": "stage", "start": (Stage.start_for, (stream,))},
            {"id": "camera", "start": (Camera.start_for, (stream, fps, size))},
        ]
        # a camera is cheap to restart: more restarts allowed than OTP's default (3 in 5 s)
        flags: SupervisorFlags = Supervisor.init(
            children, strategy="rest_for_one", max_restarts=100, max_seconds=10
        )
        return flags
