"""Fastlane broadcasts: encoded once, delivered to each socket's transport unless intercepted."""

from __future__ import annotations

import orjson
import pytest

import beamish
from beamish import ANY, receive, send
from beamish.pubsub import PubSub
from beamish.testing import assert_receive, refute_receive
from beamish.web import Broadcast, SerializerError, broadcast, broadcast_from, local_broadcast
from beamish.web._fastlane import Fastlane
from beamish.web._serializer import V2_JSON
from beamish.web._wire import Push
from beamish.web._ws_protocol import frame_of


async def subscriber(report, meta):
    """A channel stand-in: subscribes with ``meta`` and reports what reaches it."""
    PubSub.subscribe("ps", "t", meta)
    send(report, "subscribed")
    while True:
        send(report, ("channel got", beamish.self(), await receive()))


async def subscribe(meta):
    pid = beamish.spawn_link(subscriber, beamish.self(), meta)
    await assert_receive("subscribed")
    return pid


async def test_fastlane_encodes_once_and_pushes_to_each_transport():
    await PubSub.start_link("ps")
    me = beamish.self()
    for _ in range(3):  # three channels whose transport is the test process
        await subscribe(Fastlane(me, V2_JSON, frozenset()))
    broadcast("ps", "t", "e", {"x": 1})
    pushes = [await assert_receive(Push) for _ in range(3)]
    assert all(p is pushes[0] for p in pushes)  # one encoding, one object
    assert orjson.loads(pushes[0].data) == [None, None, "t", "e", {"x": 1}]
    await refute_receive(("channel got", ANY, ANY), timeout=0.02)  # channels not woken


async def test_fastlane_builds_the_frame_once_before_any_transport_gets_it():
    await PubSub.start_link("ps")
    me = beamish.self()
    for _ in range(2):
        await subscribe(Fastlane(me, V2_JSON, frozenset()))
    broadcast("ps", "t", "e", {"n": 1})
    first, second = await assert_receive(Push), await assert_receive(Push)
    assert first is second
    assert first._frame is not None  # built by the broadcaster: the push is not changed later
    assert first.framed() == frame_of(first.data)


async def test_fastlane_intercepted_and_plain_subscribers_get_the_broadcast():
    await PubSub.start_link("ps")
    me = beamish.self()
    intercepting = await subscribe(Fastlane(me, V2_JSON, frozenset({"e"})))
    plain = await subscribe(None)
    broadcast("ps", "t", "e", {"x": 1})
    got = [(await assert_receive(("channel got", ANY, ANY)))[1:] for _ in range(2)]
    assert sorted(got, key=lambda g: g[0]) == sorted(
        [(intercepting, Broadcast("t", "e", {"x": 1})), (plain, Broadcast("t", "e", {"x": 1}))],
        key=lambda g: g[0],
    )
    await refute_receive(Push, timeout=0.02)


async def test_fastlane_broadcast_from_skips_the_sender():
    await PubSub.start_link("ps")
    me = beamish.self()
    first = await subscribe(Fastlane(me, V2_JSON, frozenset()))
    await subscribe(Fastlane(me, V2_JSON, frozenset()))
    broadcast_from("ps", first, "t", "e", {})
    await assert_receive(Push)
    await refute_receive(Push, timeout=0.02)
    local_broadcast("ps", "t", "e", {})
    await assert_receive(Push)
    await assert_receive(Push)


async def test_fastlane_refuses_a_payload_that_is_not_a_map():
    await PubSub.start_link("ps")
    with pytest.raises(SerializerError, match="must be a dict"):
        broadcast("ps", "t", "e", ["not", "a", "map"])
    with pytest.raises(TypeError, match="strings"):
        broadcast("ps", "t", 42, {})
