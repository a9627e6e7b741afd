"""The telemetry event bus: ``execute``, ``attach``, ``detach``, ``span`` (Erlang's
``:telemetry``), which every layer of beamish emits through, the kernel included.

An event is named by a tuple of strings, ``("beamish", "endpoint", "stop")``; it carries
*measurements* (numbers: a duration, a count) and *metadata* (what the numbers are about: a
route, a pid). A handler is attached under an id of its own to one or more event names::

    def on_stop(event, measurements, metadata, config):
        print(metadata["route"], measurements["duration"])

    attach("log-requests", ("beamish", "endpoint", "stop"), on_stop)

Handlers run synchronously, in the process (or loop callback) that emitted the event, in
the order attached: keep them short (count, record, ``send`` to a collector process). A
handler that raises is detached and the failure logged once, naming the handler and the
event: the code that emitted the event never sees the error.

The registry is one per Python process, as ``:telemetry``'s is one per BEAM node: every
runtime in the process emits into it (metadata say which pid, which node).

Emitting costs nothing while nobody listens. Each event name has one ``Event`` object
(``event(*name)``), and code on a hot path keeps it and tests its ``handlers`` tuple before
it builds any measurement::

    _STOP = event("beamish", "endpoint", "stop")
    ...
    if _STOP.handlers:
        _STOP.emit({"duration": took}, {"route": path})

``execute(name, ...)`` does the lookup itself, for code off the hot paths.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "Event", "EventName", "Handler", "HandlerExists", "attach", "attach_many", "detach",
    "event", "execute", "handlers", "list_handlers", "span",
]

EventName = tuple[str, ...]
Handler = Callable[[EventName, Mapping[str, Any], Mapping[str, Any], Any], Any]

_log = logging.getLogger("beamish.telemetry")


class HandlerExists(ValueError):
    """A handler is already attached under that id (ids are unique, as in ``:telemetry``)."""


class _Attached:
    __slots__ = ("config", "events", "function", "id")

    def __init__(self, handler_id: str, events: tuple[EventName, ...], function: Handler,
                 config: Any) -> None:
        self.id = handler_id
        self.events = events
        self.function = function
        self.config = config

    def __repr__(self) -> str:
        return f"<handler {self.id!r} {getattr(self.function, '__qualname__', self.function)}>"


class Event:
    """One event name and the handlers attached to it (a tuple, replaced on change, so an
    emit in progress is never disturbed by an attach or a detach)."""

    __slots__ = ("handlers", "name")

    def __init__(self, name: EventName) -> None:
        self.name = name
        self.handlers: tuple[_Attached, ...] = ()

    def emit(self, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        """Call every handler of this event (test ``handlers`` first on a hot path)."""
        name = self.name
        for attached in self.handlers:
            try:
                attached.function(name, measurements, metadata, attached.config)
            except Exception:
                if detach(attached.id):
                    _log.exception(
                        "telemetry handler %r failed on event %s; it has been detached",
                        attached.id, ".".join(name),
                    )

    def __repr__(self) -> str:
        return f"<Event {'.'.join(self.name)} ({len(self.handlers)} handlers)>"


_EVENTS: dict[EventName, Event] = {}
_HANDLERS: dict[str, _Attached] = {}


def _name(name: Iterable[str]) -> EventName:
    found = tuple(name) if not isinstance(name, str) else ()
    if not found or not all(type(part) is str and part for part in found):
        raise TypeError(
            f"an event name is a tuple of non-empty strings such as ('beamish', 'endpoint', "
            f"'stop'), got {name!r}"
        )
    return found


def event(*name: str) -> Event:
    """The ``Event`` of ``name`` (made on first use; the same object ever after)."""
    key = _name(name)
    found = _EVENTS.get(key)
    if found is None:
        found = _EVENTS[key] = Event(key)
    return found


def attach(handler_id: str, name: Iterable[str], function: Handler, config: Any = None) -> None:
    """Call ``function(event, measurements, metadata, config)`` on event ``name``.

    Raises ``HandlerExists`` if ``handler_id`` is attached already."""
    attach_many(handler_id, [name], function, config)


def attach_many(handler_id: str, names: Iterable[Iterable[str]], function: Handler,
                config: Any = None) -> None:
    """``attach`` one handler to several events under one id."""
    if type(handler_id) is not str or not handler_id:
        raise TypeError(f"a handler id is a non-empty string, got {handler_id!r}")
    if not callable(function):
        raise TypeError(f"a telemetry handler must be callable, got {function!r}")
    keys = tuple(dict.fromkeys(_name(n) for n in names))
    if not keys:
        raise ValueError(f"handler {handler_id!r} names no event")
    if handler_id in _HANDLERS:
        raise HandlerExists(
            f"a telemetry handler is already attached as {handler_id!r}; detach it first, "
            "or choose another id"
        )
    attached = _HANDLERS[handler_id] = _Attached(handler_id, keys, function, config)
    for key in keys:
        target = event(*key)
        target.handlers = (*target.handlers, attached)


def detach(handler_id: str) -> bool:
    """Detach the handler ``handler_id`` from all its events; False if none is attached."""
    attached = _HANDLERS.pop(handler_id, None)
    if attached is None:
        return False
    for key in attached.events:
        target = _EVENTS[key]
        target.handlers = tuple(h for h in target.handlers if h is not attached)
    return True


def list_handlers(prefix: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The handlers attached to events whose name starts with ``prefix``: one dict per
    (handler, event), with ``id``, ``event``, ``function`` and ``config``."""
    start = tuple(prefix)
    return [
        {"id": h.id, "event": key, "function": h.function, "config": h.config}
        for h in _HANDLERS.values() for key in h.events if key[:len(start)] == start
    ]


def handlers() -> frozenset[str]:
    """The ids attached now (the test plugin detaches what a test left attached)."""
    return frozenset(_HANDLERS)


def execute(name: Iterable[str], measurements: Mapping[str, Any] | None = None,
            metadata: Mapping[str, Any] | None = None) -> None:
    """Emit event ``name``: every handler attached to it is called, in order."""
    target = _EVENTS.get(name if type(name) is tuple else _name(name))
    if target is not None and target.handlers:
        target.emit(measurements or {}, metadata or {})


@contextmanager
def span(prefix: Iterable[str], metadata: Mapping[str, Any] | None = None
         ) -> Iterator[dict[str, Any]]:
    """Emit ``prefix + ("start",)`` now, and ``("stop",)`` or ``("exception",)`` when the
    block ends, with its ``duration`` in monotonic seconds (``:telemetry.span``)::

        with span(("shop", "checkout"), {"cart": cart_id}) as meta:
            total = await checkout(cart_id)
            meta["total"] = total  # added to the stop event's metadata

    ``start`` measures ``monotonic_time`` and ``system_time``; ``stop`` and ``exception``
    measure ``duration`` and ``monotonic_time``, and ``exception`` adds ``kind`` (the
    exception's class name), ``reason`` (the exception) and ``stacktrace`` (its formatted
    traceback) to the metadata. The exception goes on."""
    base = _name(prefix)
    start, stop, failed = event(*base, "start"), event(*base, "stop"), event(*base, "exception")
    meta: dict[str, Any] = dict(metadata or {})
    began = time.monotonic()
    if start.handlers:
        start.emit({"monotonic_time": began, "system_time": time.time()}, dict(meta))
    try:
        yield meta
    except BaseException as exc:
        if failed.handlers:
            ended = time.monotonic()
            failed.emit(
                {"duration": ended - began, "monotonic_time": ended},
                {**meta, "kind": type(exc).__name__, "reason": exc,
                 "stacktrace": "".join(traceback.format_exception(exc))},
            )
        raise
    if stop.handlers:
        ended = time.monotonic()
        stop.emit({"duration": ended - began, "monotonic_time": ended}, meta)
