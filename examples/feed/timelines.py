"""Home timelines: a process per online user, hydrated from the database. ::

    Timelines (rest_for_one)
    ├── Registry "feed.timeline_registry"       user name -> timeline process
    └── DynamicSupervisor "feed.timelines"
        ├── Timeline "ada"
        └── Timeline "bob" ...

**The fan-out.** A post is written to the database first (that is when its author gets
``ok``), then announced once, on the author's internal topic ``author:<id>``. Each online
user's timeline is subscribed to the topics of whom the user follows (and its own), so a
post reaches exactly the timelines that show it, each of which pushes it to the user's
open pages (a broadcast on ``timeline:<name>``, which every tab of the user has joined).
Likes and reply counts travel the same way, on the topic of the post's author.

**On a cluster** (``beamish run --nodes 2``) the author topics span the nodes, and each node
runs the timelines of the pages connected to it: a user with tabs on two nodes has a
timeline on each, each hydrated from the same database, each pushing to its own node's
pages only (``local_broadcast``: a cluster-wide push would reach every tab twice). A follow
is announced on the user's own author topic, so every timeline of the user reads its window
again, wherever it runs.

**Offline followers cost nothing.** A user with no page open has no timeline process and
no subscription: nothing is done for them when someone they follow posts. When they come
back, their timeline starts and reads its window from the database (the newest
``store.WINDOW`` posts of whom they follow): that is fan-out on write for the online, read
on demand for the offline. A timeline stops ``IDLE`` seconds after its user's last page
closed.

**Nothing acknowledged is lost when a timeline crashes.** The database is the truth; a
timeline only keeps a window of it. A timeline subscribes before it reads, so a post
announced while it reads is either in what it read or comes after (it drops what it
already has, by id). Each page's channel monitors its timeline: when it goes, the channel
attaches again (which starts a new one, that reads its window again) and sends its page a
``reset`` with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import beamish
from beamish import (
    ChildSpec,
    Continue,
    Down,
    DynamicSupervisor,
    GenServer,
    NoReply,
    Ok,
    Pid,
    Registry,
    Reply,
    StartError,
    Stop,
    Supervisor,
    SupervisorFlags,
)
from beamish.data import Pool
from beamish.pubsub import PubSub
from beamish.web import local_broadcast

from . import store
from .store import Post

REGISTRY = "feed.timeline_registry"
SUPERVISOR = "feed.timelines"
IDLE = 30.0  # seconds a timeline outlives its user's last page


def author_topic(user: int) -> str:
    return f"author:{user}"


def timeline_topic(name: str) -> str:
    return f"timeline:{name}"


@dataclass(slots=True)
class TimelineState:
    pubsub: str
    db: Pool
    name: str
    user: int
    following: dict[int, str] = field(default_factory=dict)
    subscribed: set[int] = field(default_factory=set)  # the authors whose topics it hears
    posts: list[Post] = field(default_factory=list)  # newest first, at most store.WINDOW
    pages: set[Pid] = field(default_factory=set)  # the channels of the user's open pages
    idle_since: int = 0  # a counter: an idle check is stale if pages came and went since


class Timeline(GenServer):
    """One online user's home timeline (see the module)."""

    @classmethod
    def child_spec(cls, arg: Any = None) -> ChildSpec:
        return ChildSpec(id=arg, start=(cls.start_named, (arg,)), restart="transient")

    @classmethod
    async def start_named(cls, pubsub: str, db: Pool, who: tuple[str, int]) -> Pid:
        name, user = who
        return await cls.start_link((pubsub, db, name, user),
                                    name=Registry.via(REGISTRY, name))

    def init(self, arg: tuple[str, Pool, str, int]) -> Ok:
        pubsub, db, name, user = arg
        return Ok(TimelineState(pubsub, db, name, user), Continue("hydrate"))

    async def handle_continue(self, term: Any, state: TimelineState) -> NoReply:
        await self._hydrate(state)
        if term == "hydrate":
            beamish.send_after(beamish.self(), ("idle", state.idle_since), IDLE)
        else:  # "refresh": the user followed or unfollowed someone, on some node
            local_broadcast(state.pubsub, timeline_topic(state.name), "reset", _snapshot(state))
        return NoReply(state)

    async def _hydrate(self, state: TimelineState) -> None:
        """Subscribe to whom the user follows, then read the window (in that order: a post
        announced meanwhile is in the window or arrives after it)."""
        following = await store.following(state.db, state.user)
        wanted = {state.user, *following}
        for gone in state.subscribed - wanted:
            PubSub.unsubscribe(state.pubsub, author_topic(gone))
        for new in wanted - state.subscribed:
            PubSub.subscribe(state.pubsub, author_topic(new))
        state.subscribed = wanted
        state.following = following
        state.posts = await store.home(state.db, state.user)

    async def handle_call(self, request: Any, from_: Any, state: TimelineState) -> Reply:
        match request:
            case ("attach", Pid() as page):
                if page not in state.pages:
                    beamish.monitor(page)
                    state.pages.add(page)
                return Reply(_snapshot(state), state)
        raise ValueError(f"a timeline does not understand {request!r}")

    def handle_info(self, message: Any, state: TimelineState) -> Any:
        match message:
            case ("post", Post() as post) if post.author_id in state.subscribed:
                if all(shown.id != post.id for shown in state.posts):  # not read already
                    state.posts = [post, *state.posts][: store.WINDOW]
                    local_broadcast(state.pubsub, timeline_topic(state.name), "post",
                              post.to_json())
            case ("likes", int(post_id), int(count), int(by), bool(liked)):
                self._update(state, post_id, likes=count,
                             **({"liked": liked} if by == state.user else {}))
            case ("replies", int(post_id), int(count)):
                self._update(state, post_id, replies=count)
            case ("refresh", int(user)) if user == state.user:  # whom the user follows changed
                return NoReply(state, Continue("refresh"))
            case Down(pid=page):
                state.pages.discard(page)
                if not state.pages:
                    state.idle_since += 1
                    beamish.send_after(beamish.self(), ("idle", state.idle_since), IDLE)
            case ("idle", int(mark)) if mark == state.idle_since and not state.pages:
                return Stop("normal", state)  # nobody looks: the database keeps it all
        return NoReply(state)

    def _update(self, state: TimelineState, post_id: int, **changes: Any) -> None:
        for i, shown in enumerate(state.posts):
            if shown.id == post_id:
                state.posts[i] = updated = replace(shown, **changes)
                if updated != shown:
                    local_broadcast(state.pubsub, timeline_topic(state.name), "post_updated",
                              updated.to_json())
                return


def _snapshot(state: TimelineState) -> dict[str, Any]:
    return {"posts": [post.to_json() for post in state.posts],
            "following": sorted(state.following.values())}


class Timelines(Supervisor):
    """The registry first, then the supervisor of the timelines."""

    def init(self, arg: tuple[str, Pool, int]) -> SupervisorFlags:
        pubsub, db, max_online = arg
        children = [
            (Registry, {"keys": "unique", "name": REGISTRY}),
            {"id": "timelines", "start": (_start_supervisor, (pubsub, db, max_online)),
             "type": "supervisor"},
        ]
        flags: SupervisorFlags = Supervisor.init(children, strategy="rest_for_one")
        return flags


async def _start_supervisor(pubsub: str, db: Pool, max_online: int) -> Pid:
    return await DynamicSupervisor.start_link(
        name=SUPERVISOR, max_children=max_online, extra_arguments=(pubsub, db),
        max_restarts=100, max_seconds=10,
    )


# -- what the channels call -------------------------------------------------------------------


async def attach(name: str, user: int, page: Pid) -> tuple[Pid, dict[str, Any]]:
    """The user's timeline (started if it is not running), now watching ``page``, and its
    snapshot: the window of posts and whom the user follows."""
    found = Registry.lookup(REGISTRY, name)
    if found:
        pid = found[0][0]
    else:
        try:
            pid = await DynamicSupervisor.start_child(SUPERVISOR, (Timeline, (name, user)))
        except StartError as error:
            match error.reason:
                case ("already_started", Pid() as pid):
                    pass
                case _:
                    raise
    snapshot: dict[str, Any] = await GenServer.call(pid, ("attach", page))
    return pid, snapshot


def refresh(pubsub: str, user: int) -> None:
    """Tell the user's timelines, on every node, that whom they follow changed: each reads
    its window again and sends its pages a ``reset``."""
    PubSub.broadcast(pubsub, author_topic(user), ("refresh", user))


def online_count() -> int:
    return Registry.count(REGISTRY)


def announce(pubsub: str, author: int, message: Any) -> None:
    """Tell the timelines that follow ``author`` (a post, a like or reply count)."""
    PubSub.broadcast(pubsub, author_topic(author), message)
