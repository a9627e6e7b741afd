"""Telemetry: the event bus every layer of beamish emits through (Erlang's ``:telemetry``),
metric definitions (Telemetry.Metrics), a Prometheus reporter and a poller.

    from beamish import telemetry

    def slow_requests(event, measurements, metadata, config):
        if measurements["duration"] > config["over"]:
            print("slow:", metadata["route"], measurements["duration"])

    telemetry.attach("slow-requests", ("beamish", "endpoint", "stop"), slow_requests,
                     {"over": 0.5})

``execute(event, measurements, metadata)`` emits an event, ``span(prefix, metadata)`` times a
block as ``start`` / ``stop`` / ``exception`` events. ``PrometheusReporter(default_metrics())``
reports metric definitions at a mountable ``/metrics``; ``Poller`` measures the node and the
machine. The events beamish emits are listed in ``docs/guides/telemetry.md``.

The reporter and the poller need the telemetry extra (``pip install 'beamish[telemetry]'``,
part of the web extra); the bus needs nothing.
"""

from beamish._public import publish
from beamish._runtime.crash import CrashReport
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
from beamish.telemetry._defaults import default_metrics
from beamish.telemetry._metrics import (
    DEFAULT_BUCKETS,
    Metric,
    counter,
    distribution,
    last_value,
    sum,
    summary,
)

__all__ = [
    "DEFAULT_BUCKETS", "CrashReport", "Event", "EventName", "Handler", "HandlerExists",
    "Metric", "Poller", "PrometheusReporter", "attach", "attach_many", "counter",
    "default_metrics", "detach", "distribution", "event", "execute", "last_value",
    "list_handlers", "span", "sum", "summary",
]

try:  # the reporter and the poller need the telemetry extra
    from beamish.telemetry._poller import Poller
    from beamish.telemetry._prometheus import PrometheusReporter
except ModuleNotFoundError as exc:  # installed without it
    if (exc.name or "beamish").partition(".")[0] == "beamish":
        raise
    _missing: ModuleNotFoundError = exc
    __all__ = [n for n in __all__ if n not in ("Poller", "PrometheusReporter")]

    def __getattr__(name: str) -> object:
        if name in ("Poller", "PrometheusReporter"):
            raise ModuleNotFoundError(
                f"beamish.telemetry.{name} needs the telemetry extra: "
                f"pip install 'beamish[telemetry]' ({_missing})"
            )
        raise AttributeError(f"module 'beamish.telemetry' has no attribute {name!r}")

try:  # traces need opentelemetry-api (pip install opentelemetry-api)
    from beamish.telemetry._opentelemetry import OpenTelemetryTracer

    __all__ += ["OpenTelemetryTracer"]
except ModuleNotFoundError as exc:
    if (exc.name or "beamish").partition(".")[0] == "beamish":
        raise

publish(globals(), __all__, __name__)
del publish
