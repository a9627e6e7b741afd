"""The chat demo's contract, for any client: real WebSockets against a real uvicorn.

The demo's endpoint is served by ``EndpointServer`` (what ``beamish run`` uses) inside the
test's runtime, so a test can also reach the demo's processes (a room, its supervisor).
The clients are plain ``websockets`` connections speaking Phoenix's protocol (``phx.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
from examples.chat import app as chat
from examples.chat import rooms
from examples.chat.channels import MAX_BODY

import beamish
from beamish import Down, DynamicSupervisor, Registry
from beamish.web import EndpointServer
from tests.integration.phx import PhxClient
from tests.integration.support import require


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    server = EndpointServer(chat.endpoint, port=0, graceful_timeout=2)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def member(url: str, topic: str, username: str) -> AsyncIterator[PhxClient]:
    """A client joined to ``topic`` as ``username``, its presence_state received."""
    async with PhxClient.connect(url) as client:
        status, _ = await client.join(topic, {"username": username})
        assert status == "ok"
        await client.receive(topic, "presence_state", lambda state: username in state)
        yield client


async def test_chat_join_needs_a_username():
    async with serving() as url, PhxClient.connect(url) as client:
        for payload in ({}, {"username": ""}, {"username": "   "}, {"username": 42}, []):
            assert await client.join("room:lobby", payload) == (
                "error", {"reason": "a username is required"}
            )
        status, response = await client.join("room:lobby", {"username": "x" * 33})
        assert status == "error" and "at most 32" in response["reason"]
        # refused joins leave nothing behind: no room was started for them
        assert rooms.count() == 0


async def test_chat_join_needs_a_room_name():
    async with serving() as url, PhxClient.connect(url) as client:
        for topic in ("room:", "room:two words", "room:" + "x" * 41):
            status, response = await client.join(topic, {"username": "ada"})
            assert status == "error" and "room name" in response["reason"]


async def test_chat_join_is_refused_past_the_most_rooms_open(monkeypatch):
    monkeypatch.setenv("CHAT_MAX_ROOMS", "1")
    async with serving() as url, member(url, "room:first", "ada") as ada:
        status, response = await ada.join("room:second", {"username": "ada"})
        assert status == "error" and "too many rooms" in response["reason"]
        async with member(url, "room:first", "bob"):  # an open room still takes members
            assert rooms.count() == 1


async def test_chat_join_replies_with_the_last_messages_of_the_room(monkeypatch):
    monkeypatch.setenv("CHAT_HISTORY", "3")  # read when the endpoint starts the application
    async with serving() as url:
        async with member(url, "room:history", "ada") as ada:
            for n in range(5):
                status, response = await ada.push("room:history", "new_msg", {"body": f"m{n}"})
                assert status == "ok" and response["id"]
        async with PhxClient.connect(url) as bob:
            status, response = await bob.join("room:history", {"username": "bob"})
    assert status == "ok"
    messages = response["messages"]
    assert [m["body"] for m in messages] == ["m2", "m3", "m4"]  # the last 3, oldest first
    assert {m["user"] for m in messages} == {"ada"}
    assert len({m["id"] for m in messages}) == 3
    for m in messages:
        assert datetime.fromisoformat(m["at"]).tzinfo is not None


async def test_chat_new_msg_is_answered_and_broadcast_to_every_member():
    topic = "room:talk"
    async with (
        serving() as url, member(url, topic, "ada") as ada, member(url, topic, "bob") as bob
    ):
        status, response = await ada.push(topic, "new_msg", {"body": "  hello, bob  "})
        assert status == "ok"
        for client in (bob, ada):  # the sender gets the broadcast too
            message = await client.receive(topic, "new_msg")
            assert message["body"] == "hello, bob"
            assert message["user"] == "ada"
            assert message["id"] == response["id"]
            assert datetime.fromisoformat(message["at"])
        # a member of another room hears nothing of it: the first message cy gets is its own
        async with member(url, "room:elsewhere", "cy") as cy:
            await ada.push(topic, "new_msg", {"body": "second"})
            await bob.receive(topic, "new_msg", lambda m: m["body"] == "second")
            await cy.push("room:elsewhere", "new_msg", {"body": "mine"})
            assert (await cy.receive("room:elsewhere", "new_msg"))["body"] == "mine"
            assert not [frame for frame in cy.pending if frame[3] == "new_msg"]


async def test_chat_new_msg_is_refused_when_malformed():
    topic = "room:strict"
    async with (
        serving() as url, member(url, topic, "ada") as ada, member(url, topic, "bob") as bob
    ):
        for payload in ({}, {"body": ""}, {"body": " \n "}, {"body": 42}, {"body": None}):
            assert await ada.push(topic, "new_msg", payload) == (
                "error", {"reason": "a message needs a body"}
            )
        status, response = await ada.push(topic, "new_msg", {"body": "x" * (MAX_BODY + 1)})
        assert status == "error" and f"at most {MAX_BODY}" in response["reason"]
        status, response = await ada.push(topic, "shout", {"body": "hi"})
        assert status == "error" and "unknown event" in response["reason"]
        assert (await ada.push(topic, "new_msg", {"body": "x" * MAX_BODY}))[0] == "ok"
        # nothing refused was broadcast: the first message bob gets is the accepted one
        assert (await bob.receive(topic, "new_msg"))["body"] == "x" * MAX_BODY


async def test_chat_presence_state_then_diffs_on_join_leave_and_close():
    topic = "room:presence"
    async with serving() as url, PhxClient.connect(url) as ada:
        assert (await ada.join(topic, {"username": "ada"}))[0] == "ok"
        state = await ada.receive(topic, "presence_state")
        assert list(state) == ["ada"]
        [meta] = state["ada"]["metas"]
        assert isinstance(meta["online_at"], int) and meta["phx_ref"]

        def joins(name):
            return lambda diff: name in diff["joins"] and not diff["leaves"]

        def leaves(name):
            return lambda diff: name in diff["leaves"] and not diff["joins"]

        own = await ada.receive(topic, "presence_diff", joins("ada"))  # her own join, too
        assert own["joins"]["ada"]["metas"] == [meta]

        async with PhxClient.connect(url) as bob:
            assert (await bob.join(topic, {"username": "bob"}))[0] == "ok"
            await ada.receive(topic, "presence_diff", joins("bob"))
            assert sorted(await bob.receive(topic, "presence_state")) == ["ada", "bob"]
            assert await bob.leave(topic) == ("ok", {})
            await ada.receive(topic, "presence_diff", leaves("bob"))

            async with PhxClient.connect(url) as cy:  # a member whose connection goes away
                assert (await cy.join(topic, {"username": "cy"}))[0] == "ok"
                await ada.receive(topic, "presence_diff", joins("cy"))
            await ada.receive(topic, "presence_diff", leaves("cy"))

        # one user in two tabs: one key, two metas
        async with PhxClient.connect(url) as second_tab:
            assert (await second_tab.join(topic, {"username": "ada"}))[0] == "ok"
            diff = await ada.receive(topic, "presence_diff", joins("ada"))
            assert diff["joins"]["ada"]["metas"][0]["phx_ref"] != meta["phx_ref"]
            state = await second_tab.receive(topic, "presence_state")
            assert list(state) == ["ada"] and len(state["ada"]["metas"]) == 2


async def test_chat_a_crashed_room_is_restarted_and_its_members_carry_on():
    topic = "room:phoenix"
    async with (
        serving() as url, member(url, topic, "ada") as ada, member(url, topic, "bob") as bob
    ):
        await ada.push(topic, "new_msg", {"body": "before"})
        [(room, _)] = Registry.lookup(rooms.REGISTRY, "phoenix")
        beamish.monitor(room)
        beamish.exit(room, "kill")
        await beamish.receive(Down, timeout=5)
        # the supervisor heard of the exit before this call: the room runs again when it returns
        await DynamicSupervisor.which_children(rooms.SUPERVISOR)
        [(restarted, _)] = Registry.lookup(rooms.REGISTRY, "phoenix")
        assert restarted != room

        status, response = await ada.push(topic, "new_msg", {"body": "after"})
        assert status == "ok"
        message = await bob.receive(topic, "new_msg", lambda m: m["body"] == "after")
        assert message["id"] == response["id"]
        async with PhxClient.connect(url) as cy:  # the restarted room read its history back
            status, response = await cy.join(topic, {"username": "cy"})
            assert [m["body"] for m in response["messages"]] == ["before", "after"]


async def test_chat_serves_the_page_its_assets_and_health():
    async with serving() as url, httpx.AsyncClient(base_url=url, timeout=20) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert '<script type="module" src="assets/app.js">' in page.text  # mount-relative
        script = await http.get("/assets/app.js")
        assert script.status_code == 200 and "../vendor/phoenix/phoenix.mjs" in script.text
        assert (await http.get("/assets/app.css")).status_code == 200
        assert (await http.get("/health")).json() == {"status": "ok", "rooms": 0}
        async with member(url, "room:a", "ada"), member(url, "room:b", "ada"):
            assert (await http.get("/health")).json() == {"status": "ok", "rooms": 2}
        require(chat.PHOENIX.is_dir(), "the phoenix client is missing: run `npm ci`")
        client = await http.get("/vendor/phoenix/phoenix.mjs")
        assert client.status_code == 200 and "Presence" in client.text
        assert client.headers["content-type"].startswith("text/javascript")



def test_chat_room_state_keeps_the_last_messages_and_finds_those_after_one():
    state = rooms.RoomState("chat.pubsub", "x", keep=3)
    assert state.topic == "room:x"
    for n in range(1, 6):
        state = state.add(rooms.Message(str(n), "ada", f"m{n}", "2026-11-24T00:00:00.000Z"))
    assert [m.body for m in state.history] == ["m3", "m4", "m5"]
    assert [m.body for m in state.after("3")] == ["m4", "m5"]
    assert state.after("5") == []
    assert [m.body for m in state.after(None)] == ["m3", "m4", "m5"]
    assert [m.body for m in state.after("1")] == ["m3", "m4", "m5"]  # no longer kept: all
    kept_nothing = rooms.RoomState("p", "x", keep=0).add(rooms.Message("1", "a", "hi", "t"))
    assert kept_nothing.history == ()


async def test_chat_messages_outlive_the_node(chat_database):
    topic = "room:durable"
    async with serving() as url, member(url, topic, "ada") as ada:
        for body in ("one", "two"):
            assert (await ada.push(topic, "new_msg", {"body": body}))[0] == "ok"
    assert chat_database.is_file()
    async with serving() as url, PhxClient.connect(url) as bob:  # a new tree, the same file
        status, response = await bob.join(topic, {"username": "bob"})
        assert status == "ok"
        assert [(m["user"], m["body"]) for m in response["messages"]] == [
            ("ada", "one"), ("ada", "two")
        ]
        first, second = (int(m["id"]) for m in response["messages"])
        assert first < second


async def test_chat_serves_its_metrics_to_this_machine():
    async with serving() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).status_code == 200
        async with member(url, "room:metrics", "ada") as ada:
            await ada.push("room:metrics", "new_msg", {"body": "hi"})
        text = (await http.get("/metrics")).text
    requests = [line for line in text.splitlines()
                if line.startswith("beamish_endpoint_requests_total{")]
    assert any('route="/health"' in line and 'status="200"' in line for line in requests)
    joins = [line for line in text.splitlines() if line.startswith("beamish_channel_joins_total{")]
    assert any('result="ok"' in line and float(line.split()[-1]) >= 1 for line in joins), joins
    assert "beamish_data_query_query_time_seconds_bucket" in text

