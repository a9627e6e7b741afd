"""Channels through the in-process test helpers (OTP-SEMANTICS section 13)."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import pytest

import beamish
from beamish import Down, GenServer, NoReply, Ok, Reply, Stop, send, spawn
from beamish.pubsub import PubSub
from beamish.testing import (
    JoinError,
    assert_broadcast,
    assert_push,
    assert_receive,
    assert_reply,
    channel_socket,
    close,
    connect,
    join,
    leave,
    push,
    refute_broadcast,
    refute_push,
    refute_receive,
    refute_reply,
    start_supervised,
    subscribe_and_join,
)
from beamish.web import Broadcast, Channel, ChannelError, Socket, SocketState, broadcast


def report(message):
    """Send ``message`` to the process registered as "test", if it is still there."""
    test = beamish.whereis("test")
    if test is not None:
        send(test, message)


class Room(Channel):
    intercept = ("new_msg", "stop")

    def join(self, topic, payload, socket):
        match payload:
            case {"refuse": reason}:
                return ("error", {"reason": reason})
            case {"crash": True}:
                raise RuntimeError("cannot join")
            case {"bad_return": True}:
                return "whatever"
            case {"welcome": text}:
                return ("ok", {"welcome": text}, socket.assign(joined_as=text))
        return Ok(socket)

    def handle_in(self, event, payload, socket):
        match event:
            case "reply_map":
                return Reply(("ok", {"resp": payload["x"]}), socket)
            case "reply_ok":
                return ("reply", "ok", socket)
            case "reply_error":
                return Reply(("error", {"why": "no"}), socket)
            case "noreply":
                return NoReply(socket)
            case "async_reply":
                ref = self.socket_ref(socket)
                spawn(lambda: Channel.reply(ref, ("ok", {"async_resp": payload["x"]})))
                return NoReply(socket)
            case "async_ok":
                ref = self.socket_ref(socket)
                spawn(lambda: Channel.reply(ref, "ok"))
                return NoReply(socket)
            case "stop":
                return Stop(payload["reason"], socket)
            case "stop_shutdown_x":
                return Stop(("shutdown", "x"), socket)
            case "stop_with_reply":
                return ("stop", "shutdown", ("ok", {"resp": "bye"}), socket)
            case "boom":
                raise RuntimeError("boom")
            case "bad_reply":
                return Reply(42, socket)
            case "broadcast":
                self.broadcast(socket, payload["event"], payload["payload"])
                return NoReply(socket)
        return NoReply(socket)

    def handle_out(self, event, payload, socket):
        if event == "stop":
            return Stop("shutdown", socket)
        self.push(socket, event, {**payload, "transport": socket.transport})
        return NoReply(socket)

    def handle_info(self, message, socket):
        match message:
            case "push":
                self.push(socket, "info_push", {"n": 1})
                return NoReply(socket)
            case "broadcast":
                self.broadcast(socket, "info_broadcast", {"n": 2})
                return NoReply(socket)
            case ("stop", reason):
                return Stop(reason, socket)
        return super().handle_info(message, socket)

    def handle_call(self, request, from_, socket):
        if request == "ping":
            return Reply("pong", socket)
        return Reply(("assigns", socket.assigns), socket)

    def handle_cast(self, request, socket):
        match request:
            case ("ping", ref, pid):
                send(pid, (ref, "pong"))
        return NoReply(socket)

    def terminate(self, reason, socket):
        report(("terminate", socket.topic, reason))


class UserSocket(Socket):
    channels: ClassVar = {"room:*": Room}

    def connect(self, params, socket, connect_info):
        if params.get("reject"):
            return "error"
        return Ok(socket.assign(user_id=params.get("user_id")))

    def id(self, socket):
        user = socket.assigns["user_id"]
        return f"user_sockets:{user}" if user else None


async def joined(topic="room:lobby", payload=None):
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))
    socket = channel_socket(UserSocket, pubsub="ps")
    return await subscribe_and_join(socket, topic, payload)


async def test_channel_connect_runs_the_socket_callbacks():
    await start_supervised((PubSub, {"name": "ps"}))
    socket = await connect(UserSocket, {"user_id": "7"}, pubsub="ps")
    assert socket.assigns == {"user_id": "7"} and socket.id == "user_sockets:7"
    assert await connect(UserSocket, {"reject": "1"}, pubsub="ps") is None


async def test_channel_join_replies_and_assigns():
    reply, socket = await joined(payload={"welcome": "hi"})
    assert reply == {"welcome": "hi"}
    assert socket.joined and socket.topic == "room:lobby"
    assert await GenServer.call(socket.channel_pid, "assigns") == ("assigns", {"joined_as": "hi"})
    state = await GenServer.get_state(socket.channel_pid)
    assert isinstance(state, SocketState)
    assert (state.topic, state.channel_pid, state.pubsub, state.joined) == (
        "room:lobby", socket.channel_pid, "ps", True
    )


async def test_channel_join_refused_157():
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))
    socket = channel_socket(UserSocket, pubsub="ps")
    with pytest.raises(JoinError) as refused:
        await join(socket, "room:lobby", {"refuse": "mybad"})
    assert refused.value.reply == {"reason": "mybad"}
    assert PubSub.subscribers("ps", "room:lobby") == []  # no channel remains


async def test_channel_join_crash_158(caplog):
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))
    socket = channel_socket(UserSocket, pubsub="ps")
    for payload in ({"crash": True}, {"bad_return": True}):
        with pytest.raises(JoinError) as crashed:
            await join(socket, "room:lobby", payload)
        assert crashed.value.reply == {"reason": "join crashed"}
    assert "Room crashed joining 'room:lobby'" in caplog.text
    assert "Room.join('room:lobby', ...) returned 'whatever'" in caplog.text


async def test_channel_handle_in_replies_160():
    _, socket = await joined()
    ref = push(socket, "reply_map", {"x": 1})
    assert await assert_reply(ref, "ok", {"resp": 1}) == {"resp": 1}
    ref = push(socket, "reply_ok")
    assert await assert_reply(ref, "ok") == {}
    ref = push(socket, "reply_error")
    await assert_reply(ref, "error", {"why": "no"})
    ref = push(socket, "noreply")
    await refute_reply(ref, timeout=0.05)
    await refute_reply(ref, "error", timeout=0)


async def test_channel_intercepted_outgoing_events_163():
    _, socket = await joined()
    broadcast("ps", "room:lobby", "new_msg", {"body": "hi"})
    assert await assert_push("new_msg") == {"body": "hi", "transport": "websocket"}
    await assert_broadcast("new_msg", {"body": "hi"})

    broadcast("ps", "room:lobby", "default", {"body": "as is"})
    assert await assert_push("default") == {"body": "as is"}  # no handle_out ran

    ref = beamish.monitor(socket.channel_pid)
    broadcast("ps", "room:lobby", "stop", {})
    assert await assert_receive(Down) == Down(ref, socket.channel_pid, "shutdown")
    await assert_receive(("terminate", "room:lobby", "shutdown"))


async def test_channel_async_replies_164():
    _, socket = await joined()
    ref = push(socket, "async_reply", {"x": 5})
    await assert_reply(ref, "ok", {"async_resp": 5})
    ref = push(socket, "async_ok")
    assert await assert_reply(ref, "ok") == {}

    with pytest.raises(ChannelError, match="handle_in"):
        Channel.socket_ref(socket)  # no client message being handled
    with pytest.raises(ChannelError, match="joined socket"):
        Channel.socket_ref(channel_socket(UserSocket, pubsub="ps"))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (("stop", "normal"), "normal"),
        (("stop", "shutdown"), "shutdown"),
        (("stop_shutdown_x", None), ("shutdown", "x")),
        (("info", "shutdown"), "shutdown"),
    ],
)
async def test_channel_graceful_stop_166(how, reason):
    _, socket = await joined()
    ref = beamish.monitor(socket.channel_pid)
    match how:
        case ("info", r):
            send(socket.channel_pid, ("stop", r))
        case (event, r):
            push(socket, event, {"reason": r})
    await assert_receive(("terminate", "room:lobby", reason))
    assert await assert_receive(Down) == Down(ref, socket.channel_pid, reason)


async def test_channel_stop_with_reply_166():
    _, socket = await joined()
    ref = push(socket, "stop_with_reply")
    await assert_reply(ref, "ok", {"resp": "bye"})
    await assert_receive(("terminate", "room:lobby", "shutdown"))


async def test_channel_crash_166(caplog):
    beamish.trap_exit(True)  # the channel is linked to the test, which would go with it
    _, socket = await joined()
    ref = beamish.monitor(socket.channel_pid)
    push(socket, "boom")
    down = await assert_receive(Down)
    assert isinstance(down.reason, beamish.Crash) and str(down.reason.exception) == "boom"
    await assert_receive(beamish.Exit(socket.channel_pid, down.reason))  # Phoenix's {:EXIT, ...}
    await assert_receive(("terminate", "room:lobby", down.reason))  # terminate still ran
    assert down.ref == ref
    assert "boom" in caplog.text


async def test_channel_bad_reply_crashes_with_a_message(caplog):
    beamish.trap_exit(True)
    _, socket = await joined()
    beamish.monitor(socket.channel_pid)
    push(socket, "bad_reply")
    down = await assert_receive(Down)
    assert isinstance(down.reason.exception, ChannelError)
    assert "a channel reply is 'ok', 'error'" in str(down.reason.exception)


async def test_channel_leave_and_close():
    _, socket = await joined()
    ref = leave(socket)
    await assert_reply(ref, "ok")
    await assert_receive(("terminate", "room:lobby", ("shutdown", "left")))

    _, socket = await join(socket, "room:other")
    await close(socket)
    assert not beamish.is_alive(socket.channel_pid)  # close waits for the channel to go
    await assert_receive(("terminate", "room:other", ("shutdown", "closed")))
    await close(socket)  # closing again is harmless
    await refute_receive(beamish.Exit, timeout=0)  # clean ends are not the test's failure


class Stubborn(Channel):
    """A channel whose terminate never returns (Phoenix's "foo:timeout")."""

    def join(self, topic, payload, socket):
        return Ok(socket)

    async def terminate(self, reason, socket):
        report(("terminating", reason))
        await asyncio.Event().wait()


async def test_channel_close_kills_a_channel_whose_terminate_blocks():
    beamish.register("test")
    await start_supervised((PubSub, {"name": "ps"}))
    _, socket = await join(channel_socket(pubsub="ps"), "stubborn", channel=Stubborn)
    ref = beamish.monitor(socket.channel_pid)
    await close(socket, timeout=0.05)
    assert await assert_receive(Down) == Down(ref, socket.channel_pid, "killed")
    await assert_receive(("terminating", ("shutdown", "closed")))  # it was asked first
    await close(socket, 0)  # closing again is harmless


async def test_channel_crash_reaches_the_test_process_as_in_phoenix():
    # The channel is linked to the test process: a channel that crashes ends the test,
    # with the channel's error, instead of leaving it to wait for a reply that never comes.
    await start_supervised((PubSub, {"name": "ps"}))

    async def a_test():
        _, socket = await join(channel_socket(UserSocket, pubsub="ps"), "room:lobby")
        push(socket, "bad_reply")
        await assert_reply("never", "ok", timeout=5)

    test = beamish.spawn(a_test)
    ref = beamish.monitor(test)
    down = await assert_receive(Down, timeout=10)  # longer than the inner test waits
    assert down.ref == ref and isinstance(down.reason, beamish.Crash), down
    error = down.reason.exception
    assert isinstance(error, ChannelError) and "a channel reply is 'ok'" in str(error)


async def test_channel_assert_broadcast_failure_says_what_was_expected_and_what_came():
    _, socket = await joined()
    push(socket, "broadcast", {"event": "shout", "payload": {"text": "hi"}})
    push(socket, "broadcast", {"event": "new_msg", "payload": {"body": "other"}})
    await assert_push("shout")
    with pytest.raises(AssertionError) as failure:
        await assert_broadcast("new_msg", {"body": "hi"}, timeout=0.01)
    text = str(failure.value)
    assert "<function" not in text, text
    assert "assert_broadcast('new_msg', {'body': 'hi'}) failed" in text
    assert "no broadcast of 'new_msg' with a payload matching {'body': 'hi'}" in text
    assert "Broadcasts received (2):" in text
    assert "'room:lobby' 'shout' {'text': 'hi'}" in text
    assert "'room:lobby' 'new_msg' {'body': 'other'}" in text
    with pytest.raises(AssertionError) as failure:
        await refute_broadcast("shout", timeout=0)
    assert "<function" not in str(failure.value) and "'shout'" in str(failure.value)


async def test_channel_assert_push_and_reply_failures_list_what_the_client_got():
    _, socket = await joined()
    ref = push(socket, "reply_error")
    await assert_reply(ref, "error")
    ref = push(socket, "reply_map", {"x": 1})
    with pytest.raises(AssertionError) as failure:
        await assert_reply(ref, "ok", {"resp": 2}, timeout=0.01)
    text = str(failure.value)
    assert "<function" not in text and f"no reply to {ref!r} with status 'ok'" in text, text
    assert f"Replies received (1):\n  {ref!r} 'ok' {{'resp': 1}}" in text, text
    send(socket.channel_pid, "push")
    with pytest.raises(AssertionError) as failure:
        await assert_push("info_pushed", timeout=0.01)
    text = str(failure.value)
    assert "no push of 'info_pushed'" in text and "'info_push' {'n': 1}" in text, text


async def test_channels_are_ordinary_server_processes_175(caplog):
    _, socket = await joined()
    pid = socket.channel_pid
    assert await GenServer.call(pid, "ping") == "pong"
    ref = beamish.make_ref()
    GenServer.cast(pid, ("ping", ref, beamish.self()))
    await assert_receive((ref, "pong"))
    send(pid, "push")
    assert await assert_push("info_push") == {"n": 1}
    send(pid, "broadcast")
    await assert_broadcast("info_broadcast", {"n": 2})
    await assert_push("info_broadcast", {"n": 2})  # fastlane: the client got it too
    with caplog.at_level(logging.WARNING, logger="beamish.channel"):
        send(pid, "unexpected")
        ref = push(socket, "reply_ok")
        await assert_reply(ref, "ok")
    assert "received an unexpected message in handle_info: 'unexpected'" in caplog.text


async def test_channel_push_before_join_is_refused():
    socket = channel_socket(UserSocket, pubsub="ps")
    with pytest.raises(ChannelError, match="before join"):
        Channel.push(socket, "x", {})


async def test_channel_plain_broadcast_reaches_the_client():
    """Presence's path: a Broadcast through PubSub's default dispatcher."""
    _, socket = await joined()
    PubSub.broadcast("ps", "room:lobby", Broadcast("room:lobby", "presence_diff", {"joins": {}}))
    assert await assert_push("presence_diff") == {"joins": {}}
    PubSub.broadcast("ps", "room:lobby", Broadcast("room:lobby", "new_msg", {"body": "x"}))
    assert await assert_push("new_msg") == {"body": "x", "transport": "websocket"}


async def test_channel_assert_push_failure_shows_the_mailbox():
    _, socket = await joined()
    send(beamish.self(), "something else")
    with pytest.raises(AssertionError, match=r"(?s)assert_push\('nothing', ANY\) failed.*"
                                             r"something else"):
        await assert_push("nothing", timeout=0.01)
    await refute_push("nothing", timeout=0)
