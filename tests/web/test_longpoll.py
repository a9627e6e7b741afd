"""The LongPoll transport through the endpoint, in process: sessions, polls, posts, limits.

The stock ``phoenix`` client over LongPoll, against a real server, is in
``tests/integration/test_chat_phoenix_js.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
from typing import ClassVar

import orjson
import pytest

import beamish
from beamish import NoReply, Ok, Reply
from beamish.pubsub import PubSub
from beamish.testing import start_supervised
from beamish.testing._asgi_client import ASGIClient
from beamish.web import Channel, Endpoint, Socket, broadcast
from tests.conditions import eventually


class Room(Channel):
    def join(self, topic, payload, socket):
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        match event:
            case "ping":
                return Reply(("ok", {"pong": payload, "transport": socket.transport}), socket)
            case "binary":
                return Reply(("ok", {"got": list(payload)}), socket)
            case "boom":
                raise RuntimeError("boom")
        return NoReply(socket)


class PollSocket(Socket, longpoll=True, longpoll_window=0.3):
    channels: ClassVar = {"room:*": Room}

    def connect(self, params, socket, connect_info):
        if params.get("reject") == "true":
            return "error"
        return Ok(socket.assign(token=params.get("token"), auth=connect_info.get("auth_token")))


class SmallPollSocket(PollSocket, max_queue_bytes=2_000, max_frame_size=500):
    pass


class SlowPollSocket(PollSocket, longpoll_window=1.0):
    pass


class WebSocketOnly(Socket):
    channels: ClassVar = {"room:*": Room}


PATH = "/socket/longpoll"


class Poller:
    """A bare LongPoll client, as the phoenix one behaves: a token, polls and posts."""

    def __init__(self, client: ASGIClient, query: str = "vsn=2.0.0") -> None:
        self.client = client
        self.query = query
        self.token: str | None = None
        self.refs = itertools.count(1)
        self.unread: list[list] = []

    def url(self) -> str:
        return f"{PATH}?{self.query}" + (f"&token={self.token}" if self.token else "")

    async def open(self) -> dict:
        body = (await self.client.get(self.url())).json()
        if body.get("token"):
            self.token = body["token"]
        return body

    async def poll(self) -> dict:
        return (await self.client.get(self.url())).json()

    async def post(self, *lines: str | bytes) -> dict:
        content = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
        response = await self.client.post(
            self.url(), content=content, headers={"content-type": "application/x-ndjson"}
        )
        return response.json()

    async def push(self, topic, event, payload=None, join_ref=None) -> str:
        ref = str(next(self.refs))
        assert (await self.post(orjson.dumps([join_ref, ref, topic, event, payload or {}])
                                .decode()))["status"] == 200
        return ref

    async def join(self, topic, payload=None) -> str:
        ref = str(next(self.refs))
        line = orjson.dumps([ref, ref, topic, "phx_join", payload or {}]).decode()
        assert (await self.post(line))["status"] == 200
        return ref

    async def expect(self, topic=None, event=None, ref=None, timeout=3.0) -> list:
        def wanted(frame):
            return ((topic is None or frame[2] == topic) and (event is None or frame[3] == event)
                    and (ref is None or frame[1] == ref))

        deadline = time.monotonic() + timeout
        while True:
            for frame in self.unread:
                if wanted(frame):
                    self.unread.remove(frame)
                    return frame
            assert time.monotonic() < deadline, f"no {topic} {event} {ref} in {self.unread}"
            body = await self.poll()
            assert body["status"] in (200, 204), body
            self.unread += [orjson.loads(m) for m in body.get("messages", [])]


@contextlib.asynccontextmanager
async def serving(socket_cls=PollSocket, **options):
    await start_supervised((PubSub, {"name": "ps"}))
    endpoint = Endpoint(sockets={"/socket": socket_cls}, pubsub="ps", **options)
    async with ASGIClient(endpoint) as client:
        yield endpoint, client


async def sessions_end(endpoint: Endpoint, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while endpoint.connections() > 0:
        assert time.monotonic() < deadline, "a LongPoll session outlived its window"
        await asyncio.sleep(0.02)


def only_session(endpoint: Endpoint):
    (longpoll,) = endpoint._longpolls.values()
    (session,) = longpoll.sessions.values()
    return session


def ok(response=None):
    return {"status": "ok", "response": response or {}}


# -- the protocol --------------------------------------------------------------------------------


async def test_longpoll_opens_a_session_joins_pushes_and_gets_replies_and_broadcasts():
    async with serving() as (endpoint, client):
        poller = Poller(client)
        assert (await poller.open())["status"] == 410 and poller.token
        assert endpoint.connections() == 1  # the session counts as a connection
        ref = await poller.join("room:lobby")
        assert (await poller.expect("room:lobby", "phx_reply", ref))[4] == ok()
        ref = await poller.push("room:lobby", "ping", {"n": 1}, join_ref="1")
        reply = await poller.expect("room:lobby", "phx_reply", ref)
        assert reply[4] == ok({"pong": {"n": 1}, "transport": "longpoll"})
        broadcast("ps", "room:lobby", "news", {"headline": "up"})
        assert (await poller.expect("room:lobby", "news"))[4] == {"headline": "up"}
        hb = await poller.push("phoenix", "heartbeat")
        assert (await poller.expect("phoenix", "phx_reply", hb))[4] == ok()


async def test_longpoll_every_answer_carries_the_token():
    async with serving() as (_, client):
        poller = Poller(client)
        token = (await poller.open())["token"]
        assert (await poller.poll())["token"] == token  # a 204 too
        assert (await poller.post())["token"] == token


async def test_longpoll_poll_waits_for_the_window_then_answers_204():
    async with serving() as (_, client):
        poller = Poller(client)
        await poller.open()
        started = time.monotonic()
        body = await poller.poll()
        assert body["status"] == 204 and "messages" not in body
        assert 0.25 <= time.monotonic() - started < 2.0


async def test_longpoll_waiting_poll_answers_as_soon_as_a_frame_is_written():
    async with serving(SlowPollSocket) as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        ref = await poller.join("room:lobby")
        await poller.expect("room:lobby", "phx_reply", ref)
        waiting = asyncio.ensure_future(poller.poll())
        await eventually(lambda: only_session(endpoint)._polling, what="the poll waiting")
        started = time.monotonic()
        broadcast("ps", "room:lobby", "news", {"n": 1})
        body = await waiting
        assert time.monotonic() - started < 1.0
        assert [orjson.loads(m)[3] for m in body["messages"]] == ["news"]


async def test_longpoll_newer_poll_takes_over_from_a_waiting_one():
    async with serving(SlowPollSocket) as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        first = asyncio.ensure_future(poller.poll())
        await eventually(lambda: only_session(endpoint)._polling, what="the first poll waiting")
        second = asyncio.ensure_future(poller.poll())
        assert (await asyncio.wait_for(first, 0.5))["status"] == 204
        assert not second.done()
        assert (await second)["status"] == 204  # at the end of its own window


async def test_longpoll_session_without_polls_ends_and_then_answers_410():
    async with serving() as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        session = only_session(endpoint)
        await sessions_end(endpoint)  # the window is 0.3 s
        assert not beamish.is_alive(session.pid)
        assert await poller.poll() == {"status": 410, "token": None}


async def test_longpoll_refused_connect_and_wrong_version_are_403(caplog):
    async with serving() as (endpoint, client):
        assert (await Poller(client, "vsn=2.0.0&reject=true").open()) == {"status": 403}
        with caplog.at_level(logging.ERROR, logger="beamish.socket"):
            assert (await Poller(client, "vsn=1.0.0").open()) == {"status": 403}
        assert "speaks 2.x" in caplog.text
        await sessions_end(endpoint)


async def test_longpoll_token_that_is_not_ours_is_a_socket_param():
    async with serving() as (_, client):
        poller = Poller(client, "vsn=2.0.0&token=user-secret")
        body = await poller.open()
        assert body["status"] == 410 and body["token"] != "user-secret"
        ref = await poller.join("room:lobby")
        await poller.expect("room:lobby", "phx_reply", ref)


async def test_longpoll_auth_token_header_reaches_connect_info():
    class Echo(PollSocket):
        def connect(self, params, socket, connect_info):
            assert connect_info["auth_token"] == "bearer-42"
            return Ok(socket)

    async with serving(Echo) as (_, client):
        body = (await client.get(f"{PATH}?vsn=2.0.0",
                                 headers={"x-phoenix-authtoken": "bearer-42"})).json()
        assert body["status"] == 410


async def test_longpoll_origin_check_refuses_other_sites(caplog):
    async with serving() as (_, client):
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            response = await client.get(f"{PATH}?vsn=2.0.0",
                                        headers={"origin": "https://evil.example"})
        assert response.status_code == 403 and response.json() == {"status": 403}
        assert "check_origin" in caplog.text


async def test_longpoll_binary_push_comes_base64_encoded():
    async with serving() as (_, client):
        poller = Poller(client)
        await poller.open()
        ref = await poller.join("room:lobby")
        await poller.expect("room:lobby", "phx_reply", ref)
        parts = [b"1", b"7", b"room:lobby", b"binary"]
        frame = bytes([0, *map(len, parts)]) + b"".join(parts) + b"\x01\x02\x03"
        assert (await poller.post(base64.b64encode(frame)))["status"] == 200
        reply = await poller.expect("room:lobby", "phx_reply", "7")
        assert reply[4] == ok({"got": [1, 2, 3]})


async def test_longpoll_channel_crash_gives_phx_error_and_the_session_lives(caplog):
    async with serving() as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        for topic in ("room:a", "room:b"):
            await poller.expect(topic, "phx_reply", await poller.join(topic))
        with caplog.at_level(logging.CRITICAL):
            await poller.push("room:a", "boom", join_ref="1")
            assert (await poller.expect("room:a", "phx_error"))[4] == {"reason": "channel_crash"}
        ref = await poller.push("room:b", "ping", {}, join_ref="2")
        assert (await poller.expect("room:b", "phx_reply", ref))[4]["status"] == "ok"
        assert endpoint.connections() == 1


# -- bad input and limits ------------------------------------------------------------------


async def test_longpoll_malformed_message_ends_the_session_with_a_log(caplog):
    async with serving() as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            assert (await poller.post("[not json"))["status"] == 200
            await sessions_end(endpoint)
        assert "malformed frame" in caplog.text
        assert await poller.poll() == {"status": 410, "token": None}


async def test_longpoll_message_over_max_frame_size_ends_the_session(caplog):
    async with serving(SmallPollSocket) as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        line = orjson.dumps([None, "1", "room:a", "big", {"x": "y" * 600}]).decode()
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            await poller.post(line)
            await sessions_end(endpoint)
        assert "frame of" in caplog.text and "the limit is 500" in caplog.text


async def test_longpoll_post_body_over_its_limit_is_413(caplog):
    async with serving(SmallPollSocket) as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            response = await client.post(poller.url(), content=b"x" * 4_001)
        assert response.status_code == 413 and response.json() == {"status": 413}
        assert "refused a LongPoll POST" in caplog.text
        assert endpoint.connections() == 1  # the session itself goes on


async def test_longpoll_client_that_does_not_poll_is_closed_past_max_queue_bytes(caplog):
    async with serving(SmallPollSocket) as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        await poller.expect("room:a", "phx_reply", await poller.join("room:a"))
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            for n in range(30):
                broadcast("ps", "room:a", "news", {"n": n, "pad": "z" * 100})
            await sessions_end(endpoint)
        assert "does not poll fast enough" in caplog.text and "the limit is 2000" in caplog.text
        assert (await poller.poll())["status"] == 410


async def test_longpoll_is_off_unless_the_socket_asks_for_it():
    async with serving(WebSocketOnly) as (_, client):
        assert (await client.get(f"{PATH}?vsn=2.0.0")).status_code == 404


def test_longpoll_window_must_be_shorter_than_the_request_timeout():
    with pytest.raises(ValueError, match=r"longpoll_window .* request_timeout"):
        Endpoint(sockets={"/socket": PollSocket}, pubsub="ps", request_timeout=0.2)
    with pytest.raises(ValueError, match="longpoll must be True or False"):
        type("Bad", (Socket,), {}, longpoll="yes")


async def test_longpoll_new_session_past_max_connections_is_refused():
    async with serving(max_connections=2) as (endpoint, client):
        await Poller(client).open()
        refused = await client.get(f"{PATH}?vsn=2.0.0")  # the session and this request: full
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        with pytest.raises(ValueError):
            refused.json()  # not a status the phoenix client knows: it retries later
        assert endpoint.connections() == 1


async def test_longpoll_endpoint_stop_ends_its_sessions():
    await start_supervised((PubSub, {"name": "ps"}))
    endpoint = Endpoint(sockets={"/socket": SlowPollSocket}, pubsub="ps")
    async with ASGIClient(endpoint) as client:
        await Poller(client).open()
        session = only_session(endpoint)
        assert beamish.is_alive(session.pid)
    assert not beamish.is_alive(session.pid)
    assert endpoint.connections() == 0


async def test_longpoll_other_methods_are_405_naming_the_accepted_ones():
    async with serving() as (_, client):
        response = await client.put(f"{PATH}?vsn=2.0.0")
        assert response.status_code == 405
        assert response.json()["error"] == "LongPoll takes GET, POST and OPTIONS, not PUT"
        assert response.headers["allow"] == "GET, POST, OPTIONS"


# -- Phoenix's edges: batch size, CORS, the token header --------------------------------------


async def test_longpoll_reads_at_most_100_entries_of_a_batch_and_drops_the_rest(caplog):
    """Phoenix takes the first 100 lines of an ndjson POST (``@max_poll_batch_size``); the
    phoenix client never sends more (``MAX_LONGPOLL_BATCH_SIZE``)."""
    async with serving() as (endpoint, client):
        poller = Poller(client)
        await poller.open()
        ref = await poller.join("room:lobby")
        await poller.expect("room:lobby", "phx_reply", ref)
        lines = [
            orjson.dumps(["1", str(1000 + n), "room:lobby", "ping", {"n": n}]).decode()
            for n in range(150)
        ]
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            assert (await poller.post(*lines))["status"] == 200
        assert "dropped 50 of the 150 entries" in caplog.text
        last = await poller.expect("room:lobby", "phx_reply", "1099")  # the 100th is read
        assert last[4] == ok({"pong": {"n": 99}, "transport": "longpoll"})
        heartbeat = await poller.push("phoenix", "heartbeat")  # behind every reply read
        await poller.expect("phoenix", "phx_reply", heartbeat)
        replies = [frame[1] for frame in poller.unread if frame[3] == "phx_reply"]
        assert not [r for r in replies if int(r) >= 1100], replies  # the rest never ran
        assert endpoint.connections() == 1


async def test_longpoll_lines_may_end_with_crlf():
    """Phoenix splits a batch on "\\n" and "\\r\\n"; a base64 binary line ending in "\\r"
    must still read as binary."""
    async with serving() as (_, client):
        poller = Poller(client)
        await poller.open()
        join = orjson.dumps(["1", "1", "room:lobby", "phx_join", {}])
        parts = [b"1", b"7", b"room:lobby", b"binary"]
        frame = bytes([0, *map(len, parts)]) + b"".join(parts) + b"\x01\x02\x03"
        body = join + b"\r\n" + base64.b64encode(frame) + b"\r\n"
        response = await client.post(
            poller.url(), content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert response.json()["status"] == 200
        await poller.expect("room:lobby", "phx_reply", "1")
        reply = await poller.expect("room:lobby", "phx_reply", "7")
        assert reply[4] == ok({"got": [1, 2, 3]})


async def test_longpoll_takes_the_session_token_from_its_header():
    """Current phoenix.js sends ``X-Phoenix-Longpoll-Token`` instead of ``?token=``; the
    header wins over the query, where ``token`` may be one of the socket's own params."""
    async with serving() as (_, client):
        poller = Poller(client, "vsn=2.0.0&token=user-secret")
        opened = await poller.open()
        assert opened["status"] == 410
        header = {"x-phoenix-longpoll-token": opened["token"]}
        join = orjson.dumps(["1", "1", "room:lobby", "phx_join", {}])
        posted = await client.post(
            f"{PATH}?vsn=2.0.0&token=user-secret", content=join,
            headers={**header, "content-type": "application/x-ndjson"},
        )
        assert posted.json() == {"status": 200, "token": opened["token"]}
        polled = (await client.get(f"{PATH}?vsn=2.0.0&token=user-secret", headers=header)).json()
        assert polled["status"] == 200 and polled["token"] == opened["token"]
        assert orjson.loads(polled["messages"][0])[3] == "phx_reply"


ALLOWED = "https://app.example"


async def test_longpoll_preflight_from_an_allowed_origin_gets_cors_headers():
    """Phoenix answers OPTIONS with 200 and CORS headers, after its origin check."""
    async with serving(check_origin=[ALLOWED]) as (_, client):
        response = await client.request(
            "OPTIONS", f"{PATH}?vsn=2.0.0",
            headers={
                "origin": ALLOWED, "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, x-phoenix-longpoll-token",
            },
        )
        assert response.status_code == 200 and response.content == b""
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert response.headers["access-control-allow-methods"] == "get, post, options"
        assert (response.headers["access-control-allow-headers"]
                == "content-type, x-phoenix-longpoll-token")
        assert response.headers["access-control-max-age"] == "3600"
        assert "origin" in response.headers["vary"].lower()


async def test_longpoll_preflight_from_a_refused_origin_gets_no_cors_headers(caplog):
    async with serving(check_origin=[ALLOWED]) as (endpoint, client):
        with caplog.at_level(logging.WARNING, logger="beamish.socket"):
            response = await client.request(
                "OPTIONS", f"{PATH}?vsn=2.0.0",
                headers={"origin": "https://evil.example",
                         "access-control-request-method": "POST"},
            )
        assert response.status_code == 403
        assert not [h for h in response.headers if h.startswith("access-control-")]
        assert "check_origin" in caplog.text
        assert endpoint.connections() == 0


async def test_longpoll_every_answer_to_an_allowed_origin_allows_it():
    """Phoenix sets ``access-control-allow-origin`` on each LongPoll answer; beamish sets it
    to the origin it checked, and never for a refused one."""
    async with serving(check_origin=[ALLOWED]) as (_, client):
        poller = Poller(client)
        origin = {"origin": ALLOWED}
        opened = await client.get(poller.url(), headers=origin)
        assert opened.headers["access-control-allow-origin"] == ALLOWED
        poller.token = opened.json()["token"]
        posted = await client.post(poller.url(), content=b"", headers=origin)
        assert posted.headers["access-control-allow-origin"] == ALLOWED
        polled = await client.get(poller.url(), headers=origin)
        assert polled.json()["status"] == 204
        assert polled.headers["access-control-allow-origin"] == ALLOWED
        refused = await client.get(poller.url(), headers={"origin": "https://evil.example"})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        same_site = await client.get(poller.url())  # no Origin: nothing to allow
        assert "access-control-allow-origin" not in same_site.headers
