"""The Phoenix Channels V2 serializer: what a frame on the wire looks like.

A text frame is a JSON array ``[join_ref, ref, topic, event, payload]``, the same in both
directions; the server's replies are pushes whose event is ``"phx_reply"`` and whose payload
is ``{"status": status, "response": response}``. The payload of a text frame is always a
JSON object (a ``dict``); anything else is an encoding error, as in Phoenix.

A payload that is ``bytes`` travels as a binary frame instead, laid out as the ``phoenix``
JavaScript client reads and writes it: a kind byte (0 push, 1 reply, 2 broadcast), one size
byte per header string, the header strings, then the raw payload::

    server push       0 | sizes: join_ref topic event     | join_ref topic event     | data
    server reply      1 | sizes: join_ref ref topic status | join_ref ref topic status | data
    server broadcast  2 | sizes: topic event              | topic event              | data
    client push       0 | sizes: join_ref ref topic event | join_ref ref topic event | data

Header strings longer than 255 bytes cannot be sized in one byte: an encoding error. The
serializer is stateless; transports share the one instance ``V2_JSON``, and a broadcast is
encoded once per serializer however many sockets it reaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from beamish._errors import BeamishError
from beamish._runtime.isolation import mark_shared

__all__ = ["V2_JSON", "Message", "Serializer", "SerializerError", "V2JSONSerializer"]

Frame = str | bytes
"""An encoded frame: ``str`` goes out as a text frame, ``bytes`` as a binary frame."""


class SerializerError(BeamishError, ValueError):
    """A frame that cannot be encoded or decoded (a payload that is not a map, bad JSON)."""


@mark_shared
class Message:
    """One decoded frame: ``[join_ref, ref, topic, event, payload]``.

    The transport hands a freshly decoded message to one channel and never touches it
    again, so messages pass between processes by reference (the payload is not copied).
    """

    __slots__ = ("event", "join_ref", "payload", "ref", "topic")
    __match_args__ = ("topic", "event", "payload", "ref", "join_ref")

    def __init__(
        self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
    ) -> None:
        self.join_ref = join_ref
        self.ref = ref
        self.topic = topic
        self.event = event
        self.payload = payload

    def __repr__(self) -> str:
        return (
            f"Message(join_ref={self.join_ref!r}, ref={self.ref!r}, topic={self.topic!r}, "
            f"event={self.event!r}, payload={self.payload!r})"
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is Message and (
            self.join_ref, self.ref, self.topic, self.event, self.payload
        ) == (other.join_ref, other.ref, other.topic, other.event, other.payload)

    __hash__ = None  # type: ignore[assignment]


class Serializer(Protocol):
    """What a transport needs of a serializer (``V2JSONSerializer`` is the one there is)."""

    def encode(
        self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
    ) -> Any:
        """A server push: ``[join_ref, ref, topic, event, payload]`` (``ref`` is None for a
        channel's push, the join's ref for ``phx_close`` and ``phx_error``)."""
        ...

    def encode_reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, payload: Any
    ) -> Any:
        """A reply to the client's message ``ref``."""
        ...

    def encode_broadcast(self, topic: str, event: str, payload: Any) -> Any:
        """A broadcast, encoded once for every socket: ``[null, null, topic, event, payload]``."""
        ...

    def decode(self, data: str | bytes) -> Message:
        """A frame from the client."""
        ...


@mark_shared
class V2JSONSerializer:
    """Phoenix's ``V2.JSONSerializer``: JSON text frames, and binary frames for ``bytes``."""

    __slots__ = ()

    def __copy__(self) -> V2JSONSerializer:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> V2JSONSerializer:
        return self

    def __repr__(self) -> str:
        return "V2_JSON"

    def encode(
        self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
    ) -> Frame:
        if type(payload) is bytes:  # a binary push carries no ref
            return _binary(0, (join_ref or "", topic, event), payload)
        return _json([join_ref, ref, topic, event, _map(payload)])

    def encode_reply(
        self, join_ref: str | None, ref: str | None, topic: str, status: str, payload: Any
    ) -> Frame:
        if type(payload) is bytes:
            return _binary(1, (join_ref or "", ref or "", topic, status), payload)
        return _json(
            [join_ref, ref, topic, "phx_reply", {"status": status, "response": _map(payload)}]
        )

    def encode_broadcast(self, topic: str, event: str, payload: Any) -> Frame:
        if type(payload) is bytes:
            return _binary(2, (topic, event), payload)
        return _json([None, None, topic, event, _map(payload)])

    def decode(self, data: str | bytes) -> Message:
        if type(data) is bytes:
            return _decode_binary(data)
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializerError(
                f"a text frame must be JSON [join_ref, ref, topic, event, payload]; could not "
                f"parse {_short(data)}: {exc}"
            ) from None
        if type(items) is not list or len(items) < 5:
            raise SerializerError(
                "a text frame must be a JSON array [join_ref, ref, topic, event, payload], "
                f"got {_short(data)}"
            )
        join_ref, ref, topic, event, payload = items[0], items[1], items[2], items[3], items[4]
        if type(topic) is not str or type(event) is not str:
            raise SerializerError(
                f"the topic and the event of a frame must be strings, got {_short(data)}"
            )
        return Message(_ref(join_ref), _ref(ref), topic, event, payload)


V2_JSON = V2JSONSerializer()
"""The shared V2 serializer (what ``vsn=2.0.0`` asks for)."""


def _json(frame: list[Any]) -> str:
    try:
        return orjson.dumps(frame).decode()
    except TypeError as exc:
        raise SerializerError(f"cannot encode {_short(frame)} as JSON: {exc}") from None


def _map(payload: Any) -> Any:
    if type(payload) is dict:
        return payload
    if isinstance(payload, Mapping):
        return dict(payload)
    raise SerializerError(
        f"a payload must be a map (a dict) or bytes (a binary frame), got {_short(payload)} "
        f"({type(payload).__name__}); wrap it, e.g. {{'value': ...}}"
    )


def _ref(value: Any) -> str | None:
    # The JavaScript client sends refs as strings; other clients may send numbers.
    if value is None or type(value) is str:
        return value
    return str(value)


def _binary(kind: int, headers: tuple[str, ...], data: bytes) -> bytes:
    encoded = [h.encode() for h in headers]
    for text, raw in zip(headers, encoded, strict=True):
        if len(raw) > 255:
            raise SerializerError(
                f"a binary frame's header strings are at most 255 bytes; {_short(text)} is "
                f"{len(raw)}"
            )
    return b"".join((bytes([kind, *(len(raw) for raw in encoded)]), *encoded, data))


def _decode_binary(data: bytes) -> Message:
    if len(data) < 5 or data[0] != 0:
        raise SerializerError(
            "a binary frame from a client must be a push: kind 0, then the sizes of join_ref, "
            f"ref, topic and event; got {len(data)} bytes starting {data[:5]!r}"
        )
    sizes = data[1:5]
    offset = 5
    fields = []
    for size in sizes:
        end = offset + size
        if end > len(data):
            raise SerializerError(f"a binary frame of {len(data)} bytes is truncated")
        try:
            fields.append(data[offset:end].decode())
        except UnicodeDecodeError:
            raise SerializerError("a binary frame's header strings must be UTF-8") from None
        offset = end
    join_ref, ref, topic, event = fields
    return Message(join_ref or None, ref or None, topic, event, data[offset:])


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
