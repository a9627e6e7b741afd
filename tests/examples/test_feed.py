"""The social feed example: its fan-out to online timelines, its offline followers, and a
timeline that crashes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from examples.feed import channels, store, timelines
from examples.feed.channels import PUBSUB, FeedPresence, FeedSocket

import beamish
from beamish import Registry
from beamish.data import Pool, PoolTimeout, SQLite
from beamish.pubsub import PubSub
from beamish.testing import (
    assert_push,
    assert_reply,
    channel_socket,
    close,
    join,
    local_cluster,
    push,
    refute_push,
    start_supervised,
)
from beamish.web import Broadcast
from beamish.web._wire import Push

MIGRATIONS = Path(__file__).resolve().parents[2] / "examples" / "feed" / "migrations"


async def start_feed(feed_driver) -> Pool:
    driver, dialect = feed_driver
    db = Pool(driver, name="feed.db", size=3)
    channels.DB["pool"] = db
    await start_supervised((PubSub, {"name": PUBSUB}))
    await start_supervised(FeedPresence)
    await start_supervised(db.child_spec())
    await db.migrate(MIGRATIONS / dialect)
    await start_supervised((timelines.Timelines, (PUBSUB, db, 1000)))
    return db


async def page(db: Pool, name: str):
    """A signed-in page of ``name``: its timeline channel, and the join's snapshot."""
    user = await store.ensure_user(db, name)
    socket = channel_socket(FeedSocket, assigns={"user": name, "user_id": user},
                            pubsub=PUBSUB)
    snapshot, socket = await join(socket, f"timeline:{name}", {})
    return socket, snapshot


async def test_a_post_reaches_online_followers_at_once_and_offline_ones_when_they_return(
    feed_driver,
):
    db = await start_feed(feed_driver)
    ada, _ = await page(db, "ada")
    bob, snapshot = await page(db, "bob")
    assert snapshot == {"posts": [], "following": []}
    await assert_reply(push(bob, "follow", {"name": "ada"}), "ok")
    await assert_push("reset", {"following": ["ada"]})
    cy_id = await store.ensure_user(db, "cy")  # cy follows ada but is not online
    await store.set_follow(db, cy_id, await store.user_id(db, "ada"), True)

    ref = push(ada, "post", {"body": "  first!  "})
    await assert_reply(ref, "ok", {"id": 1})
    post = await assert_push("post", {"author": "ada", "body": "first!"}, timeout=1)
    assert post["likes"] == 0 and post["reply_to"] is None
    assert timelines.online_count() == 2  # ada's and bob's: nothing runs for cy

    cy, snapshot = await page(db, "cy")  # cy comes back: the post is in the window read
    assert [p["body"] for p in snapshot["posts"]] == ["first!"]
    assert snapshot["following"] == ["ada"]

    await assert_reply(push(bob, "like", {"post": 1}), "ok", {"likes": 1})
    updated = await assert_push("post_updated", {"id": 1, "likes": 1}, timeout=1)
    assert updated["author"] == "ada" and updated["replies"] == 0  # only the likes changed
    await assert_reply(push(bob, "post", {"body": "welcome", "reply_to": 1}), "ok")
    await assert_push("post_updated", {"id": 1, "replies": 1}, timeout=1)
    await assert_reply(push(ada, "thread", {"post": 1}), "ok")
    for socket in (ada, bob, cy):
        await close(socket)


async def test_bad_actions_are_refused_with_a_reason(feed_driver):
    db = await start_feed(feed_driver)
    ada, _ = await page(db, "ada")
    for event, payload, reason in (
        ("post", {"body": "  "}, "a post needs a body"),
        ("post", {"body": "x" * 501}, "a post has at most 500 characters"),
        ("post", {"body": "hi", "reply_to": 99}, "there is no post 99"),
        ("post", {"body": "hi", "reply_to": True}, "reply_to is a post's id"),
        ("like", {"post": "1"}, "post is a post's id"),
        ("like", {"post": 42}, "there is no post 42"),
        ("follow", {"name": "ada"}, "follow someone else, by name"),
        ("follow", {"name": "nobody"}, "there is no user 'nobody'"),
        ("shout", {}, "unknown event 'shout'"),
    ):
        await assert_reply(push(ada, event, payload), "error", {"reason": reason})
    other = channel_socket(FeedSocket, assigns={"user": "eve", "user_id": 9}, pubsub=PUBSUB)
    try:
        await join(other, "timeline:ada", {})
    except beamish.testing.JoinError as refused:
        assert refused.reply == {"reason": "a timeline is joined by its own user only"}
    else:
        raise AssertionError("eve joined ada's timeline")
    await close(ada)


async def test_a_timeline_that_crashes_is_rebuilt_from_the_database_with_what_it_missed(
    feed_driver,
):
    db = await start_feed(feed_driver)
    ada, _ = await page(db, "ada")
    bob, _ = await page(db, "bob")
    await assert_reply(push(bob, "follow", {"name": "ada"}), "ok")
    await assert_push("reset")
    [(first, _)] = Registry.lookup(timelines.REGISTRY, "bob")
    beamish.exit(first, "kill")
    # while bob's timeline restarts, ada posts: its successor has it in the window it reads
    # from the database (the page's reset) or, if it read before the post was stored, gets
    # it on ada's topic, to which it subscribed before reading (a live push): either way,
    # bob's page has it
    await assert_reply(push(ada, "post", {"body": "while you were out"}), "ok")
    snapshot = await assert_push("reset", timeout=2)
    if [p["body"] for p in snapshot["posts"]] != ["while you were out"]:
        assert snapshot["posts"] == []
        await assert_push("post", {"body": "while you were out"}, timeout=1)
    [(second, _)] = Registry.lookup(timelines.REGISTRY, "bob")
    assert second != first
    await assert_reply(push(ada, "post", {"body": "and after"}), "ok")  # live again
    await assert_push("post", {"body": "and after"}, timeout=1)
    for socket in (ada, bob):
        await close(socket)


async def test_a_timeline_stops_once_its_last_page_has_been_closed_a_while(
    feed_driver, monkeypatch
):
    monkeypatch.setattr(timelines, "IDLE", 0.2)
    db = await start_feed(feed_driver)
    ada, _ = await page(db, "ada")
    [(pid, _)] = Registry.lookup(timelines.REGISTRY, "ada")
    await close(ada)
    assert await beamish.wait_exit(pid, timeout=3) == "normal"
    await refute_push("reset", timeout=0.1)  # nothing was sent to the closed page


async def test_a_busy_database_is_an_error_to_the_author_and_the_page_stays_joined(
        feed_driver, monkeypatch):
    """A post that waits past the pool's timeout is answered with an error the author can
    act on; the channel does not crash, and the next post goes through."""
    db = await start_feed(feed_driver)
    ada, _ = await page(db, "ada")
    real = store.add_post

    async def busy(*args, **kwargs):
        raise PoolTimeout(pool="feed.db", size=5, waited=5.0, in_use=5, connected=5, waiting=9)

    monkeypatch.setattr(store, "add_post", busy)
    await assert_reply(push(ada, "post", {"body": "now?"}), "error",
                       {"reason": "the database is busy; try again"})
    monkeypatch.setattr(store, "add_post", real)
    await assert_reply(push(ada, "post", {"body": "now"}), "ok")
    await assert_push("post")
    await close(ada)


async def start_feed_tree():
    """The feed's processes on this node, on the pool of ``channels.DB`` (one handle serves
    every node: a pool's processes are found by name in each node's runtime)."""
    db = channels.DB["pool"]
    return await beamish.Supervisor.start([
        (PubSub, {"name": PUBSUB}),
        FeedPresence,
        db.child_spec(),
        (timelines.Timelines, (PUBSUB, db, 1000)),
    ], strategy="rest_for_one", name="feed.tree")


async def collect(name: str, user: int) -> None:
    """A page of ``name`` on this node, as a process: attaches to the user's timeline here,
    keeps the bodies it is pushed (as their events), and reports them when asked."""
    got: list[tuple[str, str]] = []
    await timelines.attach(name, user, beamish.self())
    PubSub.subscribe(PUBSUB, timelines.timeline_topic(name))
    while True:
        message = await beamish.receive()
        match message:
            case Broadcast(_, event, dict(payload)):
                got.append((event, payload.get("body")))
            case ("report", beamish.Pid() as to):
                beamish.send(to, ("report", got))


@pytest.mark.beamish(node="a@test")
async def test_on_two_nodes_each_timeline_pushes_to_its_own_nodes_pages_once(tmp_path):
    """ada has a page on a and one on b, hence a timeline on each node; bob posts on a. The
    post crosses to b on bob's author topic; each timeline pushes it to its own node's page
    only, so each page gets it once. A follow made on a refreshes ada's timeline on b too."""
    db = Pool(SQLite(tmp_path / "feed.sqlite3"), name="feed.db", size=3)
    channels.DB["pool"] = db
    async with local_cluster("b@test", tick_time=0.5) as cluster:
        b = cluster.node("b@test")
        await start_feed_tree()
        await db.migrate(MIGRATIONS / "sqlite")
        await b.run(start_feed_tree)
        ada_id = await store.ensure_user(db, "ada")
        await store.ensure_user(db, "bob")
        ada, _ = await page(db, "ada")
        far = await b.spawn(collect, "ada", ada_id)
        bob, _ = await page(db, "bob")
        await assert_reply(push(ada, "follow", {"name": "bob"}), "ok")
        await assert_push("reset", {"posts": [], "following": ["bob"]})

        async def far_saw():
            beamish.send(far, ("report", beamish.self()))
            _, got = await beamish.receive(lambda m: type(m) is tuple and m[0] == "report")
            return got

        for _ in range(100):  # b's timeline of ada re-reads whom she follows, too
            if ("reset", None) in await far_saw():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("ada's timeline on b did not hear of her follow on a")
        await assert_reply(push(bob, "post", {"body": "hello from a"}), "ok")
        await asyncio.sleep(0.5)  # what each page is pushed, by topic (bob's page has it too)
        pushed = []
        while (m := beamish.receive_nowait(beamish.ANY)) is not None:
            if type(m) is Push and m.data.event == "post":  # the test's client is sent these
                pushed.append((m.data.topic, m.data.payload["body"]))
        assert sorted(pushed) == [("timeline:ada", "hello from a"),
                                  ("timeline:bob", "hello from a")]  # once each
        seen = []
        for _ in range(100):
            seen = [entry for entry in await far_saw() if entry[0] == "post"]
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == [("post", "hello from a")]
        await close(ada)
        await close(bob)
        beamish.exit(far, "kill")
        await beamish.Supervisor.stop("feed.tree")
        await b.run(beamish.Supervisor.stop, "feed.tree")
