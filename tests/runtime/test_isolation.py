"""Isolation: a receiver never sees a sender's later change to a sent object."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

import pytest

import beamish
from beamish import MessageCopyError, receive, send
from beamish._runtime.isolation import isolate


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclass(frozen=True)
class Bag:
    items: list[int] = field(default_factory=list)


class Color(Enum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    ["s", b"b", 1, 2.5, 3j, True, None, (1, "a", (2, b"x")), frozenset({1, 2}),
     Point(1, 2), Color.RED, range(3)],
)
def test_isolate_passes_immutable_values_by_reference(value):
    assert isolate(value) is value


def test_isolate_passes_pids_and_refs_by_reference():
    async def main():
        me = beamish.self()
        ref = beamish.make_ref()
        msg = (me, ref)
        assert isolate(msg) is msg

    beamish.run(main, long_schedule=None)


@pytest.mark.parametrize(
    "value", [[1, 2], {"a": [1]}, {1, 2}, bytearray(b"x"), (1, [2]), Bag([1]),
              frozenset({(1,)}) | {(2,)}],
)
def test_isolate_copies_mutable_values(value):
    copied = isolate(value)
    assert copied == value
    if type(value) not in (frozenset,):
        assert copied is not value


def test_isolate_keeps_shared_references_and_cycles():
    shared = [1]
    value = {"a": shared, "b": shared}
    copied = isolate(value)
    assert copied["a"] is copied["b"] and copied["a"] is not shared
    cyclic: list = [1]
    cyclic.append(cyclic)
    copied_cycle = isolate(cyclic)
    assert copied_cycle[1] is copied_cycle and copied_cycle is not cyclic


def test_isolate_refuses_what_cannot_be_copied():
    with pytest.raises(MessageCopyError, match=r"cannot send a _thread\.lock.*mark_shared"):
        isolate({"lock": threading.Lock()})


def test_mark_shared_passes_instances_by_reference():
    @beamish.mark_shared
    class Handle:
        def __init__(self):
            self.lock = threading.Lock()

    handle = Handle()
    assert isolate(handle) is handle
    assert isolate((1, handle)) is not None
    with pytest.raises(TypeError, match="takes a class"):
        beamish.mark_shared(handle)


async def test_receiver_never_sees_later_changes():
    me = beamish.self()
    data = {"items": [1, 2]}
    nested = ("tag", [1])
    bag = Bag([1])
    send(me, data)
    send(me, nested)
    send(me, bag)
    data["items"].append(3)
    nested[1].append(2)
    bag.items.append(2)
    assert await receive(timeout=1) == {"items": [1, 2]}
    assert await receive(timeout=1) == ("tag", [1])
    assert await receive(timeout=1) == Bag([1])


async def test_receivers_do_not_share_a_mutable_message():
    me = beamish.self()
    msg = [0]

    async def mutator():
        got = await receive()
        got.append("changed")
        send(me, "done")

    a = beamish.spawn(mutator)
    send(a, msg)
    send(me, msg)
    assert await receive("done", timeout=1) == "done"
    assert await receive(timeout=1) == [0]


async def test_send_of_an_uncopyable_message_fails_in_the_sender():
    with pytest.raises(MessageCopyError):
        send(beamish.self(), [threading.Lock()])
    assert beamish.process_info(beamish.self()).message_queue_len == 0


def test_functions_pass_by_reference():
    def f():
        return 1

    assert isolate((f, print)) == (f, print)
    assert isolate([f])[0] is f


def test_exceptions_pass_by_reference():
    class Custom(Exception):
        def __init__(self, code, message):
            super().__init__(message)
            self.code = code

    error = Custom(7, "bad")
    assert isolate(error) is error
    assert isolate(("error", error))[1] is error


async def test_spawn_arguments_are_isolated_like_a_message():
    me = beamish.self()
    data = [1]

    async def child(arg):
        await beamish.receive("go")
        send(me, arg)

    pid = beamish.spawn(child, data)
    data.append(2)
    send(pid, "go")
    assert await receive(timeout=1) == [1]


def test_a_frozen_dataclass_holding_mutable_data_is_copied_field_by_field():
    bag = Bag([1, [2]])
    copied = isolate(bag)
    assert copied == bag and copied is not bag and type(copied) is Bag
    assert copied.items is not bag.items and copied.items[1] is not bag.items[1]
    point_holder = (Point(1, 2), Bag([3]))
    out = isolate(point_holder)
    assert out[0] is point_holder[0]  # the immutable part is shared
    assert out[1] is not point_holder[1]
