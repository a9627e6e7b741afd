"""Metrics reported through ``prometheus-client``: a reporter process and a ``/metrics`` app.

    metrics = PrometheusReporter(default_metrics())
    children = [..., metrics.spec()]          # attaches its handlers while it runs
    router.mount("/metrics", metrics.app())   # the exposition, for Prometheus to scrape

The reporter keeps its own ``CollectorRegistry``. While its process runs, one telemetry
handler per event name notes each event (one append to a list, in the process that
emitted it); every ``batch`` events (default 1,000), and before each scrape, the notes are
folded into plain figures (a count, a sum, a histogram's bucket counts, by tag values),
which a scrape turns into Prometheus metric families for ``prometheus_client`` to write out.
Per event, the emitting process pays for an append; the folding runs as one tight loop.
The metadata noted is kept until the next fold: at most ``batch`` events' worth. The process
detaches the handlers when it stops. Handlers run where events are emitted: on the event
loop's thread, for beamish's.

Series are bounded: a metric keeps at most ``max_series`` label sets (default 1,000); an
event with tag values beyond them is counted under the label value ``"_other"`` and a
warning names the metric once, so tags a client can choose never grow memory without bound.

``app()`` serves the registry in Prometheus's text format (``prometheus_client``'s own
encoder). What a node's metrics tell is not for everyone: by default the app answers only
clients on this machine (loopback addresses) and 403 to the others; ``allow=`` takes a
function ``scope -> bool`` (a token check, say) or True for anyone.
"""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)

from beamish._runtime.events import EventName, attach_many, detach
from beamish._runtime.isolation import mark_shared
from beamish.telemetry._attached import attached_spec
from beamish.telemetry._metrics import Metric

__all__ = ["PrometheusReporter"]

_log = logging.getLogger("beamish.telemetry")
_ids = itertools.count(1)
_LOOPBACK = ("127.", "::1", "::ffff:127.")
Allow = Callable[[Mapping[str, Any]], bool]


class _Series:
    """One definition's figures, by tag values: plain numbers updated inline (a counter's
    count, a sum, a histogram's bucket counts), turned into Prometheus metric families only
    when the registry is scraped (``collect``), as Elixir's Prometheus reporter aggregates in
    ETS and formats on scrape."""

    __slots__ = ("definition", "figures", "kind", "max_series", "other")

    def __init__(self, definition: Metric, max_series: int) -> None:
        self.definition = definition
        self.kind = definition.kind
        self.max_series = max_series
        self.other: tuple[str, ...] = ("_other",) * len(definition.tags)
        # counter, sum, last_value: key -> number; summary: key -> [count, sum];
        # distribution: key -> [count per bucket (not cumulative)..., +Inf count, sum]
        self.figures: dict[tuple[str, ...], Any] = {}
        if not definition.tags:  # one series, there from the start (at zero)
            kind = definition.kind
            if kind == "counter" or kind == "sum":
                self.figures[()] = 0
            elif kind == "summary":
                self.figures[()] = [0, 0.0]
            elif kind == "distribution":
                self.figures[()] = [0] * (len(definition.buckets) + 2)

    def record(self, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        definition = self.definition
        if definition.keep is not None and not definition.keep(metadata):
            return
        if self.kind == "counter":
            value: Any = 1
        elif type(measurement := definition.measurement) is str:
            value = measurements.get(measurement)
        else:
            value = definition.value(measurements, metadata)
        if value is None:
            return
        figures = self.figures
        key = definition.labels(metadata) if definition.tags else ()
        figure = figures.get(key)
        if figure is None and len(figures) >= self.max_series:
            if self.other not in figures:
                _log.warning(
                    "metric %s has %d label sets, its limit: further ones are counted as "
                    "%r (a tag with too many values?)", definition.exposed_name,
                    self.max_series, "_other",
                )
            key = self.other
            figure = figures.get(key)
        kind = self.kind
        if kind == "counter" or kind == "sum":
            figures[key] = (figure or 0) + value
        elif kind == "last_value":
            figures[key] = value
        elif kind == "summary":
            if figure is None:
                figure = figures[key] = [0, 0.0]
            figure[0] += 1
            figure[1] += value
        else:
            buckets = definition.buckets
            if figure is None:
                figure = figures[key] = [0] * (len(buckets) + 2)
            figure[bisect_left(buckets, value)] += 1
            figure[-1] += value

    def family(self) -> Any:
        """The metric family prometheus_client exposes, from the figures now."""
        definition = self.definition
        name, doc = definition.exposed_name, definition.description or definition.name
        tags = list(definition.tags)
        kind = self.kind
        figures = list(self.figures.items())
        if kind == "counter":
            family: Any = CounterMetricFamily(name, doc, labels=tags)
            for key, count in figures:
                family.add_metric(list(key), count)
        elif kind == "sum" or kind == "last_value":
            family = GaugeMetricFamily(name, doc, labels=tags)
            for key, number in figures:
                family.add_metric(list(key), number)
        elif kind == "summary":
            family = SummaryMetricFamily(name, doc, labels=tags)
            for key, (count, total) in figures:
                family.add_metric(list(key), count, total)
        else:
            family = HistogramMetricFamily(name, doc, labels=tags)
            bounds = [*(repr(float(b)) for b in definition.buckets), "+Inf"]
            for key, figure in figures:
                running, cumulative = 0, []
                for bound, count in zip(bounds, figure[:-1], strict=True):
                    running += count
                    cumulative.append((bound, running))
                family.add_metric(list(key), cumulative, figure[-1])
        return family


class _Collector:
    """The reporter's series, for prometheus_client's registry to collect on a scrape."""

    def __init__(self, series: list[_Series]) -> None:
        self.series = series

    def collect(self) -> Iterator[Any]:
        for one in self.series:
            yield one.family()


@mark_shared  # its figures are updated by every process that emits its events, by design
class PrometheusReporter:
    """Metric definitions kept in a Prometheus registry of their own (see the module)."""

    def __init__(self, metrics: Iterable[Metric], *,
                 registry: CollectorRegistry | None = None, max_series: int = 1_000,
                 batch: int = 1_000) -> None:
        for label, number in (("max_series", max_series), ("batch", batch)):
            if type(number) is not int or number < 1:
                raise ValueError(f"{label} must be a positive int, got {number!r}")
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = tuple(metrics)
        names = [m.exposed_name for m in self.metrics]
        taken = {n for n in names if names.count(n) > 1}
        if taken:
            raise ValueError(f"two metrics would be exposed as {sorted(taken)}: rename one")
        self._by_event: dict[EventName, list[_Series]] = {}
        every = []
        for definition in self.metrics:
            series = _Series(definition, max_series)
            every.append(series)
            self._by_event.setdefault(definition.event_name, []).append(series)
        self.registry.register(_Collector(every))
        self.batch = batch
        self._pending: list[tuple[EventName, Mapping[str, Any], Mapping[str, Any]]] = []
        self.handler_id = f"beamish.prometheus.{next(_ids)}"

    # -- attaching ------------------------------------------------------------------------

    def attach(self) -> None:
        """Attach the handlers now (``spec()``'s process does it for you)."""
        pending = self._pending
        append = pending.append
        limit = self.batch

        def handle(event: EventName, measurements: Mapping[str, Any],
                   metadata: Mapping[str, Any], config: Any) -> None:
            append((event, measurements, metadata))
            if len(pending) >= limit:
                self.flush()

        detach(self.handler_id)  # a restarted process attaches afresh
        attach_many(self.handler_id, list(self._by_event), handle)

    def flush(self) -> None:
        """Fold the events noted since the last flush into the figures (a scrape does it
        first; so does the handler every ``batch`` events)."""
        pending = self._pending
        if not pending:
            return
        batch = pending.copy()
        pending.clear()
        by_event = self._by_event
        for event, measurements, metadata in batch:
            for series in by_event[event]:
                series.record(measurements, metadata)

    def detach(self) -> None:
        detach(self.handler_id)

    def spec(self, *, id: str = "telemetry.prometheus") -> dict[str, Any]:
        """A child spec: a process that attaches the handlers and detaches them on stop."""
        return attached_spec(self, id)

    # -- serving --------------------------------------------------------------------------

    def snapshot(self, *, max_series: int = 20) -> list[dict[str, Any]]:
        """The figures now, by metric (``max_series`` series each, the largest first): what
        the dashboard charts. A counter or sum is its ``value``; a last_value its ``value``;
        a summary or distribution its ``count`` and ``sum``."""
        self.flush()
        found = []
        for series_list in self._by_event.values():
            for series in series_list:
                definition = series.definition
                rows = []
                for key, figure in list(series.figures.items()):
                    labels = dict(zip(definition.tags, key, strict=True))
                    if series.kind in ("counter", "sum", "last_value"):
                        rows.append({"labels": labels, "value": figure})
                    elif series.kind == "summary":
                        rows.append({"labels": labels, "count": figure[0], "sum": figure[1]})
                    else:
                        rows.append({"labels": labels, "count": sum(figure[:-1]),
                                     "sum": figure[-1]})
                rows.sort(key=lambda r: -(r.get("value") or r.get("count") or 0))
                found.append({"name": definition.exposed_name, "kind": series.kind,
                              "unit": definition.unit, "description": definition.description,
                              "series": rows[:max_series]})
        return found

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        self.flush()
        return generate_latest(self.registry)

    def app(self, *, allow: Allow | bool | None = None) -> Callable[..., Any]:
        """An ASGI app serving ``exposition()`` to GET (see the module for ``allow``)."""
        check: Allow
        if allow is True:
            check = _anyone
        elif allow is None or allow is False:
            check = _local
        elif callable(allow):
            check = allow
        else:
            raise TypeError(f"allow is a function scope -> bool, True or None, got {allow!r}")
        if allow is False:
            check = _nobody

        async def metrics(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                raise RuntimeError("the metrics app serves HTTP only")
            if not check(scope):
                await _plain(send, 403, b"403 Forbidden: metrics are served to this machine "
                             b"only (see PrometheusReporter.app's allow)\n")
                return
            if scope["method"] not in ("GET", "HEAD"):
                await _plain(send, 405, b"405 Method Not Allowed\n", [(b"allow", b"GET, HEAD")])
                return
            body = self.exposition()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", CONTENT_TYPE_LATEST.encode()),
                (b"content-length", str(len(body)).encode()),
            ]})
            await send({"type": "http.response.body",
                        "body": body if scope["method"] == "GET" else b""})

        return metrics



def _anyone(scope: Mapping[str, Any]) -> bool:
    return True


def _nobody(scope: Mapping[str, Any]) -> bool:
    return False


def _local(scope: Mapping[str, Any]) -> bool:
    client = scope.get("client")
    return client is not None and str(client[0]).startswith(_LOOPBACK)


async def _plain(send: Any, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": body})
