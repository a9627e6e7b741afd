"""Fuzzing LongPoll bodies: whatever a client POSTs, each entry it carries becomes a message
or the documented decode error (the session then ends, and the client reconnects), never
another exception, and the HTTP answer is one the ``phoenix`` client knows; a batch as the
client writes it is read whole, in order.

The pure part (``entries`` and ``_frame``, what ``_publish`` does with a body before the
transport decodes each entry) takes many examples; the whole path, through an endpoint in
process, takes a few, each a fresh runtime.
"""

from __future__ import annotations

import base64
import logging
from typing import ClassVar

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import beamish
from beamish import Ok, Reply
from beamish.pubsub import PubSub
from beamish.testing._asgi_client import ASGIClient
from beamish.web import Channel, Endpoint, Message, SerializerError, Socket
from beamish.web._longpoll import MAX_BATCH, _frame, entries
from beamish.web._serializer import V2_JSON
from tests.web.test_fuzz_serializer import (
    client_binary_push,
    near_binary,
    near_frames,
    payloads,
    refs,
    short_text,
)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NDJSON = "application/x-ndjson"

# -- strategies ----------------------------------------------------------------------------


@st.composite
def client_messages(draw: st.DrawFn) -> tuple[bytes, Message]:
    """One message as the phoenix client writes it into a batch, and what it means."""
    join_ref, ref = draw(refs), draw(refs)
    topic, event = draw(short_text(60)), draw(short_text(60))
    if draw(st.booleans()):
        payload = draw(payloads)
        line = orjson.dumps([join_ref, ref, topic, event, payload])
        return line, Message(join_ref, ref, topic, event, payload)
    data = draw(st.binary(max_size=40))
    frame = client_binary_push(join_ref or "", ref or "", topic, event, data)
    return base64.b64encode(frame), Message(join_ref, ref, topic, event, data)


lines = (
    st.binary(max_size=80)
    | near_frames().map(str.encode)
    | near_binary().map(base64.b64encode)
    | st.text(max_size=40).map(str.encode)
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Bodies a client could send: lines of anything, split by LF or CRLF; sometimes padded
    with a run of copies past the 100 lines a batch may have."""
    parts = draw(st.lists(lines, max_size=8))
    if parts and draw(st.booleans()):
        parts = parts * (MAX_BATCH // len(parts) + 2)
    separator = draw(st.sampled_from([b"\n", b"\r\n"]))
    tail = draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    return separator.join(parts) + tail


content_types = st.sampled_from([NDJSON, NDJSON + "; charset=utf-8", "text/plain", ""])


def read(line: bytes) -> Message | None:
    """What the transport does with one entry: a message, or None for the decode error."""
    try:
        return V2_JSON.decode(_frame(line))
    except SerializerError:
        return None


# -- the pure path: any body, any entry ----------------------------------------------------------


@SETTINGS
@given(body=bodies() | st.binary(max_size=600), content_type=content_types)
@example(body=b"\n" * 300, content_type=NDJSON)
@example(body=b"\r\n\r\n\r", content_type=NDJSON)
@example(body=b"\r\r\n", content_type=NDJSON)
@example(body=b"[\xff\xfe", content_type=NDJSON)
@example(body=b"=" * 8, content_type=NDJSON)
def test_fuzz_longpoll_any_body_gives_messages_or_decode_errors(body, content_type):
    kept, dropped = entries(body, content_type)
    assert len(kept) <= MAX_BATCH and dropped >= 0
    if not content_type.startswith(NDJSON):
        assert kept == ([body] if body else []) and dropped == 0
    for line in kept:
        assert line
        if content_type.startswith(NDJSON):
            assert b"\n" not in line and not line.endswith(b"\r")
        message = read(line)
        assert message is None or type(message) is Message


@SETTINGS
@given(batch=st.lists(client_messages(), max_size=12), count=st.integers(0, MAX_BATCH),
       crlf=st.booleans())
def test_fuzz_longpoll_a_client_batch_is_read_whole_and_in_order(batch, count, crlf):
    """phoenix.js joins up to 100 messages with "\\n" (``batchSend``); each comes back as it
    was sent, text or binary. (The batch is the drawn messages, repeated up to ``count``.)"""
    batch = (batch * (count // len(batch) + 1))[: max(count, len(batch))] if batch else []
    body = (b"\r\n" if crlf else b"\n").join(line for line, _ in batch)
    kept, dropped = entries(body, NDJSON)
    assert dropped == 0
    assert [read(line) for line in kept] == [message for _, message in batch]


@SETTINGS
@given(batch=st.lists(client_messages(), min_size=1, max_size=8),
       extra=st.integers(1, 40))
def test_fuzz_longpoll_past_100_lines_the_rest_is_dropped_and_counted(batch, extra):
    batch = (batch * (MAX_BATCH + extra))[: MAX_BATCH + extra]
    body = b"\n".join(line for line, _ in batch)
    kept, dropped = entries(body, NDJSON)
    assert [read(line) for line in kept] == [message for _, message in batch[:MAX_BATCH]]
    assert dropped == extra


# -- the whole path, through an endpoint ------------------------------------------------------


class Room(Channel):
    def join(self, topic, payload, socket):
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        return Reply(("ok", {"echo": event}), socket)


class FuzzSocket(Socket, longpoll=True, longpoll_window=0.2, max_frame_size=2_000):
    channels: ClassVar = {"room:*": Room}


KNOWN = {200, 204, 410, 403, 413}  # what the phoenix client reads (413 only from a POST)


@settings(
    max_examples=12, deadline=None,
    # caplog is cleared at the start of each example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(posts=st.lists(st.tuples(bodies(), content_types), min_size=1, max_size=6))
def test_fuzz_longpoll_any_post_gets_an_answer_the_client_knows(posts, caplog):
    """Through the endpoint: every POST is answered 200 (or 413 for an oversize body) with a
    status the client knows; a session that read a malformed entry ends (410), a new one
    opens; nothing crashes."""

    async def main():
        await PubSub.start_link("fuzz")
        endpoint = Endpoint(sockets={"/socket": FuzzSocket}, pubsub="fuzz")
        async with ASGIClient(endpoint) as client:
            token = None
            for body, content_type in posts:
                if token is None:
                    opened = (await client.get("/socket/longpoll?vsn=2.0.0")).json()
                    assert opened["status"] == 410, opened
                    token = opened["token"]
                    join = orjson.dumps(["1", "1", "room:fuzz", "phx_join", {}])
                    await client.post(f"/socket/longpoll?token={token}", content=join,
                                      headers={"content-type": NDJSON})
                headers = {"content-type": content_type} if content_type else {}
                posted = await client.post(
                    f"/socket/longpoll?token={token}", content=body, headers=headers
                )
                assert posted.status_code in (200, 413), posted.text
                assert posted.json()["status"] in KNOWN
                polled = await client.get(f"/socket/longpoll?token={token}")
                assert polled.status_code == 200 and polled.json()["status"] in KNOWN
                if polled.json()["status"] == 410:
                    token = None  # the session ended: the client reconnects

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        beamish.run(main, long_schedule=None)
    crashes = [r.getMessage() for r in caplog.records
               if r.levelno >= logging.ERROR and "dropped a binary frame" not in r.getMessage()]
    assert not crashes, crashes
