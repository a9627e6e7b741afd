"""The wire codec: explicit types round-trip, anything else is refused at the sender, and
bytes from the network never raise anything but WireError (a fuzz)."""

from __future__ import annotations

import contextlib
import enum
from typing import ClassVar

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamish
from beamish import Crash, Down, Exit, NodeDown, NodeUp
from beamish._runtime.pid import NodeId
from beamish._runtime.request import ReplyTo, Request
from beamish.cluster import Codec, RemoteError, WireError, register_wire_type
from beamish.cluster._codec import MAX_DEPTH
from beamish.cluster._nodes import NodeTable

pytestmark = pytest.mark.beamish(node="a@test")


@beamish.message
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


register_wire_type(Color, "tests.Color")


class Pair:
    __match_args__ = ("left", "right")

    def __init__(self, left, right):
        self.left, self.right = left, right

    def __eq__(self, other):
        return type(other) is Pair and (other.left, other.right) == (self.left, self.right)


register_wire_type(Pair, "tests.Pair")


def codec() -> Codec:
    runtime = beamish.current_runtime()
    return Codec(NodeTable(runtime), runtime)


def far_codec() -> Codec:
    """The codec of another node, to decode what this one encoded."""

    class Other:
        node_id = NodeId("b@test", 12345)
        _procs: ClassVar[dict] = {}

        def _alias(self, reply_to):
            return 1

    other = Other()
    return Codec(NodeTable(other), other)


def round_trip(term):
    c = codec()
    return c.decode(c.encode(term))


@pytest.mark.parametrize("term", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, "", "text", b"", b"\x00\xff",
    [], [1, [2]], (), (1,), (1, (2, (3,))), {"k": (1, 2)}, {1: "int key", (1, 2): "tuple key"},
    {1, 2}, frozenset({"a"}), set(), [(), {}],
])
async def test_plain_terms_keep_their_types(term):
    back = round_trip(term)
    assert back == term and type(back) is type(term)


async def test_tuples_stay_tuples_inside_everything():
    back = round_trip({"k": [(1, 2), {"n": (3,)}]})
    assert type(back["k"][0]) is tuple and type(back["k"][1]["n"]) is tuple


async def test_records_enums_and_match_args_classes():
    assert round_trip(Point(1, 2)) == Point(1, 2)
    match round_trip(("moved", Point(3, 4))):
        case ("moved", Point(x, y)):
            assert (x, y) == (3, 4)
    assert round_trip(Color.BLUE) is Color.BLUE
    assert round_trip(Pair(1, (2,))) == Pair(1, (2,))
    for record in (Down(beamish.make_ref(), beamish.self(), "normal"),
                   Exit(beamish.self(), ("shutdown", 1)), NodeUp("b@x"), NodeDown("b@x", "why")):
        assert round_trip(record) == record


async def test_pids_and_refs_of_this_node_and_another():
    me = beamish.self()
    assert round_trip(me) is me  # a live local pid comes back as the process's own pid
    ref = beamish.make_ref()
    assert round_trip(ref) == ref
    c, far = codec(), far_codec()
    remote = far.decode(c.encode(me))
    # on the far node it is a pid of a@test: equal by value, but not the live local object
    assert remote == me and remote is not me and remote.node_id.index > 0
    assert c.decode(far.encode(remote)) is me  # and back home it is the local pid again


async def test_exceptions_cross_as_descriptions():
    back = round_trip(ValueError("bad input"))
    assert back == RemoteError("ValueError", "bad input") and str(back) == "ValueError: bad input"
    crash = round_trip(Crash(KeyError("k")))
    assert type(crash) is Crash and crash.exception == RemoteError("KeyError", "'k'")
    assert round_trip(RemoteError("X", "kept")) == RemoteError("X", "kept")


async def test_a_request_carries_a_reply_alias():
    runtime = beamish.current_runtime()
    future = runtime._loop.create_future()
    reply_to = ReplyTo(beamish.self(), future)
    c, far = codec(), far_codec()
    request = far.decode(c.encode(Request(reply_to, ("add", 1))))
    assert type(request) is Request and request.payload == ("add", 1)
    assert request.reply_to._future is None and request.reply_to._alias == reply_to._alias
    assert runtime._aliases[reply_to._alias] is reply_to
    runtime._aliases.pop(reply_to._alias)


@pytest.mark.parametrize(("term", "named"), [
    (object(), "object"),
    ([1, {"k": lambda: None}], "function"),
    (Color, "EnumType"),
    (2**64, "int"),
])
async def test_what_cannot_cross_raises_naming_it(term, named):
    with pytest.raises(WireError, match=named) as raised:
        codec().encode(term)
    assert "@beamish" in str(raised.value) or "register" in str(raised.value)


async def test_an_unregistered_enum_says_how_to_register_it():
    class Mood(enum.Enum):
        OK = 1

    with pytest.raises(WireError, match=r"register_wire_type\(.*Mood\)"):
        codec().encode(Mood.OK)


async def test_decoding_is_bounded():
    c = codec()
    c.max_size = 100
    with pytest.raises(WireError, match="over the limit"):
        c.decode(b"\x00" * 101)
    deep = ()
    for _ in range(MAX_DEPTH + 5):
        deep = (deep,)
    with pytest.raises(WireError, match="nested"):
        codec().decode(codec().encode(deep))


async def test_unknown_records_and_malformed_bodies_are_wire_errors():
    c = codec()
    unknown = msgpack.packb(msgpack.ExtType(6, msgpack.packb(["nobody.Knows", [1]])))
    with pytest.raises(WireError, match="does not know"):
        c.decode(unknown)
    wrong_arity = msgpack.packb(msgpack.ExtType(6, msgpack.packb(["tests.Pair", [1]])))
    with pytest.raises(WireError, match="came with 1 fields"):
        c.decode(wrong_arity)
    bad_pid = msgpack.packb(msgpack.ExtType(2, msgpack.packb(["a", "not an int", 1])))
    with pytest.raises(WireError, match="expected an int"):
        c.decode(bad_pid)
    with pytest.raises(WireError, match="unknown extension"):
        c.decode(msgpack.packb(msgpack.ExtType(99, b"\x90")))


terms = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=5).map(tuple)
    | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    | st.frozensets(st.integers(-1000, 1000), max_size=5)
    | st.builds(Point, st.integers(-1000, 1000), st.integers(-1000, 1000)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(term=terms)
def test_any_valid_term_round_trips(term):
    table = NodeTable(type("R", (), {"node_id": NodeId("a@fuzz", 1), "_procs": {}})())
    c = Codec(table, None)
    back = c.decode(c.encode(term))
    assert back == term and type(back) is type(term)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_wire_errors(data):
    table = NodeTable(type("R", (), {"node_id": NodeId("a@fuzz", 1), "_procs": {}})())
    c = Codec(table, None)
    with contextlib.suppress(WireError):  # anything else fails the test
        c.decode(data)


@settings(max_examples=500, deadline=None)
@given(term=terms, flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                  min_size=1, max_size=4))
def test_mutated_encodings_raise_only_wire_errors(term, flips):
    table = NodeTable(type("R", (), {"node_id": NodeId("a@fuzz", 1), "_procs": {}})())
    c = Codec(table, None)
    data = bytearray(c.encode(term))
    for at, value in flips:
        data[at % len(data)] = value
    with contextlib.suppress(WireError):  # anything else fails the test
        c.decode(bytes(data))


async def test_a_refused_term_leaves_the_codec_whole():
    """The codec keeps a packer per nesting level: one that raised halfway must not leave
    bytes behind for the next term, at any depth."""
    c = codec()
    me = beamish.self()
    for bad in [(1, (2, object())), [(me, {"k": (object(),)})], ((((lambda: 1),),),)]:
        with pytest.raises(WireError):
            c.encode(bad)
        term = (me, (1, ("two", (3.0, [me]))), {4})
        assert c.decode(c.encode(term)) == term
