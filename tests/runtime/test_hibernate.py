"""hibernate(): an idle actor gives its mailbox back, and loses no message doing so."""

from __future__ import annotations

import pytest

import beamish
from beamish import Actor
from beamish._runtime.api import hibernate
from beamish.testing import assert_receive


class Sleeper(Actor):
    """Reports each message to ``to``; "sleep" hibernates, "sleep+" hibernates and then sends
    itself one more message in the same turn."""

    __slots__ = ("to",)

    def __init__(self, to):
        self.to = to

    def handle(self, message):
        beamish.send(self.to, ("got", message))
        if message == "sleep":
            hibernate()
        elif message == "sleep+":
            hibernate()
            beamish.send(self.pid, "after")


def mailbox_of(pid):
    return pid._proc.mailbox


async def test_hibernate_drops_the_empty_mailbox_and_the_next_message_still_arrives():
    pid = beamish.spawn(Sleeper(beamish.self()))
    for n in range(3):
        beamish.send(pid, n)
    beamish.send(pid, "sleep")
    for expected in (0, 1, 2, "sleep"):
        assert await assert_receive(("got", beamish.ANY)) == ("got", expected)
    await beamish.testing.wait_until_idle()
    assert mailbox_of(pid) is None  # given back
    beamish.send(pid, "later")  # a new mailbox is made for it
    assert await assert_receive(("got", beamish.ANY)) == ("got", "later")
    beamish.exit(pid, "kill")


async def test_hibernate_keeps_a_mailbox_that_is_not_empty_at_the_end_of_the_turn():
    pid = beamish.spawn(Sleeper(beamish.self()))
    beamish.send(pid, "sleep+")
    assert await assert_receive(("got", beamish.ANY)) == ("got", "sleep+")
    assert await assert_receive(("got", beamish.ANY)) == ("got", "after")  # not lost
    beamish.exit(pid, "kill")


async def test_hibernate_is_for_an_actor_only():
    with pytest.raises(RuntimeError, match="for an actor"):
        hibernate()  # the test process is not an actor


class AsyncSleeper(Actor):
    """Tries to hibernate from an async handler and reports what it got."""

    __slots__ = ("to",)

    def __init__(self, to):
        self.to = to

    async def handle(self, message):
        try:
            hibernate()
        except RuntimeError as exc:
            beamish.send(self.to, ("refused", str(exc)))


async def test_hibernate_is_refused_in_an_async_handler():
    pid = beamish.spawn(AsyncSleeper(beamish.self()))
    beamish.send(pid, "sleep")
    _, why = await assert_receive(("refused", beamish.ANY))
    assert "synchronous handler" in why  # its receive() would have taken the HIBERNATE
    beamish.exit(pid, "kill")
