"""Metrics reported through ``prometheus-client``: a reporter process and a ``/metrics`` app.

    metrics = PrometheusReporter(default_metrics())
    children = [..., metrics.spec()]          # attaches its handlers while it runs
    router.mount("/metrics", metrics.app())   # the exposition, for Prometheus to scrape

The reporter keeps its own ``CollectorRegistry``. While its process runs, one telemetry
handler per event name updates that registry's metrics inline, in the process that emitted
the event: a counter's ``inc``, a histogram's ``observe``, a gauge's ``set``; label children
are looked up once per tag values and kept. The process detaches the handlers when it stops.

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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

from beamish._otp.gen_server.server import GenServer, Ok
from beamish._runtime.api import trap_exit
from beamish._runtime.events import EventName, attach_many, detach
from beamish._runtime.isolation import mark_shared
from beamish.telemetry._metrics import Metric

__all__ = ["PrometheusReporter"]

_log = logging.getLogger("beamish.telemetry")
_ids = itertools.count(1)
_LOOPBACK = ("127.", "::1", "::ffff:127.")
Allow = Callable[[Mapping[str, Any]], bool]


class _Series:
    """One definition's Prometheus metric and its label children, by tag values."""

    __slots__ = ("children", "definition", "max_series", "metric", "other", "update")

    def __init__(self, definition: Metric, registry: CollectorRegistry, max_series: int
                 ) -> None:
        self.definition = definition
        self.max_series = max_series
        self.other: tuple[str, ...] = ("_other",) * len(definition.tags)
        name, doc = definition.exposed_name, definition.description or definition.name
        labels = definition.tags
        kind = definition.kind
        metric: Any
        if kind == "counter":
            metric = Counter(name, doc, labels, registry=registry)
            self.update = "inc"
        elif kind == "sum":
            metric = Gauge(name, doc, labels, registry=registry)  # a sum may go down
            self.update = "inc"
        elif kind == "last_value":
            metric = Gauge(name, doc, labels, registry=registry)
            self.update = "set"
        elif kind == "summary":
            metric = Summary(name, doc, labels, registry=registry)
            self.update = "observe"
        else:
            metric = Histogram(name, doc, labels, registry=registry, buckets=definition.buckets)
            self.update = "observe"
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def record(self, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        definition = self.definition
        if definition.keep is not None and not definition.keep(metadata):
            return
        value = definition.value(measurements, metadata)
        if value is None:
            return
        if definition.tags:
            key = definition.labels(metadata)
            child = self.children.get(key)
            if child is None:
                if len(self.children) >= self.max_series:
                    if self.other not in self.children:
                        _log.warning(
                            "metric %s has %d label sets, its limit: further ones are "
                            "counted as %r (a tag with too many values?)",
                            definition.exposed_name, self.max_series, "_other",
                        )
                    key = self.other
                    child = self.children.get(key)
                if child is None:
                    child = self.children[key] = self.metric.labels(*key)
        else:
            child = self.metric
        getattr(child, self.update)(value)


@mark_shared  # its registry is made to be updated from anywhere (prometheus_client locks)
class PrometheusReporter:
    """Metric definitions kept in a Prometheus registry of their own (see the module)."""

    def __init__(self, metrics: Iterable[Metric], *,
                 registry: CollectorRegistry | None = None, max_series: int = 1_000) -> None:
        if type(max_series) is not int or max_series < 1:
            raise ValueError(f"max_series must be a positive int, got {max_series!r}")
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = tuple(metrics)
        names = [m.exposed_name for m in self.metrics]
        taken = {n for n in names if names.count(n) > 1}
        if taken:
            raise ValueError(f"two metrics would be exposed as {sorted(taken)}: rename one")
        self._by_event: dict[EventName, list[_Series]] = {}
        for definition in self.metrics:
            series = _Series(definition, self.registry, max_series)
            self._by_event.setdefault(definition.event_name, []).append(series)
        self.handler_id = f"beamish.prometheus.{next(_ids)}"

    # -- attaching ------------------------------------------------------------------------

    def attach(self) -> None:
        """Attach the handlers now (``spec()``'s process does it for you)."""
        by_event = self._by_event

        def handle(event: EventName, measurements: Mapping[str, Any],
                   metadata: Mapping[str, Any], config: Any) -> None:
            for series in by_event[event]:
                series.record(measurements, metadata)

        detach(self.handler_id)  # a restarted process attaches afresh
        attach_many(self.handler_id, list(by_event), handle)

    def detach(self) -> None:
        detach(self.handler_id)

    def spec(self, *, id: str = "telemetry.prometheus") -> dict[str, Any]:
        """A child spec: a process that attaches the handlers and detaches them on stop."""
        return {"id": id, "start": (_Attacher.start_link, (self,))}

    # -- serving --------------------------------------------------------------------------

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


class _Attacher(GenServer):
    """The reporter's process: its handlers are attached exactly while it runs."""

    def init(self, reporter: PrometheusReporter) -> Any:
        trap_exit(True)  # so that a supervisor's shutdown runs terminate
        reporter.attach()
        return Ok(reporter)

    def terminate(self, reason: Any, reporter: PrometheusReporter) -> None:
        reporter.detach()


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
