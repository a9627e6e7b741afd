"""Fuzzing the Phoenix frame decoder: whatever a client sends, ``V2_JSON.decode`` gives a
``Message`` or raises ``SerializerError`` (the transport then closes with 1007), never another
exception; and what the encoder writes, a client reads back as it was meant.

The binary layouts are checked against a reference codec written here from the ``phoenix``
client's ``serializer.js`` (``binaryEncode``, ``decodePush``/``decodeReply``/
``decodeBroadcast``), not against the serializer itself. V1 frames (a JSON object per
message) are not spoken: they are refused with ``SerializerError`` like any other shape.
"""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beamish.web import Message, SerializerError
from beamish.web._serializer import V2_JSON

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ----------------------------------------------------------------------------

# JSON as orjson reads and writes it: 64-bit integers, finite floats, str keys.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
refs = st.none() | st.text(min_size=1, max_size=10)
names = st.text(max_size=30)


def short_text(max_bytes: int = 255) -> st.SearchStrategy[str]:
    """Text whose UTF-8 form fits a binary frame's one-byte size."""
    return st.text(max_size=max_bytes // 4)


@st.composite
def near_frames(draw: st.DrawFn) -> str:
    """Text that is almost a frame: arrays of any length and content, V1 objects, cut JSON."""
    shape = draw(st.sampled_from(["array", "v1", "cut", "value"]))
    if shape == "array":
        items = draw(st.lists(json_values, max_size=7))
        return orjson.dumps(items).decode()
    if shape == "v1":
        frame = {"topic": draw(names), "event": draw(names), "payload": draw(payloads),
                 "ref": draw(refs)}
        return orjson.dumps(frame).decode()
    text = orjson.dumps(draw(st.lists(json_values, min_size=5, max_size=6))).decode()
    if shape == "cut":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    return orjson.dumps(draw(json_values)).decode()


@st.composite
def near_binary(draw: st.DrawFn) -> bytes:
    """Bytes shaped like a binary frame: a kind, four sizes, headers that may be cut short."""
    kind = draw(st.sampled_from([0, 0, 0, 1, 2, 255]))
    headers = [draw(st.binary(max_size=12)) for _ in range(4)]
    sizes = [draw(st.sampled_from([len(h), len(h), 0, 255])) for h in headers]
    body = b"".join(headers) + draw(st.binary(max_size=16))
    return bytes([kind, *sizes]) + body[: draw(st.integers(0, len(body)))]


def client_binary_push(join_ref: str, ref: str, topic: str, event: str, data: bytes) -> bytes:
    """What the phoenix client's ``binaryEncode`` sends: kind 0, four sizes, four strings."""
    fields = [text.encode() for text in (join_ref, ref, topic, event)]
    return bytes([0, *(len(f) for f in fields)]) + b"".join(fields) + data


def client_binary_read(frame: bytes) -> dict[str, object]:
    """What the phoenix client's ``binaryDecode`` makes of a server frame."""
    kind = frame[0]
    count = {0: 3, 1: 4, 2: 2}[kind]
    sizes, offset = frame[1 : 1 + count], 1 + count
    fields = []
    for size in sizes:
        fields.append(frame[offset : offset + size].decode())
        offset += size
    data = frame[offset:]
    if kind == 0:
        join_ref, topic, event = fields
        return {"join_ref": join_ref, "ref": None, "topic": topic, "event": event,
                "payload": data}
    if kind == 1:
        join_ref, ref, topic, status = fields
        return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": "phx_reply",
                "payload": {"status": status, "response": data}}
    topic, event = fields
    return {"join_ref": None, "ref": None, "topic": topic, "event": event, "payload": data}


def decodes_or_refuses(data: str | bytes) -> Message | None:
    try:
        message = V2_JSON.decode(data)
    except SerializerError:
        return None
    assert type(message) is Message
    assert type(message.topic) is str and type(message.event) is str
    assert message.ref is None or type(message.ref) is str
    assert message.join_ref is None or type(message.join_ref) is str
    return message


# -- any input: a message or SerializerError ---------------------------------------------------


@SETTINGS
@given(data=st.binary(max_size=400) | near_binary())
@example(data=b"")
@example(data=bytes([0, 255, 255, 255, 255]))
@example(data=bytes([0, 1, 0, 0, 0]) + b"\xff")
def test_fuzz_decode_any_bytes_gives_a_message_or_serializer_error(data):
    decodes_or_refuses(data)


@SETTINGS
@given(text=st.text(st.characters(codec=None), max_size=300) | near_frames())
@example(text="[" * 5000 + "]" * 5000)  # deeper than the JSON parser goes
@example(text='["\\ud800", null, "t", "e", {}]')  # a lone surrogate, escaped
@example(text="\ud800")  # and raw: not UTF-8 at all
@example(text='[null, null, "t", "e", {}, "more"]')
@example(text='[1e999, 99999999999999999999999, "t", "e", {}]')
def test_fuzz_decode_any_text_gives_a_message_or_serializer_error(text):
    decodes_or_refuses(text)


@SETTINGS
@given(frame=near_frames())
def test_fuzz_decode_reads_positions_1_to_5_of_any_array_of_five_or_more(frame):
    """Phoenix's V2 decoder takes ``[join_ref, ref, topic, event, payload | _]``: an array of
    five or more whose topic and event are strings is a message, anything else is refused."""
    try:
        items = orjson.loads(frame)
    except orjson.JSONDecodeError:
        items = None  # cut short: not JSON
    message = decodes_or_refuses(frame)
    shaped = (type(items) is list and len(items) >= 5 and type(items[2]) is str
              and type(items[3]) is str)
    assert (message is not None) == shaped, frame
    if message is not None:
        assert (message.topic, message.event, message.payload) == (items[2], items[3], items[4])


# -- round trips ----------------------------------------------------------------------------


def same_json(a: object, b: object) -> bool:
    """Equal as JSON values (0.0 and -0.0 alike; floats compared exactly otherwise)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@SETTINGS
@given(join_ref=refs, ref=refs, topic=names, event=names, payload=payloads)
def test_fuzz_text_push_round_trips(join_ref, ref, topic, event, payload):
    """A text frame is the same in both directions, so what the server encodes decodes back
    to the same message (a client echoing it would be understood)."""
    frame = V2_JSON.encode(join_ref, ref, topic, event, payload)
    assert isinstance(frame, str)
    assert V2_JSON.decode(frame) == Message(join_ref, ref, topic, event, payload)
    assert orjson.loads(frame) == [join_ref, ref, topic, event, payload]


@SETTINGS
@given(join_ref=refs, ref=refs, topic=names, status=st.sampled_from(["ok", "error"]),
       response=payloads)
def test_fuzz_text_reply_round_trips(join_ref, ref, topic, status, response):
    frame = V2_JSON.encode_reply(join_ref, ref, topic, status, response)
    assert V2_JSON.decode(frame) == Message(
        join_ref, ref, topic, "phx_reply", {"status": status, "response": response}
    )


@SETTINGS
@given(topic=names, event=names, payload=payloads)
def test_fuzz_text_broadcast_round_trips(topic, event, payload):
    frame = V2_JSON.encode_broadcast(topic, event, payload)
    assert V2_JSON.decode(frame) == Message(None, None, topic, event, payload)


@SETTINGS
@given(payload=json_values.filter(lambda v: not isinstance(v, dict)) | st.sets(st.integers()))
def test_fuzz_encoding_what_is_not_a_map_is_a_serializer_error(payload):
    with pytest.raises(SerializerError):
        V2_JSON.encode(None, None, "t", "e", payload)


@SETTINGS
@given(big=st.integers(2**64, 2**80) | st.integers(-(2**80), -(2**63) - 1))
def test_fuzz_encoding_what_json_cannot_carry_is_a_serializer_error(big):
    with pytest.raises(SerializerError):
        V2_JSON.encode(None, None, "t", "e", {"n": big})


@SETTINGS
@given(join_ref=short_text(), ref=short_text(), topic=short_text(), event=short_text(),
       data=st.binary(max_size=64))
def test_fuzz_client_binary_push_decodes_as_the_client_meant(join_ref, ref, topic, event, data):
    message = V2_JSON.decode(client_binary_push(join_ref, ref, topic, event, data))
    assert message == Message(join_ref or None, ref or None, topic, event, data)


@SETTINGS
@given(join_ref=short_text(), ref=short_text(), topic=short_text(), event=short_text(),
       data=st.binary(max_size=64))
def test_fuzz_server_binary_frames_read_back_in_the_client(join_ref, ref, topic, event, data):
    push = client_binary_read(V2_JSON.encode(join_ref, None, topic, event, data))
    assert push == {"join_ref": join_ref, "ref": None, "topic": topic, "event": event,
                    "payload": data}
    reply = client_binary_read(V2_JSON.encode_reply(join_ref, ref, topic, event, data))
    assert reply == {"join_ref": join_ref, "ref": ref, "topic": topic, "event": "phx_reply",
                     "payload": {"status": event, "response": data}}
    broadcast = client_binary_read(V2_JSON.encode_broadcast(topic, event, data))
    assert broadcast == {"join_ref": None, "ref": None, "topic": topic, "event": event,
                         "payload": data}


@SETTINGS
@given(long=st.text(min_size=64, max_size=200).filter(lambda t: len(t.encode()) > 255),
       where=st.integers(0, 2))
def test_fuzz_binary_header_over_255_bytes_is_a_serializer_error(long, where):
    fields = ["1", "t", "e"]
    fields[where] = long
    with pytest.raises(SerializerError, match="at most 255 bytes"):
        V2_JSON.encode(fields[0], None, fields[1], fields[2], b"x")
