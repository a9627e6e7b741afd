"""Telemetry: the event bus every layer of beamish emits through (Erlang's ``:telemetry``).

    from beamish import telemetry

    def slow_requests(event, measurements, metadata, config):
        if measurements["duration"] > config["over"]:
            print("slow:", metadata["route"], measurements["duration"])

    telemetry.attach("slow-requests", ("beamish", "endpoint", "stop"), slow_requests,
                     {"over": 0.5})

``execute(event, measurements, metadata)`` emits an event, ``span(prefix, metadata)`` times a
block as ``start`` / ``stop`` / ``exception`` events. The events beamish emits itself are
listed in ``docs/guides/telemetry.md``. See ``beamish._runtime.events`` for the rules.
"""

from beamish._public import publish
from beamish._runtime.events import (
    Event,
    EventName,
    Handler,
    HandlerExists,
    attach,
    attach_many,
    detach,
    event,
    execute,
    list_handlers,
    span,
)

__all__ = [
    "Event", "EventName", "Handler", "HandlerExists", "attach", "attach_many", "detach",
    "event", "execute", "list_handlers", "span",
]

publish(globals(), __all__, __name__)
del publish
