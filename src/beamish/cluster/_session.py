"""Frames and sessions between nodes: pure logic, no I/O (the node feeds it frames and time).

Frames. Each frame is ``tag || body``: ``body`` is a msgpack array ``[version, kind,
src name, src creation, dst creation, src session, dst session, seq, payload]`` and ``tag``
a keyed BLAKE2b MAC (16 bytes) of ``body`` under a key derived from the cluster secret and
the cluster's name. A frame whose tag does not verify is dropped before it is parsed, so a
process without the secret can neither join nor inject.

Sessions. Two node incarnations talk in a session: each side picks a random session number
for the other, and every direct frame names both (``src session``, ``dst session``) and
carries a sequence number that only grows within the session. A frame of another session,
or a sequence number already seen (a replay), is dropped. The handshake is the BEAM's
connection set-up in three hellos::

    A -> B  hello(sA, ?)      B learns sA
    B -> A  hello(sB, sA)     A learns sB and sees B knows sA: B is up for A
    A -> B  hello(sA, sB)     B sees A knows sB: A is up for B

Discovery is by broadcast: every node announces itself every ``tick_time / 4`` seconds; a
node that hears an incarnation it has no session with starts the handshake. A node that
hears nothing from a peer for ``tick_time`` seconds declares it down (``noconnection``) and
forgets the session: whatever the peer sent in it and arrives later is dropped, and the two
meet again through a new handshake, as after a broken connection on the BEAM. A node that
was itself stopped (its own ticks came late) does not blame its peers for its silence.
A broadcast hello alone never makes a node up, so replaying one can at most start a
handshake that nobody completes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import msgpack

__all__ = [
    "BYE", "DATA", "HELLO", "FrameError", "Header", "Peer", "Sealer", "Sessions",
]

VERSION = 1
HELLO, DATA, BYE = 1, 2, 3
_TAG = 16


class FrameError(ValueError):
    """A frame that does not verify or does not parse."""


class Header:
    __slots__ = ("creation", "dst_creation", "dst_session", "kind", "name", "seq", "session")

    def __init__(self, kind: int, name: str, creation: int, dst_creation: int, session: int,
                 dst_session: int, seq: int) -> None:
        self.kind = kind
        self.name = name
        self.creation = creation
        self.dst_creation = dst_creation
        self.session = session
        self.dst_session = dst_session
        self.seq = seq


class Sealer:
    """Seals and opens frames under the cluster's secret."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes, cluster: str) -> None:
        if len(secret) < 16:
            raise ValueError("the cluster secret must be at least 16 bytes")
        self._key = hashlib.blake2b(
            secret, digest_size=32, person=b"beamish-cluster", salt=cluster.encode()[:16]
        ).digest()

    def _tag(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, key=self._key, digest_size=_TAG).digest()

    def seal(self, header: Header, payload: bytes) -> bytes:
        body: bytes = msgpack.packb([
            VERSION, header.kind, header.name, header.creation, header.dst_creation,
            header.session, header.dst_session, header.seq, payload,
        ], use_bin_type=True)
        return self._tag(body) + body

    def open(self, frame: bytes) -> tuple[Header, bytes]:
        if len(frame) <= _TAG:
            raise FrameError("a frame too short to carry its tag")
        tag, body = frame[:_TAG], frame[_TAG:]
        if not hmac.compare_digest(tag, self._tag(body)):
            raise FrameError("a frame whose tag does not verify (another cluster, or no secret)")
        try:
            fields = msgpack.unpackb(body, raw=False, use_list=True)
            version, kind, name, creation, dst_creation, session, dst_session, seq, payload = fields
        except Exception:
            raise FrameError("a frame that does not parse") from None
        if version != VERSION:
            raise FrameError(f"a frame of version {version!r}; this node speaks {VERSION}")
        if (kind not in (HELLO, DATA, BYE) or type(name) is not str or type(payload) is not bytes
                or not all(type(v) is int for v in (creation, dst_creation, session,
                                                      dst_session, seq))):
            raise FrameError("a frame with malformed fields")
        return Header(kind, name, creation, dst_creation, session, dst_session, seq), payload


def _new_session() -> int:
    return secrets.randbits(63) or 1


class Peer:
    """One incarnation of another node, as this node knows it."""

    __slots__ = (
        "bcast_seq", "creation", "hello_at", "last_seen", "mine", "name", "rx_seq", "theirs",
        "tx_seq", "up",
    )

    def __init__(self, name: str, creation: int, now: float) -> None:
        self.name = name
        self.creation = creation
        self.up = False
        self.mine = 0  # my session number for this peer (0: none yet)
        self.theirs = 0  # theirs for me, as learned
        self.tx_seq = 0
        self.rx_seq = 0
        self.bcast_seq = 0
        self.last_seen = now
        self.hello_at = float("-inf")

    def reset(self) -> None:
        self.up = False
        self.mine = self.theirs = self.tx_seq = self.rx_seq = 0
        self.hello_at = float("-inf")

    def __repr__(self) -> str:
        return f"Peer({self.name!r}, {self.creation}, {'up' if self.up else 'down'})"


# Events the node acts on
UP, DOWN, SEND_HELLO, DELIVER = "up", "down", "hello", "deliver"
Event = tuple[Any, ...]


class Sessions:
    """Every peer's session state; ``accept`` and ``tick`` return the events to act on."""

    def __init__(self, name: str, creation: int, tick_time: float, *, max_peers: int = 1024,
                 max_dead: int = 4096) -> None:
        self.name = name
        self.creation = creation
        self.tick_time = tick_time
        self.peers: dict[tuple[str, int], Peer] = {}
        self.current: dict[str, Peer] = {}  # the up incarnation of each node name
        # incarnations that said goodbye or were replaced: their frames are dropped
        self.dead: dict[tuple[str, int], None] = {}
        self.bcast_seq = 0
        self.max_peers = max_peers
        self.max_dead = max_dead
        self.last_tick: float | None = None

    # -- sending ------------------------------------------------------------------------

    def broadcast_header(self, kind: int) -> Header:
        self.bcast_seq += 1
        return Header(kind, self.name, self.creation, 0, 0, 0, self.bcast_seq)

    def direct_header(self, peer: Peer, kind: int, now: float) -> Header:
        if peer.mine == 0:
            peer.mine = _new_session()
            peer.tx_seq = 0
        peer.tx_seq += 1
        if kind == HELLO:
            peer.hello_at = now
        return Header(kind, self.name, self.creation, peer.creation, peer.mine, peer.theirs,
                      peer.tx_seq)

    # -- receiving ----------------------------------------------------------------------

    def accept(self, h: Header, now: float) -> list[Event]:
        if h.name == self.name and h.creation == self.creation:
            return []  # our own broadcast
        key = (h.name, h.creation)
        if key in self.dead:
            return []
        if h.dst_creation == 0:
            return self._broadcast(key, h, now)
        if h.dst_creation != self.creation:
            return []  # for an earlier incarnation of this node
        peer = self.peers.get(key)
        if peer is None:
            if h.kind != HELLO:
                return []
            peer = self._add(key, now)
            if peer is None:
                return []
        events: list[Event] = []
        if h.kind == BYE:
            if peer.up and h.session == peer.theirs and h.dst_session == peer.mine:
                self._forget(peer, events, "disconnect", dead=True)
            return events
        if h.session != peer.theirs:
            if h.kind != HELLO:  # a data frame of a session that is over: tell them ours
                if self._may_hello(peer, now):
                    events.append((SEND_HELLO, peer))
                return events
            if peer.up:  # they started over: they saw us down; so do we, then meet again
                self._down(peer, events, "noconnection")
            peer.theirs = h.session
            peer.rx_seq = 0
        if h.seq <= peer.rx_seq:
            return events  # a replay, or out of date
        if peer.up and h.seq != peer.rx_seq + 1:
            # a frame of this session was lost on the way (the engine dropped it, or our
            # link to it broke): as on the BEAM after a broken connection, the session ends
            # (monitors and links fire noconnection) and the two meet again; nothing after
            # the gap is delivered, so no message is lost silently between two that arrive
            self._down(peer, events, "noconnection")
            events.append((SEND_HELLO, peer))
            return events
        peer.rx_seq = h.seq
        peer.last_seen = now
        if not peer.up and peer.mine != 0 and h.dst_session == peer.mine:
            self._up(peer, events)
            if h.kind == HELLO:
                events.append((SEND_HELLO, peer))  # so they see that we know theirs
        elif not peer.up and h.kind == HELLO:
            events.append((SEND_HELLO, peer))
        if h.kind == DATA and peer.up and h.dst_session == peer.mine:
            events.append((DELIVER, peer))
        return events

    def _broadcast(self, key: tuple[str, int], h: Header, now: float) -> list[Event]:
        peer = self.peers.get(key)
        if peer is None:
            if h.kind != HELLO:
                return []
            peer = self._add(key, now)
            if peer is None:
                return []
        if h.seq <= peer.bcast_seq:
            return []
        peer.bcast_seq = h.seq
        events: list[Event] = []
        if h.kind == BYE:
            if peer.up:
                self._forget(peer, events, "disconnect", dead=True)
            else:
                self._discard(peer)
                self._mark_dead(key)
            return events
        if peer.up:
            peer.last_seen = now
        elif self._may_hello(peer, now):
            peer.last_seen = now
            events.append((SEND_HELLO, peer))
        return events

    def _may_hello(self, peer: Peer, now: float) -> bool:
        return now - peer.hello_at >= self.tick_time / 8

    def _add(self, key: tuple[str, int], now: float) -> Peer | None:
        if len(self.peers) >= self.max_peers:
            return None
        peer = self.peers[key] = Peer(key[0], key[1], now)
        return peer

    def _up(self, peer: Peer, events: list[Event]) -> None:
        old = self.current.get(peer.name)
        if old is not None and old is not peer:  # a new incarnation: the old one is gone
            self._forget(old, events, "restarted", dead=True)
        peer.up = True
        self.current[peer.name] = peer
        events.append((UP, peer))

    def _down(self, peer: Peer, events: list[Event], reason: str) -> None:
        was_up = peer.up
        peer.reset()
        if self.current.get(peer.name) is peer:
            del self.current[peer.name]
        if was_up:
            events.append((DOWN, peer, reason))

    def _forget(self, peer: Peer, events: list[Event], reason: str, *, dead: bool) -> None:
        self._down(peer, events, reason)
        self._discard(peer)
        if dead:
            self._mark_dead((peer.name, peer.creation))

    def _discard(self, peer: Peer) -> None:
        self.peers.pop((peer.name, peer.creation), None)

    def _mark_dead(self, key: tuple[str, int]) -> None:
        self.dead[key] = None
        while len(self.dead) > self.max_dead:
            del self.dead[next(iter(self.dead))]

    # -- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        """Declare down the peers not heard from for ``tick_time``; forget stale strangers."""
        events: list[Event] = []
        last, self.last_tick = self.last_tick, now
        if last is not None and now - last > self.tick_time / 2:
            # we were stopped (SIGSTOP, a long pause): our silence is not theirs
            for peer in self.peers.values():
                peer.last_seen = now
            return events
        for peer in list(self.peers.values()):
            if now - peer.last_seen > self.tick_time:
                if peer.up:
                    self._down(peer, events, "noconnection")
                else:
                    self._discard(peer)
        return events

    def died(self, name: str, creation: int) -> list[Event]:
        """The node ``(name, creation)`` is known to be dead (its OS process is gone): down
        now, with ``noconnection``, as if its silence had lasted ``tick_time``."""
        events: list[Event] = []
        peer = self.peers.get((name, creation))
        if peer is not None:
            self._forget(peer, events, "noconnection", dead=True)
        return events

    def goodbye(self) -> list[Peer]:
        """This node is leaving: the peers that were up (each is now down)."""
        up = [p for p in self.peers.values() if p.up]
        for peer in up:
            peer.reset()
        self.current.clear()
        return up
