"""The V2 serializer, by the reference behaviours (OTP-SEMANTICS items 155 and 176)."""

from __future__ import annotations

import orjson
import pytest

from beamish.web import Message, SerializerError
from beamish.web._serializer import V2_JSON


def test_serializer_frame_format_155():
    push = V2_JSON.encode(None, None, "t", "e", {"m": 1})
    assert orjson.loads(push) == [None, None, "t", "e", {"m": 1}]
    assert isinstance(push, str)  # a text frame

    reply = V2_JSON.encode_reply("1", "2", "t", "ok", {"resp": "x"})
    assert orjson.loads(reply) == [
        "1", "2", "t", "phx_reply", {"status": "ok", "response": {"resp": "x"}}
    ]
    assert orjson.loads(V2_JSON.encode_broadcast("t", "e", {})) == [None, None, "t", "e", {}]

    decoded = V2_JSON.decode('[null,null,"t","e",{"m":1}]')
    assert (decoded.join_ref, decoded.ref, decoded.topic, decoded.event, decoded.payload) == (
        None, None, "t", "e", {"m": 1}
    )
    extra = V2_JSON.decode('["1","2","t","e",{"m":1},"ignored"]')
    assert extra == Message("1", "2", "t", "e", {"m": 1})

    for payload in ("not a map", [1, 2], 3, None):
        with pytest.raises(SerializerError, match="must be a map"):
            V2_JSON.encode(None, None, "t", "e", payload)
    with pytest.raises(SerializerError, match="must be a map"):
        V2_JSON.encode_reply("1", "2", "t", "ok", ["list"])


def test_serializer_decode_refuses_what_is_not_the_protocol():
    for text in ("not json", "{}", '["1","2","t"]', '[null,null,1,"e",{}]'):
        with pytest.raises(SerializerError):
            V2_JSON.decode(text)
    assert V2_JSON.decode('[1,2,"t","e",{}]').ref == "2"  # numeric refs read as strings


def test_serializer_binary_frames_176():
    push = V2_JSON.encode("12", None, "topic", "event", b"\x01\x02\x03")
    assert push == bytes([0, 2, 5, 5]) + b"12" + b"topic" + b"event" + b"\x01\x02\x03"

    reply = V2_JSON.encode_reply("12", "123", "topic", "ok", b"\x01\x02\x03")
    assert reply == (
        bytes([1, 2, 3, 5, 2]) + b"12" + b"123" + b"topic" + b"ok" + b"\x01\x02\x03"
    )

    broadcast = V2_JSON.encode_broadcast("topic", "event", b"\x01\x02\x03")
    assert broadcast == bytes([2, 5, 5]) + b"topic" + b"event" + b"\x01\x02\x03"

    client_push = bytes([0, 2, 3, 5, 5]) + b"12" + b"123" + b"topic" + b"event" + b"\x01\x02"
    assert V2_JSON.decode(client_push) == Message("12", "123", "topic", "event", b"\x01\x02")

    with pytest.raises(SerializerError, match="at most 255 bytes"):
        V2_JSON.encode("12", None, "t" * 256, "event", b"\x01")
    with pytest.raises(SerializerError, match="must be a push"):
        V2_JSON.decode(bytes([1, 0, 0, 0, 0]))
    with pytest.raises(SerializerError, match="truncated"):
        V2_JSON.decode(bytes([0, 9, 0, 0, 0]) + b"12")
