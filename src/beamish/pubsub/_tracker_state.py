"""The replicated state of a Tracker: a delta-state CRDT of presences (pure, no processes).

How it works. Each replica (a tracker shard on one node) owns the presences it tracks.
Every change a replica makes gets a fresh **dot** ``(replica, n)``: ``n`` counts that
replica's changes, 1, 2, 3, ... A presence is an **entry** ``(topic, key, pid, meta, tag)``
whose ``tag`` is the dot of the change that added it. A state is two things:

- its **values**: the entries it holds, by tag;
- its **context**: every dot it has *seen* (a ``Dots``: per replica, a few intervals of
  ``n``; when nothing was lost it is one interval ``1..clock``, a vector clock).

A dot that is in the context but not in the values was seen and then removed: that is how a
removal travels (observed-remove, without tombstones that grow with each entry). Joining two
states keeps an entry if both hold it, or if one holds it and the other has never seen its
dot; the contexts are united. That join is commutative, associative and idempotent, so
replicas that exchange states in any order, any number of times, converge.

A **delta** is a state of the same shape, small: the entries a replica added since it last
shipped one, and as context the dots of that window plus the older dots it removed meanwhile.
Joining a delta is as safe as joining the full state, in any order; deltas only make it
cheap. Each delta says which window of its replica's changes it holds (``window``: replica,
from, to); every change ticks the clock, removals included. A receiver counts, per replica,
up to which change it has received every window (``received``): a delta whose window starts
beyond that count does not *follow*, so something was lost, and the receiver asks for the
replica's whole state, an ``extract`` (the tracker does that on heartbeats). Seen dots alone
cannot tell: a later delta names old dots it removes, which fills the context without
carrying what the lost delta said.

A replica speaks only for itself: ``merge`` ignores dots of the receiving replica, and a
tracker ships only its own entries, so no third party can resurrect the entries of a replica
that was forgotten. When a replica goes quiet it is marked **down**: its entries are hidden
(the readers see them leave) but kept, so that if it comes back they simply reappear. A
replica down for too long is **removed** (permanently down): its entries and its context go.

Every operation that changes what readers see returns ``Diffs``: per topic, the entries that
joined and the entries that left, in order.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

__all__ = ["Delta", "Diffs", "Dots", "Entry", "Tag", "TrackerState", "join", "merge_diffs"]

Tag = tuple[str, int]
"""A dot ``(replica, n)``: the ``n``-th change made by ``replica``."""

Ranges = tuple[tuple[int, int], ...]
"""Sorted, disjoint, non-adjacent inclusive intervals of dot counters."""


class Entry(NamedTuple):
    """One presence: ``pid`` is in ``topic`` under ``key`` with ``meta``; added at ``tag``."""

    topic: str
    key: Any
    pid: Any
    meta: Any
    tag: Tag


Diffs = dict[str, tuple[list[Entry], list[Entry]]]
"""Per topic, ``(joins, leaves)``: what readers of the state saw arrive and go."""


# -- sets of dots --------------------------------------------------------------------------------


def _union(a: Ranges, b: Ranges) -> Ranges:
    if not a:
        return b
    if not b:
        return a
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _covers(ranges: Ranges, n: int) -> bool:
    if len(ranges) == 1:
        return ranges[0][0] <= n <= ranges[0][1]
    i = bisect_right(ranges, n, key=_low) - 1
    return i >= 0 and n <= ranges[i][1]


def _low(interval: tuple[int, int]) -> int:
    return interval[0]


def _size(ranges: Ranges) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def _ranges_of(counters: Iterable[int]) -> Ranges:
    out: list[tuple[int, int]] = []
    for n in sorted(counters):
        if out and n <= out[-1][1] + 1:
            if n > out[-1][1]:
                out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return tuple(out)


class Dots:
    """An immutable set of dots, kept per replica as intervals of counters.

    ``Dots({"a": ((1, 5),)})`` is the dots ``("a", 1)`` to ``("a", 5)``. ``clock()`` gives
    the vector clock: per replica, the last counter of the run that starts at 1.
    """

    __slots__ = ("ranges",)
    __match_args__ = ("ranges",)

    ranges: Mapping[str, Ranges]

    def __init__(self, ranges: Mapping[str, Ranges] | None = None) -> None:
        self.ranges = {r: v for r, v in (ranges or {}).items() if v}

    @classmethod
    def of(cls, tags: Iterable[Tag]) -> Dots:
        """The set of the given dots."""
        per: dict[str, list[int]] = {}
        for replica, n in tags:
            per.setdefault(replica, []).append(n)
        return cls({replica: _ranges_of(ns) for replica, ns in per.items()})

    def __contains__(self, tag: object) -> bool:
        if type(tag) is not tuple or len(tag) != 2:
            return False
        ranges = self.ranges.get(tag[0])
        return ranges is not None and _covers(ranges, tag[1])

    def __iter__(self) -> Iterator[Tag]:
        for replica, ranges in self.ranges.items():
            for lo, hi in ranges:
                for n in range(lo, hi + 1):
                    yield (replica, n)

    def __len__(self) -> int:
        return sum(_size(r) for r in self.ranges.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dots) and dict(self.ranges) == dict(other.ranges)

    def __hash__(self) -> int:
        return hash(frozenset(self.ranges.items()))

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{replica}: " + " ".join(f"{lo}" if lo == hi else f"{lo}..{hi}" for lo, hi in r)
            for replica, r in sorted(self.ranges.items())
        )
        return f"Dots({{{parts}}})"

    def union(self, other: Dots) -> Dots:
        merged = dict(self.ranges)
        for replica, ranges in other.ranges.items():
            merged[replica] = _union(merged.get(replica, ()), ranges)
        return Dots(merged)

    def clock(self) -> dict[str, int]:
        """The vector clock: per replica, the ``n`` such that dots ``1..n`` are all in."""
        return {
            replica: ranges[0][1] for replica, ranges in self.ranges.items() if ranges[0][0] == 1
        }

    def without(self, replica: str) -> Dots:
        return Dots({r: v for r, v in self.ranges.items() if r != replica})


# -- deltas and the join -------------------------------------------------------------------------


class Delta:
    """A state fragment: ``entries`` held, and the ``context`` of dots seen.

    What replicas send each other: a heartbeat's delta (one replica's recent changes) or an
    extract (one replica's whole state). Well formed when every entry's tag is in the
    context. ``window``, when known, is ``(replica, start, end)``: the fragment holds all that
    ``replica``'s changes ``start + 1`` to ``end`` did (an extract starts at 0). Entries are
    kept sorted by tag, so equal fragments compare equal (the window is not compared).
    """

    __slots__ = ("context", "entries", "window")
    __match_args__ = ("entries", "context", "window")

    entries: tuple[Entry, ...]
    context: Dots
    window: tuple[str, int, int] | None

    def __init__(
        self, entries: Iterable[Entry], context: Dots,
        window: tuple[str, int, int] | None = None,
    ) -> None:
        self.entries = tuple(sorted(entries, key=_tag_of))
        self.context = context
        self.window = window

    def values(self) -> dict[Tag, Entry]:
        return {e.tag: e for e in self.entries}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Delta)
            and self.entries == other.entries
            and self.context == other.context
        )

    def __hash__(self) -> int:
        return hash((len(self.entries), self.context))

    def __repr__(self) -> str:
        window = "" if self.window is None else f", window={self.window!r}"
        return f"Delta({len(self.entries)} entries, {self.context!r}{window})"


def _tag_of(entry: Entry) -> Tag:
    return entry.tag


def join(a: Delta, b: Delta) -> Delta:
    """The least upper bound of two fragments: what a replica knowing both would hold.

    An entry stays if both hold it, or if one holds it and the other never saw its dot;
    the contexts are united. Commutative, associative and idempotent.
    """
    va, vb = a.values(), b.values()
    kept = [e for tag, e in va.items() if tag in vb or tag not in b.context]
    kept += [e for tag, e in vb.items() if tag not in va and tag not in a.context]
    return Delta(kept, a.context.union(b.context))


# -- the state of one replica --------------------------------------------------------------------


class _DiffBuilder:
    __slots__ = ("diffs",)

    def __init__(self) -> None:
        self.diffs: Diffs = {}

    def join(self, entry: Entry) -> None:
        self._of(entry.topic)[0].append(entry)

    def leave(self, entry: Entry) -> None:
        self._of(entry.topic)[1].append(entry)

    def _of(self, topic: str) -> tuple[list[Entry], list[Entry]]:
        pair = self.diffs.get(topic)
        if pair is None:
            pair = self.diffs[topic] = ([], [])
        return pair


def merge_diffs(first: Diffs, second: Diffs) -> Diffs:
    """``first`` then ``second``, per topic (in place on ``first``, which is returned)."""
    for topic, (joins, leaves) in second.items():
        pair = first.get(topic)
        if pair is None:
            first[topic] = (list(joins), list(leaves))
        else:
            pair[0].extend(joins)
            pair[1].extend(leaves)
    return first


class TrackerState:
    """The state of one replica: its own presences and what it learned from the others.

    Own changes (``join``, ``leave``, ``leave_pid``, ``update``) tick the replica's clock
    and are collected for the next delta (``take_delta``). Other replicas' changes come in
    through ``merge`` (a delta or an extract). ``replica_down``/``replica_up`` hide and show
    a replica's entries; ``remove_replica`` forgets it. Each returns the ``Diffs`` readers see.

    Readers use ``get_by_topic`` and ``get_by_key`` (entries of replicas that are up) and
    ``get_local`` (this replica's own entry of a pid). Replication uses ``follows`` (does a
    delta continue what was received of its replica?), ``missing`` (is a replica's clock
    ahead of what was received?) and ``extract`` (this replica's whole state, to send).
    """

    __slots__ = (
        "_context",
        "_delta_added",
        "_delta_removed",
        "_delta_start",
        "_down",
        "_local",
        "_received",
        "_topics",
        "_values",
        "clock",
        "replica",
    )

    def __init__(self, replica: str) -> None:
        if type(replica) is not str or not replica:
            raise TypeError(f"a replica is named by a non-empty str, got {replica!r}")
        self.replica = replica
        self.clock = 0
        # every live entry, per replica, by counter (down replicas' entries included)
        self._values: dict[str, dict[int, Entry]] = {}
        # the dots seen from other replicas (ours are always 1..clock)
        self._context: dict[str, Ranges] = {}
        # what readers see: topic -> key -> tag -> entry, for replicas that are up
        self._topics: dict[str, dict[Any, dict[Tag, Entry]]] = {}
        # our own entries by pid, then (topic, key)
        self._local: dict[Any, dict[tuple[str, Any], Entry]] = {}
        self._down: set[str] = set()
        # per replica, the change up to which every window of it was merged
        self._received: dict[str, int] = {}
        # the delta being collected: from clock _delta_start (excluded) to clock
        self._delta_start = 0
        self._delta_added: dict[int, Entry] = {}
        self._delta_removed: set[int] = set()

    def __repr__(self) -> str:
        entries = sum(len(v) for v in self._values.values())
        return (
            f"<TrackerState {self.replica!r} clock={self.clock} entries={entries} "
            f"context={self.context!r} down={sorted(self._down)}>"
        )

    # -- reads ----------------------------------------------------------------------------------

    def get_by_topic(self, topic: str) -> list[Entry]:
        """The visible entries of ``topic``, grouped by key, keys in order of arrival."""
        keys = self._topics.get(topic)
        if not keys:
            return []
        return [entry for tags in keys.values() for entry in tags.values()]

    def get_by_key(self, topic: str, key: Any) -> list[Entry]:
        """The visible entries of ``topic`` under ``key``, in order of arrival."""
        keys = self._topics.get(topic)
        if not keys:
            return []
        tags = keys.get(key)
        return list(tags.values()) if tags else []

    def get_local(self, pid: Any, topic: str, key: Any) -> Entry | None:
        """This replica's entry for ``pid`` in ``topic`` under ``key``, if any."""
        own = self._local.get(pid)
        return None if own is None else own.get((topic, key))

    def get_by_pid(self, pid: Any) -> list[Entry]:
        """This replica's entries for ``pid``."""
        own = self._local.get(pid)
        return list(own.values()) if own else []

    def topics(self) -> list[str]:
        """The topics with visible entries."""
        return list(self._topics)

    @property
    def context(self) -> Dots:
        """Every dot this replica has seen, its own ``1..clock`` included."""
        ranges = dict(self._context)
        if self.clock:
            ranges[self.replica] = ((1, self.clock),)
        return Dots(ranges)

    def replicas(self) -> dict[str, str]:
        """Each replica this state knows of, ``"up"`` or ``"down"`` (itself excluded)."""
        known = (set(self._context) | set(self._values) | self._down) - {self.replica}
        return {r: "down" if r in self._down else "up" for r in sorted(known)}

    def received(self, replica: str) -> int:
        """The change of ``replica`` up to which every window was merged here."""
        return self.clock if replica == self.replica else self._received.get(replica, 0)

    def missing(self, replica: str, clock: int) -> bool:
        """True if some change of ``replica`` up to ``clock`` never reached this state."""
        return replica != self.replica and self._received.get(replica, 0) < clock

    def follows(self, delta: Delta) -> bool:
        """True if ``delta`` continues what this state received of its replica (no window
        lost in between), or says nothing of its window."""
        window = delta.window
        return window is None or window[1] <= self.received(window[0])

    def snapshot(self) -> Delta:
        """The whole state as a fragment: every entry held (down replicas' too), every dot."""
        return Delta(
            [e for entries in self._values.values() for e in entries.values()], self.context
        )

    # -- own changes -----------------------------------------------------------------------------

    def join(self, pid: Any, topic: str, key: Any, meta: Any) -> Diffs:
        """Add our presence of ``pid`` in ``topic`` under ``key``.

        Raises ``ValueError`` if this replica already tracks that pid, topic and key.
        """
        own = self._local.get(pid)
        if own is not None and (topic, key) in own:
            raise ValueError(f"{pid!r} is already tracked in {topic!r} under {key!r}")
        self.clock += 1
        entry = Entry(topic, key, pid, meta, (self.replica, self.clock))
        self._add(entry)
        self._delta_added[self.clock] = entry
        return {topic: ([entry], [])}

    def leave(self, pid: Any, topic: str, key: Any) -> Diffs:
        """Remove our presence of ``pid`` in ``topic`` under ``key`` (none: no change)."""
        entry = self.get_local(pid, topic, key)
        if entry is None:
            return {}
        self.clock += 1
        self._remove_own(entry)
        return {topic: ([], [entry])}

    def leave_pid(self, pid: Any) -> Diffs:
        """Remove every presence of ``pid`` (a pid that exited leaves everything)."""
        own = self._local.get(pid)
        if not own:
            return {}
        self.clock += 1
        diffs = _DiffBuilder()
        for entry in list(own.values()):
            self._remove_own(entry)
            diffs.leave(entry)
        return diffs.diffs

    def update(self, pid: Any, topic: str, key: Any, meta: Any) -> Diffs:
        """Replace the meta of our presence: the old entry leaves, a new one joins.

        Raises ``KeyError`` if this replica does not track that pid, topic and key.
        """
        old = self.get_local(pid, topic, key)
        if old is None:
            raise KeyError((pid, topic, key))
        self.clock += 1
        self._remove_own(old)
        entry = Entry(topic, key, pid, meta, (self.replica, self.clock))
        self._add(entry)
        self._delta_added[self.clock] = entry
        return {topic: ([entry], [old])}

    def _remove_own(self, entry: Entry) -> None:
        n = entry.tag[1]
        self._remove(entry)
        if self._delta_added.pop(n, None) is None:
            self._delta_removed.add(n)  # older than this delta: say so explicitly

    # -- replication -------------------------------------------------------------------------

    def take_delta(self) -> Delta | None:
        """Our changes since the last ``take_delta``, or None if there were none."""
        if self.clock == self._delta_start:
            return None
        ranges = _union(((self._delta_start + 1, self.clock),), _ranges_of(self._delta_removed))
        delta = Delta(
            self._delta_added.values(), Dots({self.replica: ranges}),
            (self.replica, self._delta_start, self.clock),
        )
        self._delta_start = self.clock
        self._delta_added = {}
        self._delta_removed = set()
        return delta

    def extract(self) -> Delta:
        """Our whole own state: what a replica that missed deltas needs to catch up."""
        own = self._values.get(self.replica, {})
        ranges: Ranges = ((1, self.clock),) if self.clock else ()
        return Delta(own.values(), Dots({self.replica: ranges}), (self.replica, 0, self.clock))

    def merge(self, delta: Delta) -> Diffs:
        """Join a fragment from other replicas into this state; returns what readers saw.

        Dots of this replica in ``delta`` are ignored: a replica is the only authority over
        its own entries. Safe in any order; a delta that does not ``follow`` leaves a gap
        (``missing`` says so) until an extract of its replica is merged.
        """
        me = self.replica
        incoming = {e.tag: e for e in delta.entries if e.tag[0] != me}
        diffs = _DiffBuilder()
        for replica, ranges in delta.context.ranges.items():
            if replica == me:
                continue
            held = self._values.get(replica)
            if held:
                if _size(ranges) < len(held):
                    gone = [
                        n for lo, hi in ranges for n in range(lo, hi + 1)
                        if n in held and (replica, n) not in incoming
                    ]
                else:
                    gone = [
                        n for n in held if _covers(ranges, n) and (replica, n) not in incoming
                    ]
                for n in gone:
                    entry = held[n]
                    if self._remove(entry):
                        diffs.leave(entry)
        for tag, entry in incoming.items():
            seen = self._context.get(tag[0])
            if (seen is None or not _covers(seen, tag[1])) and self._add(entry):
                diffs.join(entry)
        for replica, ranges in delta.context.ranges.items():
            if replica != me:
                self._context[replica] = _union(self._context.get(replica, ()), ranges)
        window = delta.window
        if window is not None and window[0] != me:
            replica, start, end = window
            received = self._received.get(replica, 0)
            if start <= received < end:
                self._received[replica] = end
        return diffs.diffs

    def replica_down(self, replica: str) -> Diffs:
        """Hide ``replica``'s entries (it went quiet); they stay, ready to come back."""
        if replica == self.replica or replica in self._down:
            return {}
        diffs = _DiffBuilder()
        for entry in self._values.get(replica, {}).values():
            self._hide(entry)
            diffs.leave(entry)
        self._down.add(replica)
        return diffs.diffs

    def replica_up(self, replica: str) -> Diffs:
        """Show ``replica``'s entries again (it was down and spoke again)."""
        if replica not in self._down:
            return {}
        self._down.discard(replica)
        diffs = _DiffBuilder()
        for entry in self._values.get(replica, {}).values():
            self._show(entry)
            diffs.join(entry)
        return diffs.diffs

    def remove_replica(self, replica: str) -> Diffs:
        """Forget ``replica`` for good (permanently down): its entries and its dots go."""
        if replica == self.replica:
            return {}
        diffs = _DiffBuilder()
        for entry in list(self._values.get(replica, {}).values()):
            if self._remove(entry):
                diffs.leave(entry)
        self._values.pop(replica, None)
        self._context.pop(replica, None)
        self._received.pop(replica, None)
        self._down.discard(replica)
        return diffs.diffs

    # -- the indexes -------------------------------------------------------------------------

    def _add(self, entry: Entry) -> bool:
        """Hold ``entry``; True if readers see it (its replica is up)."""
        replica, n = entry.tag
        held = self._values.get(replica)
        if held is None:
            held = self._values[replica] = {}
        held[n] = entry
        if replica == self.replica:
            own = self._local.get(entry.pid)
            if own is None:
                own = self._local[entry.pid] = {}
            own[(entry.topic, entry.key)] = entry
        if replica in self._down:
            return False
        self._show(entry)
        return True

    def _remove(self, entry: Entry) -> bool:
        """Drop ``entry``; True if readers saw it."""
        replica, n = entry.tag
        held = self._values[replica]
        del held[n]
        if not held:
            del self._values[replica]
        if replica == self.replica:
            own = self._local[entry.pid]
            del own[(entry.topic, entry.key)]
            if not own:
                del self._local[entry.pid]
        if replica in self._down:
            return False
        self._hide(entry)
        return True

    def _show(self, entry: Entry) -> None:
        keys = self._topics.get(entry.topic)
        if keys is None:
            keys = self._topics[entry.topic] = {}
        tags = keys.get(entry.key)
        if tags is None:
            tags = keys[entry.key] = {}
        tags[entry.tag] = entry

    def _hide(self, entry: Entry) -> None:
        keys = self._topics[entry.topic]
        tags = keys[entry.key]
        del tags[entry.tag]
        if not tags:
            del keys[entry.key]
            if not keys:
                del self._topics[entry.topic]
