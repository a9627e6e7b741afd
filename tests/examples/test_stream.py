"""The live stream example: its segments, and what a viewer's channel does."""

from __future__ import annotations

import asyncio
import doctest

import pytest
from examples.stream import segments, studio
from examples.stream.channels import StreamSocket

import beamish
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.testing import (
    JoinError,
    assert_push,
    assert_reply,
    channel_socket,
    close,
    join,
    local_cluster,
    push,
    start_supervised,
)


def test_the_module_examples_hold():
    assert doctest.testmod(segments).failed == 0


def test_a_segment_has_the_size_asked_and_the_picture_changes_with_its_number():
    for size in (10_000, 50_000):
        card = segments.test_card(3, at=100.0, size=size)
        assert size <= len(card) < size + 200
    assert segments.test_card(3, at=100.0, size=10_000) != segments.test_card(
        4, at=100.0, size=10_000
    )


async def start_stream(fps: float = 20.0, size: int = 2_000) -> None:
    await start_supervised((PubSub, {"name": studio.PUBSUB}))
    await start_supervised(studio.StreamPresence)
    await start_supervised({"id": "relay", "start": (studio.Relay.start_for, ("main",))})
    await start_supervised({"id": "stage", "start": (studio.Stage.start_for, ("main",))})
    await start_supervised(
        {"id": "camera", "start": (studio.Camera.start_for, ("main", fps, size))}
    )


async def test_a_late_viewer_starts_from_the_latest_segment_then_gets_each_new_one():
    await start_stream()
    await asyncio.sleep(0.3)  # a few segments were made before this viewer came
    socket = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    reply, socket = await join(socket, "stream:main", {})
    assert reply == {"chat": [], "viewers": 0}
    # the latest segment first (a newer one, broadcast meanwhile, may overtake it: the page
    # shows only what is newer than what it shows), then each new one
    seqs = [segments.split(await assert_push("segment", timeout=1))[0]["seq"]
            for _ in range(3)]
    assert min(seqs) > 1  # the viewer did not start from the stream's first segment
    assert len(set(seqs)) == 3 and max(seqs) - min(seqs) <= 3
    await close(socket)


async def test_viewers_are_counted_and_chat_needs_a_name():
    await start_stream()
    watcher = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    _, watcher = await join(watcher, "stream:main", {})
    await assert_push("viewers", {"count": 1}, timeout=3)  # counted once a second
    ref = push(watcher, "chat", {"body": "hi"})
    await assert_reply(ref, "error", {"reason": "join with a name to chat"})

    talker = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    _, talker = await join(talker, "stream:main", {"name": " ada "})
    await assert_push("viewers", {"count": 2}, timeout=3)
    ref = push(talker, "chat", {"body": "  hello  "})
    await assert_reply(ref, "ok", {"id": 1})
    await assert_push("chat", {"id": 1, "user": "ada", "body": "hello"}, timeout=1)
    ref = push(talker, "chat", {"body": "x" * (studio.MAX_BODY + 1)})
    await assert_reply(ref, "error")

    late = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    reply, late = await join(late, "stream:main", {})  # the chat so far comes with the join
    assert [m["body"] for m in reply["chat"]] == ["hello"] and reply["viewers"] == 2
    for socket in (watcher, talker, late):
        await close(socket)


async def test_a_join_to_a_stream_that_does_not_exist_or_with_a_bad_name_is_refused():
    await start_stream()
    for topic, payload in (("stream:nope", {}), ("stream:../x", {}),
                           ("stream:main", {"name": "x" * 40}), ("stream:main", {"name": 7})):
        socket = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
        try:
            await join(socket, topic, payload)
        except JoinError as refused:
            assert "reason" in refused.reply
        else:
            raise AssertionError(f"{topic} {payload} was not refused")


async def test_a_camera_that_crashes_goes_on_from_the_stages_last_number():
    await start_stream()
    await asyncio.sleep(0.3)
    before = await beamish.GenServer.call(studio.stage_name("main"), "seq")
    beamish.exit(beamish.whereis("stream.camera.main"), "kill")
    socket = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    _, socket = await join(socket, "stream:main", {})
    seqs = [segments.split(await assert_push("segment", timeout=2))[0]["seq"] for _ in range(4)]
    assert min(seqs) >= before and len(set(seqs)) == 4  # on from where it was, never back
    await close(socket)


async def test_off_air_the_stage_sends_nothing_and_viewers_keep_the_last_segment():
    await start_stream()
    socket = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
    _, socket = await join(socket, "stream:main", {})
    await assert_push("segment", timeout=1)
    await studio.set_on_air("main", False)
    await asyncio.sleep(0.1)  # what was on its way arrives, and is dropped here
    while beamish.receive_nowait(beamish.ANY) is not None:
        pass
    from beamish.testing import refute_push

    await refute_push("segment", timeout=0.3)
    await studio.set_on_air("main", True)
    await assert_push("segment", timeout=1)
    await close(socket)


async def start_stream_tree(fps: float = 20.0):
    """The stream's tree as the application runs it: a Relay per node, the Studio once."""
    return await beamish.Supervisor.start([
        (PubSub, {"name": studio.PUBSUB}),
        studio.StreamPresence,
        {"id": "relay", "start": (studio.Relay.start_for, ("main",))},
        Singleton.spec(studio.Studio, ("main", fps, 2_000), name=studio.studio_name("main")),
    ], strategy="rest_for_one", name="stream.tree")


def seq_of(segment):
    return segments.split(segment)[0]["seq"]


@pytest.mark.beamish(node="a@test")
async def test_when_the_studios_node_goes_another_goes_on_numbering_and_keeps_the_chat():
    """The Studio runs on b; a viewer on a joins from a's Relay and chats through b's Stage.
    b goes down: a's guard starts the Studio, whose Stage goes on from a's Relay: the
    segments number on, the chat keeps its messages, and the viewer chats on."""
    async with local_cluster("b@test", tick_time=0.5) as cluster:
        await cluster.node("b@test").run(start_stream_tree)
        await start_stream_tree()
        assert Singleton.whereis(studio.studio_name("main")).node == "b@test"
        await asyncio.sleep(0.3)  # a's Relay hears a few segments
        socket = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
        reply, socket = await join(socket, "stream:main", {"name": "ada"})
        assert reply["chat"] == []
        seen = [seq_of(await assert_push("segment", timeout=1)) for _ in range(3)]
        assert min(seen) > 1  # from the latest, as a's Relay had it
        await assert_reply(push(socket, "chat", {"body": "before"}), "ok")
        await assert_push("chat", {"id": 1, "user": "ada", "body": "before", "at": beamish.ANY})
        last = max(seen)
        await cluster.stop_node("b@test")
        after = [seq_of(await assert_push("segment", timeout=5)) for _ in range(3)]
        assert Singleton.whereis(studio.studio_name("main")).node == "a@test"
        assert min(after) > last and len(set(after)) == 3  # on from there, never back
        ref = push(socket, "chat", {"body": "after"})
        await assert_reply(ref, "ok", {"id": 2})
        late = channel_socket(StreamSocket, pubsub=studio.PUBSUB)
        reply, late = await join(late, "stream:main", {})
        assert [m["body"] for m in reply["chat"]] == ["before", "after"]
        await close(late)
        await close(socket)
        await beamish.Supervisor.stop("stream.tree")
