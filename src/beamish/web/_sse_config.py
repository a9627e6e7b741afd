"""An event stream's options: checked once, at configuration time, with their defaults (pure).

Deny by default: a stream serves only the topics its application allows, through an
``allow`` list, an ``authorize`` callback, or both (then a topic must pass both). A stream
given neither is refused here, when the application's tree is built, rather than serving
nothing (or everything) later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from beamish._runtime.isolation import mark_shared

__all__ = ["DEFAULTS", "OPTIONS", "AllowList", "StreamConfig", "parse_options", "show"]

DEFAULTS: dict[str, Any] = {
    "buffer_size": 1000,  # events kept for clients that come back
    "keepalive": 15.0,  # seconds between comments on an idle connection
    "linger": 30.0,  # seconds a topic no connection wants is still followed
    "max_topics": 16,  # topics one request may name
    "max_queue_events": 10_000,  # events one connection may have waiting to be written
    "max_queue_bytes": 1_048_576,  # bytes of them (as for a WebSocket's max_queue_bytes)
}
OPTIONS = ("name", "pubsub", "allow", "authorize", "topics", *DEFAULTS)


def show(text: str, limit: int = 60) -> str:
    """``repr`` of a client-chosen string, cut to ``limit`` characters for a log or an
    answer."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"...({len(text)} chars)"


@dataclass(frozen=True, slots=True)
class AllowList:
    """Topic names, and prefixes from patterns ending in ``*`` (``"room:*"``), as
    Phoenix's ``channel "room:*"``."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Any) -> AllowList:
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise TypeError(
                f"an EventStream's allow is a list of topics (and patterns like 'room:*'), "
                f"got {entries!r}"
            )
        exact: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            if type(entry) is not str or not entry:
                raise TypeError(f"an allowed topic is a non-empty str, got {entry!r}")
            star = entry.find("*")
            if star == -1:
                exact.add(entry)
            elif star == len(entry) - 1:
                prefixes.append(entry[:-1])
            else:
                raise ValueError(
                    f"a topic pattern may have one * and only at its end ('room:*'), got "
                    f"{entry!r}"
                )
        return cls(frozenset(exact), tuple(prefixes))

    def matches(self, topic: str) -> bool:
        return topic in self.exact or any(topic.startswith(p) for p in self.prefixes)


@mark_shared
@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One event stream's settings (see ``EventStream`` for each option)."""

    name: str
    pubsub: str
    allow: AllowList | None
    authorize: Callable[[Any, str], Any] | None
    topics: Callable[[Any], Iterable[str]] | None
    buffer_size: int
    keepalive: float
    linger: float
    max_topics: int
    max_queue_events: int
    max_queue_bytes: int

    @property
    def rule(self) -> str:
        """The rule a topic must pass, in words, for a refusal to name."""
        if self.allow is not None and self.authorize is not None:
            return "it must match the stream's allow list and its authorize callback must say True"
        if self.allow is not None:
            return "it must match the stream's allow list"
        return "its authorize callback must say True"


_ZERO_ALLOWED = ("buffer_size", "linger")


def _number(key: str, value: Any) -> Any:
    integral = type(DEFAULTS[key]) is int
    fits = (type(value) is int) if integral else (
        type(value) in (int, float) and math.isfinite(value)
    )
    if not fits or (value < 0 if key in _ZERO_ALLOWED else value <= 0):
        kind = "a whole number" if integral else "a number of seconds"
        floor = "0 or more" if key in _ZERO_ALLOWED else "above 0"
        raise ValueError(
            f"an EventStream's {key} is {kind}, {floor}; got {value!r} (the default is "
            f"{DEFAULTS[key]!r})"
        )
    return value


def parse_options(options: Any) -> StreamConfig:
    """Check an EventStream's options dict and fill in the defaults."""
    if not isinstance(options, Mapping):
        raise TypeError(f"EventStream's child spec takes a dict of options, got {options!r}")
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(
            f"unknown EventStream option(s) {', '.join(sorted(map(str, unknown)))}; the "
            f"options are {', '.join(OPTIONS)}"
        )
    name, pubsub = options.get("name"), options.get("pubsub")
    if type(name) is not str or not name or type(pubsub) is not str or not pubsub:
        raise TypeError(
            f"an EventStream needs a name and the pubsub its topics live on (both str), got "
            f"name={name!r}, pubsub={pubsub!r}"
        )
    allow, authorize = options.get("allow"), options.get("authorize")
    if allow is None and authorize is None:
        raise TypeError(
            f"the EventStream {name!r} would serve no topic: a stream serves only the topics "
            "its application allows. Give it allow=[topics, or patterns like 'room:*'] (topics "
            "anyone may read), authorize=fn(request, topic) -> bool (may be async; decides "
            "per request), or both (a topic must then pass both)"
        )
    for key in ("authorize", "topics"):
        if options.get(key) is not None and not callable(options[key]):
            raise TypeError(f"an EventStream's {key} is a function, got {options[key]!r}")
    values = {key: _number(key, options.get(key, default)) for key, default in DEFAULTS.items()}
    return StreamConfig(
        name=name, pubsub=pubsub,
        allow=None if allow is None else AllowList.parse(allow),
        authorize=authorize, topics=options.get("topics"),
        buffer_size=values["buffer_size"], keepalive=float(values["keepalive"]),
        linger=float(values["linger"]), max_topics=values["max_topics"],
        max_queue_events=values["max_queue_events"], max_queue_bytes=values["max_queue_bytes"],
    )
