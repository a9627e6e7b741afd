"""The feed's real-time side.

The contract, for any Phoenix client: connect with ``{"user": name}`` (the demo signs in by
name alone; an application of yours checks a token in ``connect``), then join
``timeline:<name>``, your own home timeline (the reply: ``posts``, newest first, and
``following``), and push:

- ``post`` ``{"body": text}`` or ``{"body": text, "reply_to": id}``: answered ``{"id"}``
  once it is stored;
- ``like`` / ``unlike`` ``{"post": id}``: answered ``{"likes": n}``;
- ``follow`` / ``unfollow`` ``{"name": user}``;
- ``thread`` ``{"post": id}``: answered ``{"replies": [...]}``;
- ``suggestions``: answered ``{"names": [...]}``, users you do not follow yet.

It receives ``post`` (a new post of whom you follow, or yours), ``post_updated`` (likes or
replies changed) and ``reset`` (the whole window again: after a follow, or a restart of the
timeline's process). ``online:feed`` is who is online (Presence), as in the chat. An
action that waited past the pool's timeout for the database is answered ``error`` with
``"the database is busy; try again"`` (the page stays joined; nothing was stored).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import beamish
from beamish import CallError, NoReply, Reply
from beamish.data import Pool, PoolTimeout
from beamish.web import Channel, Presence, Socket, SocketState

from . import store, timelines

PUBSUB = "feed.pubsub"
NAME = re.compile(r"[A-Za-z0-9_]{1,24}")
MAX_BODY = 500
DB: dict[str, Pool] = {}  # the pool, set by the application when it starts


class FeedPresence(Presence, pubsub=PUBSUB):
    """Who is online: one key per user, one meta per open page."""


def _db() -> Pool:
    return DB["pool"]


class TimelineChannel(Channel):
    """One page of one user (a process per page)."""

    async def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        name = topic.removeprefix("timeline:")
        if name != socket.assigns["user"]:
            return ("error", {"reason": "a timeline is joined by its own user only"})
        try:
            timeline, snapshot = await timelines.attach(name, socket.assigns["user_id"],
                                                        beamish.self())
        except (CallError, beamish.SupervisorError):
            return ("error", {"reason": "too many people online; try again later"})
        beamish.monitor(timeline)
        return ("ok", snapshot, socket)

    async def handle_info(self, message: Any, socket: SocketState) -> Any:
        match message:
            case beamish.Down():  # the timeline went (a crash): attach to its successor
                timeline, snapshot = await timelines.attach(
                    socket.assigns["user"], socket.assigns["user_id"], beamish.self()
                )
                beamish.monitor(timeline)
                self.push(socket, "reset", snapshot)
        return NoReply(socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if not isinstance(payload, dict):
            return Reply(("error", {"reason": "a payload is an object"}), socket)
        handler = _ACTIONS.get(event)
        if handler is None:
            return Reply(("error", {"reason": f"unknown event {event!r}"}), socket)
        try:
            result = await handler(socket, payload)
        except PoolTimeout:  # every connection busy past the pool's wait: say so, stay up
            return Reply(("error", {"reason": "the database is busy; try again"}), socket)
        return Reply(result, socket)


async def _post(socket: SocketState, payload: dict[str, Any]) -> Any:
    body = payload.get("body")
    reply_to = payload.get("reply_to")
    if not isinstance(body, str) or not body.strip():
        return ("error", {"reason": "a post needs a body"})
    if len(body) > MAX_BODY:
        return ("error", {"reason": f"a post has at most {MAX_BODY} characters"})
    if reply_to is not None and (isinstance(reply_to, bool) or not isinstance(reply_to, int)):
        return ("error", {"reason": "reply_to is a post's id"})
    db = _db()
    parent = await store.get_post(db, reply_to) if reply_to is not None else None
    if reply_to is not None and parent is None:
        return ("error", {"reason": f"there is no post {reply_to}"})
    me = socket.assigns["user_id"]
    post = await store.add_post(db, me, socket.assigns["user"], body.strip(), reply_to)
    timelines.announce(socket.pubsub or PUBSUB, me, ("post", post))  # stored: now tell
    if parent is not None:
        count = await store.reply_count(db, parent.id)
        timelines.announce(socket.pubsub or PUBSUB, parent.author_id,
                           ("replies", parent.id, count))
    return ("ok", {"id": post.id})


async def _like(socket: SocketState, payload: dict[str, Any], liked: bool = True) -> Any:
    post_id = payload.get("post")
    if isinstance(post_id, bool) or not isinstance(post_id, int):
        return ("error", {"reason": "post is a post's id"})
    db = _db()
    post = await store.get_post(db, post_id)
    if post is None:
        return ("error", {"reason": f"there is no post {post_id}"})
    me = socket.assigns["user_id"]
    count = await store.set_like(db, me, post_id, liked)
    timelines.announce(socket.pubsub or PUBSUB, post.author_id,
                       ("likes", post_id, count, me, liked))
    return ("ok", {"likes": count})


async def _unlike(socket: SocketState, payload: dict[str, Any]) -> Any:
    return await _like(socket, payload, liked=False)


async def _follow(socket: SocketState, payload: dict[str, Any], following: bool = True) -> Any:
    name = payload.get("name")
    if not isinstance(name, str) or name == socket.assigns["user"]:
        return ("error", {"reason": "follow someone else, by name"})
    db = _db()
    other = await store.user_id(db, name)
    if other is None:
        return ("error", {"reason": f"there is no user {name!r}"})
    await store.set_follow(db, socket.assigns["user_id"], other, following)
    timelines.refresh(PUBSUB, socket.assigns["user_id"])  # its pages get a reset
    return "ok"


async def _unfollow(socket: SocketState, payload: dict[str, Any]) -> Any:
    return await _follow(socket, payload, following=False)


async def _thread(socket: SocketState, payload: dict[str, Any]) -> Any:
    post_id = payload.get("post")
    if isinstance(post_id, bool) or not isinstance(post_id, int):
        return ("error", {"reason": "post is a post's id"})
    replies = await store.thread(_db(), post_id)
    return ("ok", {"replies": [reply.to_json() for reply in replies]})


async def _suggestions(socket: SocketState, payload: dict[str, Any]) -> Any:
    return ("ok", {"names": await store.others(_db(), socket.assigns["user_id"])})


_ACTIONS = {"post": _post, "like": _like, "unlike": _unlike, "follow": _follow,
            "unfollow": _unfollow, "thread": _thread, "suggestions": _suggestions}


class OnlineChannel(Channel):
    """Who is online, for the page's list (Presence, one key per user)."""

    def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        beamish.send(beamish.self(), "after_join")
        return ("ok", socket)

    async def handle_info(self, message: Any, socket: SocketState) -> Any:
        if message == "after_join":
            await FeedPresence.track(socket, socket.assigns["user"], {})
            self.push(socket, "presence_state", FeedPresence.list(socket))
        return NoReply(socket)


class FeedSocket(Socket, pubsub=PUBSUB, longpoll=True):
    """A user signs in by name (the demo's rule: no password)."""

    channels: ClassVar[dict[str, type[Channel]]] = {
        "timeline:*": TimelineChannel, "online:feed": OnlineChannel,
    }

    async def connect(self, params: Any, socket: SocketState, connect_info: Any) -> Any:
        name = params.get("user")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            return ("error", {"reason": "a user name is 1 to 24 letters, digits or _"})
        return ("ok", socket.assign(user=name, user_id=await store.ensure_user(_db(), name)))

    def id(self, socket: SocketState) -> str:
        return f"user:{socket.assigns['user']}"
