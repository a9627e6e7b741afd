"""Metric definitions in the Telemetry.Metrics style: what to make of which event.

A definition names the metric after the event and the measurement it reads::

    distribution("beamish.endpoint.stop.duration", tags=["route", "method", "status"],
                 buckets=[0.005, 0.05, 0.5, 5], unit="seconds")

reads the ``duration`` measurement of event ``("beamish", "endpoint", "stop")`` and keeps a
histogram per (route, method, status). The five kinds are Telemetry.Metrics' own:

- ``counter``: how many times the event happened (the measurement is not read);
- ``sum``: the sum of the measurement;
- ``last_value``: the latest measurement (a gauge);
- ``summary``: count and sum of the measurement (Prometheus's summary, no quantiles);
- ``distribution``: a histogram of the measurement over ``buckets``.

Options: ``event_name`` and ``measurement`` when the name does not say them (a measurement
may be a function ``(measurements, metadata) -> number``); ``tags``, metadata keys whose
values label the series (keep them few-valued: a route template, not a path); ``tag_values``,
a function ``metadata -> dict`` computing the tags; ``keep``, a function ``metadata ->
bool`` that picks the events measured; ``description`` and ``unit`` for the exposition.

Definitions are data: nothing is attached until a reporter (``PrometheusReporter``) runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_BUCKETS", "Kind", "Metric", "counter", "distribution", "last_value", "sum",
    "summary",
]

Kind = Literal["counter", "sum", "last_value", "summary", "distribution"]
Measurement = str | Callable[[Mapping[str, Any], Mapping[str, Any]], float | None]

DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
"""Seconds, from half a millisecond to ten seconds: requests, queries, handlers."""

_PART = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Metric:
    """One metric definition (made by ``counter``, ``sum``... below)."""

    kind: Kind
    name: str
    event_name: tuple[str, ...]
    measurement: Measurement | None
    tags: tuple[str, ...] = ()
    tag_values: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    description: str = ""
    unit: str = ""
    buckets: tuple[float, ...] = field(default=DEFAULT_BUCKETS)

    def value(self, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> Any:
        """The number this event adds (None: the event has no such measurement)."""
        if self.kind == "counter":
            return 1
        measurement = self.measurement
        if callable(measurement):
            return measurement(measurements, metadata)
        return measurements.get(measurement) if measurement is not None else None

    def labels(self, metadata: Mapping[str, Any]) -> tuple[str, ...]:
        """The tag values of one event, as text, in the order of ``tags`` (a missing or None
        value is the empty string)."""
        source = self.tag_values(metadata) if self.tag_values is not None else metadata
        return tuple([_text(source.get(tag)) for tag in self.tags])

    @property
    def exposed_name(self) -> str:
        """The Prometheus name: dots become underscores, the unit is the suffix."""
        base = self.name.replace(".", "_")
        if self.unit and not base.endswith("_" + self.unit):
            base += "_" + self.unit
        return base


def _text(value: Any) -> str:
    return value if type(value) is str else "" if value is None else str(value)


def _define(kind: Kind, name: str, *, event_name: Iterable[str] | None = None,
            measurement: Measurement | None = None, tags: Sequence[str] = (),
            tag_values: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
            keep: Callable[[Mapping[str, Any]], bool] | None = None, description: str = "",
            unit: str = "", buckets: Sequence[float] | None = None) -> Metric:
    if type(name) is not str or not all(_PART.match(part) for part in name.split(".")):
        raise ValueError(
            f"a metric name is dotted lowercase words, the event's name then the measurement "
            f"('beamish.endpoint.stop.duration'), got {name!r}"
        )
    parts = tuple(name.split("."))
    if event_name is None:
        if len(parts) < 2:
            raise ValueError(f"metric {name!r} names no measurement: give event_name=")
        event = parts[:-1]
        if measurement is None and kind != "counter":
            measurement = parts[-1]
    else:
        event = tuple(event_name)
    if kind != "counter" and measurement is None:
        raise ValueError(f"{kind} {name!r} needs a measurement")
    chosen = tuple(sorted(buckets)) if buckets is not None else DEFAULT_BUCKETS
    if kind == "distribution" and (not chosen or len(set(chosen)) != len(chosen)):
        raise ValueError(f"distribution {name!r} needs distinct buckets, got {buckets!r}")
    for tag in tags:
        if not _PART.match(tag):
            raise ValueError(f"tag {tag!r} of {name!r} is not a lowercase word")
    return Metric(kind, name, event, measurement, tuple(tags), tag_values, keep, description,
                  unit, chosen)


def counter(name: str, **options: Any) -> Metric:
    """Count the events (``name``'s last part is a measurement's name only by convention:
    ``counter("beamish.endpoint.stop.count")``; pass ``event_name`` to say it outright)."""
    return _define("counter", name, **options)


def sum(name: str, **options: Any) -> Metric:
    """Add up the measurement."""
    return _define("sum", name, **options)


def last_value(name: str, **options: Any) -> Metric:
    """Keep the latest measurement."""
    return _define("last_value", name, **options)


def summary(name: str, **options: Any) -> Metric:
    """Count and sum the measurement."""
    return _define("summary", name, **options)


def distribution(name: str, **options: Any) -> Metric:
    """A histogram of the measurement over ``buckets`` (default ``DEFAULT_BUCKETS``)."""
    return _define("distribution", name, **options)
