"""The Socket behaviour's pure parts: routes, options, the socket value."""

from __future__ import annotations

from typing import ClassVar

import pytest

from beamish.web import Channel, Socket, SocketOptions, SocketState
from beamish.web._socket import match_route


class Room(Channel):
    pass


class Lobby(Channel):
    pass


def test_match_route_exact_and_prefix_in_declaration_order():
    routes = {"room:lobby": Lobby, "room:*": Room, "*": Channel}
    assert match_route(routes, "room:lobby") is Lobby
    assert match_route(routes, "room:42") is Room
    assert match_route(routes, "room:") is Room
    assert match_route(routes, "other") is Channel
    assert match_route({"room:*": Room}, "rooms") is None


def test_socket_options_on_the_class_line():
    class Quick(Socket, timeout=0.5, max_channels=2):
        channels: ClassVar = {"room:*": Room}

    assert Quick.options == SocketOptions(timeout=0.5, max_channels=2)
    assert Socket.options.timeout == 60.0 and Socket.options.max_channels == 100
    with pytest.raises(TypeError, match="unknown socket option"):
        type("Bad", (Socket,), {}, max_chanels=3)
    with pytest.raises(ValueError, match="positive"):
        SocketOptions(timeout=0)


def test_socket_routes_are_checked():
    with pytest.raises(ValueError, match="not a topic pattern"):
        type("Bad", (Socket,), {"channels": {"room:*:x*": Room}})
    with pytest.raises(TypeError, match="Channel subclass"):
        type("Bad", (Socket,), {"channels": {"room:*": object}})


def test_socket_state_assign_returns_a_new_socket():
    socket = SocketState(pubsub="ps", assigns={"a": 1})
    assigned = socket.assign(b=2).assign({"c": 3})
    assert assigned.assigns == {"a": 1, "b": 2, "c": 3}
    assert socket.assigns == {"a": 1}
    assert (assigned.topic, assigned.joined, assigned.pubsub) == (None, False, "ps")
