"""The events beamish emits, seen through the bus: the kernel's, the endpoint's, channels',
sockets', PubSub's, Presence's and the supervisors'; and ``span``."""

from __future__ import annotations

import asyncio
import functools

import pytest

import beamish
from beamish import GenServer, Ok, Reply, Supervisor, telemetry
from beamish.pubsub import PubSub
from beamish.testing import (
    ASGIClient,
    capture_events,
    channel_socket,
    join,
    push,
    start_supervised,
)
from beamish.web import Channel, Socket
from tests.web.endpoint_app import make_endpoint


def test_span_emits_start_then_stop_with_a_duration_and_the_stop_metadata():
    names = [("app", "work", "start"), ("app", "work", "stop"), ("app", "work", "exception")]
    with capture_events(*names) as seen, telemetry.span(("app", "work"), {"job": 7}) as meta:
        meta["result"] = "done"
    assert [e.event[-1] for e in seen] == ["start", "stop"]
    start, stop = seen
    assert start.metadata == {"job": 7} and start.measurements["system_time"] > 0
    assert stop.metadata == {"job": 7, "result": "done"}
    assert stop.measurements["duration"] >= 0


def test_span_emits_exception_and_lets_it_go_on():
    with (capture_events(("app", "work", "stop"), ("app", "work", "exception")) as seen,
          pytest.raises(KeyError), telemetry.span(("app", "work"))):
        raise KeyError("missing")
    [failed] = seen
    assert failed.event == ("app", "work", "exception")
    assert failed.metadata["kind"] == "KeyError"
    assert "KeyError: 'missing'" in failed.metadata["stacktrace"]


def test_execute_reaches_handlers_in_order_with_their_config():
    got = []
    telemetry.attach("t.one", ("app", "e"), lambda *a: got.append(("one", a[3])), "c1")
    telemetry.attach_many("t.two", [("app", "e"), ("app", "f")],
                          lambda *a: got.append(("two", a[0])))
    try:
        telemetry.execute(("app", "e"), {"n": 1}, {})
        telemetry.execute(("app", "f"))
        telemetry.execute(("app", "nobody"))  # no handler: nothing, and no error
        assert got == [("one", "c1"), ("two", ("app", "e")), ("two", ("app", "f"))]
        listed = {(h["id"], h["event"]) for h in telemetry.list_handlers(("app",))}
        assert listed == {("t.one", ("app", "e")), ("t.two", ("app", "e")),
                          ("t.two", ("app", "f"))}
    finally:
        telemetry.detach("t.one")
        telemetry.detach("t.two")


async def test_requests_emit_start_and_stop_with_the_route_template_and_status():
    names = [("beamish", "endpoint", n) for n in ("start", "stop", "exception")]
    async with ASGIClient(make_endpoint()) as client:
        with capture_events(*names) as seen:
            assert (await client.get("/users/42")).status_code == 200
            assert (await client.get("/crash")).status_code == 500
            assert (await client.get("/nowhere")).status_code == 404
    kinds = [(e.event[-1], e.metadata["route"], e.metadata["status"]) for e in seen]
    assert kinds == [
        ("start", None, 0), ("stop", "/users/{id}", 200),
        ("start", None, 0), ("exception", "/crash", 500),
        ("start", None, 0), ("stop", None, 404),
    ]
    crash = seen[3]
    assert crash.metadata["kind"] == "ValueError" and crash.metadata["request_id"]
    assert all(e.measurements["duration"] >= 0 for e in seen if e.event[-1] != "start")


class Room(Channel):
    intercept = ["shout"]  # noqa: RUF012

    def join(self, topic, payload, socket):
        if payload.get("refuse"):
            return ("error", {"reason": "no"})
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        return Reply("ok", socket)

    def handle_out(self, event, payload, socket):
        return beamish.NoReply(socket)


class RoomSocket(Socket):
    channels = {"room:*": Room}  # noqa: RUF012


async def test_channels_emit_join_handle_in_and_handle_out():
    await start_supervised((PubSub, {"name": "ev.ps"}))
    names = [("beamish", "channel", n) for n in ("join", "handle_in", "handle_out")]
    with capture_events(*names) as seen:
        socket = channel_socket(RoomSocket, pubsub="ev.ps")
        _, joined = await join(socket, "room:1")
        with pytest.raises(Exception, match="no"):
            await join(channel_socket(RoomSocket, pubsub="ev.ps"), "room:2", {"refuse": True})
        push(joined, "say", {})
        beamish.web.broadcast("ev.ps", "room:1", "shout", {})
        deadline = asyncio.get_running_loop().time() + 2
        while not any(e.event[-1] == "handle_out" for e in seen):
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.01)
    got = [(e.event[-1], e.metadata["topic"], e.metadata.get("result"),
            e.metadata.get("event")) for e in seen]
    assert ("join", "room:1", "ok", None) in got
    assert ("join", "room:2", "error", None) in got
    assert ("handle_in", "room:1", None, "say") in got
    assert ("handle_out", "room:1", None, "shout") in got
    assert all(e.metadata["channel"] == "Room" for e in seen)


async def test_pubsub_broadcasts_are_events():
    await start_supervised((PubSub, {"name": "ev.ps2"}))
    with capture_events(("beamish", "pubsub", "broadcast")) as seen:
        PubSub.broadcast("ev.ps2", "t", "hello")
        PubSub.local_broadcast("ev.ps2", "t", "not counted: this node only, no origin")
    assert [(e.metadata["pubsub"], e.metadata["topic"]) for e in seen] == [("ev.ps2", "t")]


class Flaky(GenServer):
    def init(self, arg):
        return Ok(arg)

    def handle_cast(self, request, state):
        raise RuntimeError("flaky")


async def test_supervisors_emit_restarts_and_giving_up():
    names = [("beamish", "supervisor", "restart"), ("beamish", "supervisor", "give_up")]
    beamish.trap_exit(True)
    with capture_events(*names) as seen:
        sup = await Supervisor.start_link(
            [{"id": "flaky", "start": (functools.partial(Flaky.start_link, name="flaky"),
                                       (None,))}],
            max_restarts=1, max_seconds=5, name="ev.sup",
        )
        for _ in range(2):
            while beamish.whereis("flaky") is None:
                await asyncio.sleep(0.005)
            pid = beamish.whereis("flaky")
            GenServer.cast("flaky", "boom")
            while beamish.is_alive(pid):
                await asyncio.sleep(0.005)
        while beamish.is_alive(sup):
            await asyncio.sleep(0.005)
    assert [e.event[-1] for e in seen] == ["restart", "give_up"]
    assert all(e.metadata["name"] == "ev.sup" and e.metadata["child_id"] == "flaky"
               for e in seen)
    assert seen[1].metadata["max_restarts"] == 1
