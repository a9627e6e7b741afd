"""Metrics reported through ``prometheus-client``: a reporter process and a ``/metrics`` app.

    metrics = PrometheusReporter(default_metrics())
    children = [..., metrics.spec()]          # attaches its handlers while it runs
    router.mount("/metrics", metrics.app())   # the exposition, for Prometheus to scrape

The reporter keeps its own ``CollectorRegistry``. While its process runs, one telemetry
handler per event name records each event in plain figures (a count, a sum, a
histogram's bucket counts, by tag values), in the process that emitted it, with functions
made for each definition when the handlers are attached; a scrape turns the figures into
Prometheus metric families for ``prometheus_client`` to write out. Nothing of an event is
kept past its handler (an earlier version noted events in a list and folded them in
batches: holding a thousand events' dicts and reading them back cold cost more).
The process detaches the handlers when it stops. Handlers run where events are emitted: on the event
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

import contextlib
import itertools
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter
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
    """One definition's figures, by tag values: plain numbers in small lists (cells)
    updated where the event is emitted (a counter's count, a sum, a histogram's bucket
    counts), turned into Prometheus metric families only when the registry is scraped
    (``collect``), as Elixir's Prometheus reporter aggregates in ETS and formats on scrape.

    ``recorder()`` makes the function that records one event, specialised for the
    definition's kind: it finds the event's cell by the tag values as they come (one
    ``itemgetter`` and one dict lookup), and makes them text only the first time a set is
    seen."""

    __slots__ = ("by_raw", "definition", "figures", "kind", "max_series", "other")

    def __init__(self, definition: Metric, max_series: int) -> None:
        self.definition = definition
        self.kind = definition.kind
        self.max_series = max_series
        self.other: tuple[str, ...] = ("_other",) * len(definition.tags)
        # text tag values -> cell: [n] for counter, sum and last_value; [count, sum] for a
        # summary; [count per bucket (not cumulative)..., +Inf count, sum] for a distribution
        self.figures: dict[tuple[str, ...], list[Any]] = {}
        # tag values as they come -> the same cells (bounded: past 2 x max_series sets, the
        # values are made text on each event)
        self.by_raw: dict[Any, list[Any]] = {}
        if not definition.tags and definition.kind != "last_value":
            self.cell(())  # one series, there from the start (at zero)

    def cell(self, key: tuple[str, ...]) -> list[Any]:
        """The cell of the text tag values ``key`` (made at zero; past ``max_series`` sets,
        the cell of ``_other``)."""
        figures = self.figures
        found = figures.get(key)
        if found is not None:
            return found
        if len(figures) >= self.max_series:
            if self.other not in figures:
                _log.warning(
                    "metric %s has %d label sets, its limit: further ones are counted as "
                    "%r (a tag with too many values?)", self.definition.exposed_name,
                    self.max_series, "_other",
                )
            key = self.other
            found = figures.get(key)
            if found is not None:
                return found
        kind = self.kind
        if kind == "summary":
            found = [0, 0.0]
        elif kind == "distribution":
            found = [0] * (len(self.definition.buckets) + 2)
        else:
            found = [0]
        figures[key] = found
        return found

    def recorder(self) -> Callable[[Mapping[str, Any], Mapping[str, Any]], None]:
        """The function recording one event's measurements and metadata in this series."""
        definition = self.definition
        kind, keep, measurement = self.kind, definition.keep, definition.measurement
        tags, by_raw, cell = definition.tags, self.by_raw, self.cell
        raw_limit = 2 * self.max_series
        labels = definition.labels
        if not tags:
            def find(metadata: Mapping[str, Any]) -> list[Any]:
                return cell(())
        elif definition.tag_values is not None:
            def find(metadata: Mapping[str, Any]) -> list[Any]:
                return cell(labels(metadata))
        else:
            values = itemgetter(*tags)

            def find(metadata: Mapping[str, Any]) -> list[Any]:
                # (values equal as keys share a cell: a tag seen as True, then as 1, is
                # counted under the text of the first)
                try:
                    return by_raw[values(metadata)]
                except (KeyError, TypeError):  # new, missing or unhashable tag values
                    found = cell(labels(metadata))
                    if len(by_raw) < raw_limit:
                        with contextlib.suppress(KeyError, TypeError):
                            by_raw[values(metadata)] = found
                    return found

        # The two kinds every request records (the endpoint's counter and duration) look
        # their cell up inline when their tags are read as they come (find's first line):
        # a call less each, on every request
        inline = bool(tags) and definition.tag_values is None and keep is None
        if kind == "counter":
            if inline:
                def count_inline(measurements: Mapping[str, Any],
                                 metadata: Mapping[str, Any]) -> None:
                    try:
                        by_raw[values(metadata)][0] += 1
                    except (KeyError, TypeError):
                        find(metadata)[0] += 1
                return count_inline

            def count(measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
                if keep is None or keep(metadata):
                    find(metadata)[0] += 1
            return count
        name = measurement if type(measurement) is str else None
        value_of = definition.value

        def value(measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> Any:
            if name is not None:
                return measurements.get(name)
            return value_of(measurements, metadata)

        if kind == "distribution":
            buckets = definition.buckets
            if inline and name is not None:
                def histogram_inline(measurements: Mapping[str, Any],
                                     metadata: Mapping[str, Any]) -> None:
                    number = measurements.get(name)
                    if number is None:
                        return
                    try:
                        figure = by_raw[values(metadata)]
                    except (KeyError, TypeError):
                        figure = find(metadata)
                    figure[bisect_left(buckets, number)] += 1
                    figure[-1] += number
                return histogram_inline

            def histogram(measurements: Mapping[str, Any], metadata: Mapping[str, Any]
                          ) -> None:
                number = measurements.get(name) if name is not None else value(
                    measurements, metadata)
                if number is not None and (keep is None or keep(metadata)):
                    figure = find(metadata)
                    figure[bisect_left(buckets, number)] += 1
                    figure[-1] += number
            return histogram

        def record(measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
            number = value(measurements, metadata)
            if number is None or (keep is not None and not keep(metadata)):
                return
            figure = find(metadata)
            if kind == "last_value":
                figure[0] = number
            elif kind == "sum":
                figure[0] += number
            else:
                figure[0] += 1
                figure[1] += number
        return record

    def family(self) -> Any:
        """The metric family prometheus_client exposes, from the figures now."""
        definition = self.definition
        name, doc = definition.exposed_name, definition.description or definition.name
        tags = list(definition.tags)
        kind = self.kind
        figures = list(self.figures.items())
        if kind == "counter":
            family: Any = CounterMetricFamily(name, doc, labels=tags)
            for key, (count,) in figures:
                family.add_metric(list(key), count)
        elif kind == "sum" or kind == "last_value":
            family = GaugeMetricFamily(name, doc, labels=tags)
            for key, (number,) in figures:
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
                 registry: CollectorRegistry | None = None, max_series: int = 1_000
                 ) -> None:
        if type(max_series) is not int or max_series < 1:
            raise ValueError(f"max_series must be a positive int, got {max_series!r}")
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
        self.handler_id = f"beamish.prometheus.{next(_ids)}"

    # -- attaching ------------------------------------------------------------------------

    def attach(self) -> None:
        """Attach the handlers now (``spec()``'s process does it for you)."""
        recorders = {name: tuple(series.recorder() for series in by_name)
                     for name, by_name in self._by_event.items()}

        def handle(event: EventName, measurements: Mapping[str, Any],
                   metadata: Mapping[str, Any], config: Any) -> None:
            for record in recorders[event]:
                record(measurements, metadata)

        detach(self.handler_id)  # a restarted process attaches afresh
        attach_many(self.handler_id, list(self._by_event), handle)

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
        found = []
        for series_list in self._by_event.values():
            for series in series_list:
                definition = series.definition
                rows = []
                for key, figure in list(series.figures.items()):
                    labels = dict(zip(definition.tags, key, strict=True))
                    if series.kind in ("counter", "sum", "last_value"):
                        rows.append({"labels": labels, "value": figure[0]})
                    elif series.kind == "summary":
                        rows.append({"labels": labels, "count": figure[0], "sum": figure[1]})
                    else:
                        rows.append({"labels": labels, "count": sum(figure[:-1]),
                                     "sum": figure[-1]})
                rows.sort(key=lambda r: -(r.get("value") or r.get("count") or 0))
                found.append({"name": definition.exposed_name, "kind": series.kind,
                              "unit": definition.unit, "description": definition.description,
                              "series": rows[:max_series], "series_total": len(rows)})
        return found

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
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
