"""The channel test helpers as a user's test suite sees them: what a failing test prints."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

CHANNEL = """
from beamish import Ok, Reply
from beamish.pubsub import PubSub
from beamish.testing import (
    assert_broadcast, assert_reply, channel_socket, push, start_supervised, subscribe_and_join,
)
from beamish.web import Channel, Socket


class Room(Channel):
    def join(self, topic, payload, socket):
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        if event == "shout":
            self.broadcast(socket, "shout", payload)
            return Reply("ok", socket)
        # forgets to return for any other event


class UserSocket(Socket):
    channels = {"room:*": Room}


async def joined():
    await start_supervised((PubSub, {"name": "ps"}))
    _, socket = await subscribe_and_join(channel_socket(UserSocket, pubsub="ps"), "room:1")
    return socket
"""


def test_channel_case_a_channel_crash_fails_the_test_with_its_error(pytester):
    pytester.makepyfile(CHANNEL + """

async def test_forgets_to_return():
    socket = await joined()
    await assert_reply(push(socket, "hello", {}), "ok")
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*the test process exited with reason Crash(ChannelError(*handle_in must return*"
        "got None*",
    ])
    result.stdout.no_fnmatch_line("*mailbox is empty*")


def test_channel_case_assert_broadcast_failure_shows_the_broadcasts(pytester):
    pytester.makepyfile(CHANNEL + """

async def test_wrong_event():
    socket = await joined()
    await assert_reply(push(socket, "shout", {"text": "hi"}), "ok")
    await assert_broadcast("new_msg", {"text": "hi"})
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*assert_broadcast('new_msg', {'text': 'hi'}) failed: no broadcast of 'new_msg' with "
        "a payload matching {'text': 'hi'} within 0.1s*",
        "*Broadcasts received (1):*",
        "*'room:1' 'shout' {'text': 'hi'}*",
    ])
    result.stdout.no_fnmatch_line("*<function*")
