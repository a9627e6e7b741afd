"""OpenTelemetry traces from beamish's telemetry events (with ``opentelemetry-api``).

    tracing = OpenTelemetryTracer()       # the global tracer provider, or tracer_provider=
    children = [..., tracing.spec()]      # attaches while its process runs

- **A span per HTTP request** (kind SERVER), from ``beamish.endpoint.start`` to ``stop`` or
  ``exception``: named ``"GET /users/{id}"`` (the route's template once known, as the
  semantic conventions ask), with ``http.request.method``, ``url.path``, ``http.route``,
  ``http.response.status_code`` and beamish's ``request_id``; an error status for 5xx, and
  the exception recorded when the request crashed. Its parent is the W3C trace context of
  the request's ``traceparent``/``tracestate`` headers (the global propagator's, W3C by
  default).
- **A span per channel event** (kind SERVER) for ``beamish.channel.join``, ``handle_in``
  and ``handle_out``, named ``"Room handle_in"`` (the channel, not the client's event name,
  which goes in ``beamish.channel.event``: names stay few), timed by the event's duration,
  and parented by the trace context of the socket's connect request (its headers).

What is kept between events is bounded: spans of requests in flight and the connect
contexts of sockets, each at most ``max_open`` (default 100,000), the oldest dropped first.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from beamish._runtime.events import EventName, attach_many, detach
from beamish._runtime.isolation import mark_shared
from beamish.telemetry._attached import attached_spec

__all__ = ["OpenTelemetryTracer"]

_ids = itertools.count(1)
_REQUEST = [("beamish", "endpoint", "start"), ("beamish", "endpoint", "stop"),
            ("beamish", "endpoint", "exception")]
_CHANNEL = [("beamish", "socket", "connect"), ("beamish", "channel", "join"),
            ("beamish", "channel", "handle_in"), ("beamish", "channel", "handle_out")]


def _carrier(headers: Any) -> dict[str, str]:
    """ASGI headers as the propagator reads them (only the trace context's)."""
    found: dict[str, str] = {}
    for name, value in headers or ():
        if name in (b"traceparent", b"tracestate"):
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


@mark_shared  # its bounded tables are updated by every process that emits its events
class OpenTelemetryTracer:
    """Spans from beamish's events (see the module)."""

    def __init__(self, *, tracer_provider: Any = None, max_open: int = 100_000) -> None:
        if type(max_open) is not int or max_open < 1:
            raise ValueError(f"max_open must be a positive int, got {max_open!r}")
        self.tracer = trace.get_tracer("beamish", tracer_provider=tracer_provider)
        self.max_open = max_open
        self._requests: OrderedDict[Any, Any] = OrderedDict()  # request pid -> its span
        self._sockets: OrderedDict[Any, Context] = OrderedDict()  # transport pid -> context
        self.handler_id = f"beamish.opentelemetry.{next(_ids)}"

    def attach(self) -> None:
        detach(self.handler_id)
        attach_many(self.handler_id, _REQUEST + _CHANNEL, self._handle)

    def detach(self) -> None:
        detach(self.handler_id)

    def spec(self, *, id: str = "telemetry.opentelemetry") -> dict[str, Any]:
        """A child spec: a process that attaches the handlers and detaches them on stop."""
        return attached_spec(self, id)

    # -- the events -----------------------------------------------------------------------

    def _handle(self, event: EventName, measurements: Mapping[str, Any],
                metadata: Mapping[str, Any], config: Any) -> None:
        layer, kind = event[1], event[2]
        if layer == "endpoint":
            if kind == "start":
                self._request_started(metadata)
            else:
                self._request_ended(kind, metadata)
        elif layer == "socket":
            if metadata.get("result") == "ok":
                self._keep(self._sockets, metadata["pid"],
                           propagate.extract(_carrier(metadata.get("headers"))))
        else:
            self._channel_event(kind, measurements, metadata)

    def _keep(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        if len(table) > self.max_open:
            table.popitem(last=False)  # the oldest goes first

    def _request_started(self, metadata: Mapping[str, Any]) -> None:
        method = metadata.get("method") or "HTTP"
        span = self.tracer.start_span(
            method, kind=SpanKind.SERVER,
            context=propagate.extract(_carrier(metadata.get("headers"))),
            attributes={"http.request.method": method, "url.path": metadata.get("path") or "",
                        "beamish.request_id": metadata.get("request_id") or ""},
        )
        self._keep(self._requests, metadata.get("pid"), span)

    def _request_ended(self, kind: str, metadata: Mapping[str, Any]) -> None:
        span = self._requests.pop(metadata.get("pid"), None)
        if span is None:
            return
        route, status = metadata.get("route"), metadata.get("status") or 0
        if route:
            span.update_name(f"{metadata.get('method') or 'HTTP'} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if kind == "exception":
            reason = metadata.get("reason")
            if isinstance(reason, BaseException):
                span.record_exception(reason)
            span.set_status(Status(StatusCode.ERROR, metadata.get("kind")))
        elif status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _channel_event(self, kind: str, measurements: Mapping[str, Any],
                       metadata: Mapping[str, Any]) -> None:
        ended = time.time_ns()
        began = ended - int(measurements.get("duration", 0.0) * 1e9)
        attributes = {"beamish.channel.topic": metadata.get("topic") or "",
                      "beamish.channel": metadata.get("channel") or ""}
        if metadata.get("event") is not None:
            attributes["beamish.channel.event"] = str(metadata["event"])
        if metadata.get("result") is not None:
            attributes["beamish.channel.result"] = str(metadata["result"])
        span = self.tracer.start_span(
            f"{metadata.get('channel') or 'Channel'} {kind}", kind=SpanKind.SERVER,
            context=self._sockets.get(metadata.get("transport_pid")), start_time=began,
            attributes=attributes,
        )
        if metadata.get("result") in ("error", "crashed"):
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=ended)
