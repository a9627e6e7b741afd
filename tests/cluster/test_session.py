"""Frames and sessions, as pure logic: sealing, the three-hello handshake, replays,
incarnations, heartbeats and the stall guard (``cluster/_session.py``)."""

from __future__ import annotations

import pytest

from beamish.cluster._session import (
    BYE,
    DATA,
    DELIVER,
    DOWN,
    HELLO,
    SEND_HELLO,
    UP,
    FrameError,
    Header,
    Sealer,
    Sessions,
)

SECRET = b"0123456789abcdef-secret"
TICK = 10.0


class Net:
    """Two or more Sessions that pass their frames to each other through a Sealer."""

    def __init__(self, *names: tuple[str, int]) -> None:
        self.sealer = Sealer(SECRET, "c")
        self.nodes = {name: Sessions(name, creation, TICK) for name, creation in names}
        self.now = 0.0
        self.events: list[tuple[str, tuple]] = []

    def frame(self, sender: str, receiver: str, kind: int) -> bytes:
        s = self.nodes[sender]
        peer = next(p for p in s.peers.values() if p.name == receiver)
        return self.sealer.seal(s.direct_header(peer, kind, self.now), b"payload")

    def deliver(self, receiver: str, frame: bytes) -> list[tuple]:
        header, _ = self.sealer.open(frame)
        events = self.nodes[receiver].accept(header, self.now)
        self.events += [(receiver, e) for e in events]
        return events

    def announce(self, sender: str, receiver: str) -> list[tuple]:
        s = self.nodes[sender]
        return self.deliver(receiver, self.sealer.seal(s.broadcast_header(HELLO), b""))

    def run(self, receiver: str, events: list[tuple]) -> None:
        """Answer SEND_HELLO events, as the node does, until the exchange is quiet."""
        queue = [(receiver, e) for e in events]
        while queue:
            who, event = queue.pop(0)
            if event[0] == SEND_HELLO:
                to = event[1].name
                frame = self.sealer.seal(
                    self.nodes[who].direct_header(event[1], HELLO, self.now), b""
                )
                queue += [(to, e) for e in self.deliver(to, frame)]


def kinds(events):
    return [e[0] for e in events]


def test_a_frame_is_sealed_and_checked():
    sealer = Sealer(SECRET, "c")
    header = Header(DATA, "a", 1, 2, 3, 4, 5)
    frame = sealer.seal(header, b"body")
    opened, payload = sealer.open(frame)
    assert (opened.name, opened.creation, opened.seq, payload) == ("a", 1, 5, b"body")
    tampered = bytearray(frame)
    tampered[-1] ^= 1
    for bad in (bytes(tampered), frame[:10], b"",
                Sealer(b"another secret of 16+", "c").seal(header, b"body"),
                Sealer(SECRET, "another-cluster").seal(header, b"body")):
        with pytest.raises(FrameError):
            sealer.open(bad)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Sealer(b"short", "c")


def test_the_three_hello_handshake_brings_both_up():
    net = Net(("a", 1), ("b", 2))
    events = net.announce("a", "b")  # b hears a: it says hello directly
    assert kinds(events) == [SEND_HELLO]
    net.run("b", events)
    ups = [(who, e[1].name) for who, e in net.events if e[0] == UP]
    assert sorted(ups) == [("a", "b"), ("b", "a")]
    assert set(net.nodes["a"].current) == {"b"} and set(net.nodes["b"].current) == {"a"}


def test_a_simultaneous_handshake_ends_up_once():
    net = Net(("a", 1), ("b", 2))
    ea, eb = net.announce("b", "a"), net.announce("a", "b")
    net.run("a", ea)
    net.run("b", eb)
    assert sorted(w for w, e in net.events if e[0] == UP) == ["a", "b"]


def up_pair() -> Net:
    net = Net(("a", 1), ("b", 2))
    net.run("b", net.announce("a", "b"))
    net.events.clear()
    return net


def test_data_is_delivered_once_and_a_replay_is_dropped():
    net = up_pair()
    frame = net.frame("a", "b", DATA)
    assert kinds(net.deliver("b", frame)) == [DELIVER]
    assert net.deliver("b", frame) == []  # the same frame again: a replay


def test_a_lost_frame_ends_the_session_and_nothing_after_it_is_delivered():
    net = up_pair()
    assert kinds(net.deliver("b", net.frame("a", "b", DATA))) == [DELIVER]
    net.frame("a", "b", DATA)  # lost on the way: the engine dropped it
    events = net.deliver("b", net.frame("a", "b", DATA))
    assert kinds(events) == [DOWN, SEND_HELLO] and events[0][2] == "noconnection"
    net.events.clear()
    net.run("b", events[1:])
    # a learns of it from b's new session, and the two meet again
    assert ("a", DOWN) in [(w, e[0]) for w, e in net.events]
    assert sorted(w for w, e in net.events if e[0] == UP) == ["a", "b"]
    assert kinds(net.deliver("b", net.frame("a", "b", DATA))) == [DELIVER]


def test_a_frame_for_an_earlier_incarnation_of_this_node_is_dropped():
    net = up_pair()
    frame = net.frame("a", "b", DATA)
    reborn = Sessions("b", 99, TICK)  # b restarted: a new creation
    header, _ = net.sealer.open(frame)
    assert reborn.accept(header, 0.0) == []


def test_silence_past_tick_time_is_down_and_not_before():
    net = up_pair()
    b = net.nodes["b"]
    for now in (2.5, 5.0, 7.5, 10.0):
        assert b.tick(now) == []
    events = b.tick(12.5)
    assert kinds(events) == [DOWN] and events[0][2] == "noconnection"
    assert b.current == {}


def test_a_late_tick_blames_nobody():
    net = up_pair()
    b = net.nodes["b"]
    assert b.tick(2.5) == []
    assert b.tick(100.0) == []  # this node was stopped: its peers' silence is its own
    assert "a" in b.current


def test_data_of_an_ended_session_asks_for_a_new_handshake():
    net = up_pair()
    b = net.nodes["b"]
    for now in (2.5, 5.0, 7.5, 10.0):
        b.tick(now)
    assert kinds(b.tick(12.5)) == [DOWN]  # b declared a down
    net.now = 12.5
    stale = net.frame("a", "b", DATA)  # a still thinks the session runs
    events = net.deliver("b", stale)
    assert kinds(events) == [SEND_HELLO]
    net.events.clear()
    net.run("b", events)
    # a sees b's new session, declares the old one down, and they meet again
    assert ("a", DOWN) in [(w, e[0]) for w, e in net.events]
    assert sorted(w for w, e in net.events if e[0] == UP) == ["a", "b"]


def test_goodbye_is_down_with_disconnect_and_that_incarnation_stays_out():
    net = up_pair()
    events = net.deliver("b", net.frame("a", "b", BYE))
    assert kinds(events) == [DOWN] and events[0][2] == "disconnect"
    assert net.announce("a", "b") == []  # a dead incarnation's hello is ignored


def test_a_new_incarnation_replaces_the_old_only_when_its_handshake_completes():
    net = up_pair()
    net.nodes["a2"] = Sessions("a", 7, TICK)  # a restarted: same name, new creation
    b = net.nodes["b"]
    hello = net.sealer.seal(net.nodes["a2"].broadcast_header(HELLO), b"")
    header, _ = net.sealer.open(hello)
    events = b.accept(header, 0.0)
    assert kinds(events) == [SEND_HELLO] and b.current["a"].creation == 1  # not yet
    # the handshake with the new one completes: the old one goes down as "restarted"
    reply = net.sealer.seal(b.direct_header(events[0][1], HELLO, 0.0), b"")
    h2, _ = net.sealer.open(reply)
    back = net.nodes["a2"].accept(h2, 0.0)
    frame = net.sealer.seal(net.nodes["a2"].direct_header(back[-1][1], HELLO, 0.0), b"")
    h3, _ = net.sealer.open(frame)
    events = b.accept(h3, 0.0)
    assert [(e[0], getattr(e[1], "creation", None)) for e in events][:2] == [
        (DOWN, 1), (UP, 7)
    ]
    assert events[0][2] == "restarted" and b.current["a"].creation == 7


def test_a_replayed_broadcast_hello_never_brings_a_node_up():
    net = Net(("a", 1), ("b", 2))
    hello = net.sealer.seal(net.nodes["a"].broadcast_header(HELLO), b"")
    b = net.nodes["b"]
    header, _ = net.sealer.open(hello)
    assert kinds(b.accept(header, 0.0)) == [SEND_HELLO]
    assert b.accept(header, 0.0) == []  # the same announcement again: dropped
    assert b.current == {}  # nobody answered the hello: nobody is up


def test_strangers_are_bounded():
    b = Sessions("b", 2, TICK, max_peers=3)
    sealer = Sealer(SECRET, "c")
    for i in range(10):
        stranger = Sessions(f"n{i}", i + 1, TICK)
        header, _ = sealer.open(sealer.seal(stranger.broadcast_header(HELLO), b""))
        b.accept(header, 0.0)
    assert len(b.peers) == 3


def test_a_peer_known_dead_is_down_at_once_and_that_incarnation_stays_out():
    """``died``: a sibling's process is gone (the ipc engine sees it): down now, not after
    tick_time, and nothing more is heard from that incarnation."""
    net = up_pair()
    b = net.nodes["b"]
    a = next(p for p in b.peers.values() if p.name == "a")
    events = b.died("a", a.creation)
    assert kinds(events) == [DOWN] and events[0][2] == "noconnection"
    assert b.current == {}
    assert b.died("a", a.creation) == []  # once
    assert net.announce("a", "b") == []  # its hello is ignored: that incarnation is dead
    assert b.died("nobody", 1) == []
