"""OpenTelemetry spans from beamish's events: requests and channel events, with the W3C
trace context of the request or of the socket's connect (the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from beamish.telemetry import OpenTelemetryTracer
from beamish.testing import ASGIClient, start_supervised
from tests.web.endpoint_app import make_endpoint
from tests.web.test_ws_protocol import joined, serving

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


async def tracing() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await start_supervised(OpenTelemetryTracer(tracer_provider=provider).spec())
    return exporter


async def test_a_request_is_a_span_named_by_its_route_in_the_callers_trace():
    exporter = await tracing()
    async with ASGIClient(make_endpoint()) as client:
        ok = await client.get("/users/7", headers={"traceparent": TRACEPARENT})
        await client.get("/crash")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    user = spans["GET /users/{id}"]
    assert user.kind is SpanKind.SERVER
    assert format(user.context.trace_id, "032x") == TRACE
    assert format(user.parent.span_id, "016x") == PARENT
    assert user.attributes["http.response.status_code"] == 200
    assert user.attributes["beamish.request_id"] == ok.headers["x-request-id"]
    crash = spans["GET /crash"]
    assert crash.status.status_code is StatusCode.ERROR
    assert crash.parent is None  # no traceparent: a trace of its own
    assert [e.name for e in crash.events] == ["exception"]


async def test_channel_events_are_spans_in_the_trace_of_the_sockets_connect():
    exporter = await tracing()
    async with serving() as url:
        ws = await joined(url, "room:otel", additional_headers={"traceparent": TRACEPARENT})
        await ws.send(orjson.dumps(["1", "2", "room:otel", "say", {"n": 1}]).decode())
        await ws.recv()
        await ws.recv()
        await ws.close()
        for _ in range(100):
            if any(s.name == "Room handle_in" for s in exporter.get_finished_spans()):
                break
            await asyncio.sleep(0.01)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    join, handled = spans["Room join"], spans["Room handle_in"]
    assert join.attributes["beamish.channel.result"] == "ok"
    assert handled.attributes["beamish.channel.event"] == "say"
    assert handled.attributes["beamish.channel.topic"] == "room:otel"
    for span in (join, handled):
        assert format(span.context.trace_id, "032x") == TRACE
        assert span.end_time >= span.start_time
