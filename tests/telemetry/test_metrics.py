"""Metric definitions, the Prometheus reporter and its /metrics app, and the poller."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from beamish import telemetry
from beamish.telemetry import (
    Poller,
    PrometheusReporter,
    counter,
    default_metrics,
    distribution,
    last_value,
    summary,
)
from beamish.testing import ASGIClient, capture_events, start_supervised, stop_supervised
from beamish.web import Endpoint, Router
from tests.web.endpoint_app import make_endpoint


def samples(reporter: PrometheusReporter) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    text = reporter.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_a_definition_reads_its_event_and_measurement_from_its_name():
    metric = distribution("beamish.endpoint.stop.duration", tags=["route"], unit="seconds")
    assert metric.event_name == ("beamish", "endpoint", "stop")
    assert metric.measurement == "duration"
    assert metric.exposed_name == "beamish_endpoint_stop_duration_seconds"
    assert metric.labels({"route": "/x", "other": 1}) == ("/x",)
    assert counter("app.orders.placed").event_name == ("app", "orders")
    with pytest.raises(ValueError, match="dotted lowercase"):
        counter("App Orders")
    with pytest.raises(ValueError, match="distinct buckets"):
        distribution("app.job.stop.duration", buckets=[1, 1])


async def test_the_reporter_counts_requests_by_route_and_times_them():
    reporter = PrometheusReporter(default_metrics())
    await start_supervised(reporter.spec())
    async with ASGIClient(make_endpoint()) as client:
        for _ in range(2):
            assert (await client.get("/users/7")).status_code == 200
        assert (await client.get("/crash")).status_code == 500
    got = samples(reporter)
    route = (("method", "GET"), ("route", "/users/{id}"), ("status", "200"))
    assert got[("beamish_endpoint_requests_total", route)] == 2
    assert got[("beamish_endpoint_crashes_total",
                (("kind", "ValueError"), ("method", "GET"), ("route", "/crash")))] == 1
    timed = (("method", "GET"), ("route", "/users/{id}"))
    assert got[("beamish_endpoint_duration_seconds_count", timed)] == 2
    assert got[("beamish_endpoint_duration_seconds_bucket", (("le", "+Inf"), *timed))] == 2
    await stop_supervised("telemetry.prometheus")
    assert telemetry.list_handlers(("beamish", "endpoint")) == []  # detached with it


async def test_gauges_sums_and_summaries_follow_their_events():
    reporter = PrometheusReporter([
        last_value("app.queue.depth.size", tags=["queue"]),
        telemetry.sum("app.queue.depth.added", tags=["queue"]),
        summary("app.job.stop.duration", unit="seconds"),
        counter("app.job.failed", event_name=("app", "job", "stop"),
                keep=lambda metadata: metadata.get("failed", False)),
    ])
    reporter.attach()
    try:
        for size, added in ((5, 5), (3, 2)):
            telemetry.execute(("app", "queue", "depth"), {"size": size, "added": added},
                              {"queue": "mail"})
        telemetry.execute(("app", "job", "stop"), {"duration": 0.5}, {})
        telemetry.execute(("app", "job", "stop"), {"duration": 1.5}, {"failed": True})
    finally:
        reporter.detach()
    got = samples(reporter)
    assert got[("app_queue_depth_size", (("queue", "mail"),))] == 3
    assert got[("app_queue_depth_added", (("queue", "mail"),))] == 7
    assert got[("app_job_stop_duration_seconds_sum", ())] == 2.0
    assert got[("app_job_stop_duration_seconds_count", ())] == 2
    assert got[("app_job_failed_total", ())] == 1


async def test_tag_values_past_max_series_are_counted_as_other(caplog):
    reporter = PrometheusReporter([counter("app.hit", event_name=("app", "hit"),
                                           tags=["who"])], max_series=3)
    reporter.attach()
    try:
        for who in ["a", "b", "c", "d", "e", "a"]:
            telemetry.execute(("app", "hit"), {}, {"who": who})
    finally:
        reporter.detach()
    got = samples(reporter)
    assert got[("app_hit_total", (("who", "a"),))] == 2
    assert got[("app_hit_total", (("who", "_other"),))] == 2
    assert ("app_hit_total", (("who", "e"),)) not in got
    assert caplog.text.count("has 3 label sets, its limit") == 1


async def test_tag_values_are_labelled_as_text_whatever_form_they_come_in():
    # The reporter finds a series by the tag values as they come and makes them text once:
    # an int and its text share a series, a missing tag is "", an unhashable value is
    # labelled by its text, and a metric with no tags counts from zero.
    reporter = PrometheusReporter([
        counter("app.hit", event_name=("app", "hit"), tags=["code", "who"]),
        distribution("app.hit.took", event_name=("app", "hit"), measurement="took",
                     tags=["who"], buckets=[1, 10]),
        counter("app.miss", event_name=("app", "miss")),
    ])
    reporter.attach()
    try:
        for metadata in ({"code": 200, "who": "a"}, {"code": "200", "who": "a"},
                         {"who": "a"}, {"code": [4, 0, 4], "who": "b"},
                         {"code": [4, 0, 4], "who": "b"}):
            telemetry.execute(("app", "hit"), {"took": 5}, metadata)
        # without its measurement, an event is counted but not timed
        telemetry.execute(("app", "hit"), {}, {"code": 200, "who": "a"})
    finally:
        reporter.detach()
    got = samples(reporter)
    assert got[("app_hit_total", (("code", "200"), ("who", "a")))] == 3
    assert got[("app_hit_total", (("code", ""), ("who", "a")))] == 1
    assert got[("app_hit_total", (("code", "[4, 0, 4]"), ("who", "b")))] == 2
    assert got[("app_hit_took_count", (("who", "a"),))] == 3
    assert got[("app_hit_took_bucket", (("le", "1.0"), ("who", "a")))] == 0
    assert got[("app_hit_took_bucket", (("le", "10.0"), ("who", "a")))] == 3
    assert got[("app_hit_took_sum", (("who", "b"),))] == 10
    assert got[("app_miss_total", ())] == 0


async def test_the_metrics_app_answers_this_machine_only_by_default():
    reporter = PrometheusReporter([counter("app.hit", event_name=("app", "hit"))])
    router = Router()
    router.mount("/metrics", reporter.app())
    endpoint = Endpoint(router=router)
    async with ASGIClient(endpoint) as local:
        response = await local.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "app_hit_total 0.0" in response.text
        assert (await local.post("/metrics")).status_code == 405
    async with ASGIClient(endpoint, client=("203.0.113.9", 4000)) as remote:
        refused = await remote.get("/metrics")
        assert refused.status_code == 403 and "this machine only" in refused.text
    open_router = Router()
    open_router.mount("/metrics", reporter.app(allow=lambda scope: True))
    async with ASGIClient(Endpoint(router=open_router), client=("203.0.113.9", 4000)) as c:
        assert (await c.get("/metrics")).status_code == 200


async def test_the_poller_measures_the_node_and_the_machine():
    names = [("beamish", "runtime", "stats"), ("beamish", "os", "stats")]
    with capture_events(*names) as seen:
        await start_supervised(Poller.spec(period=0.05))
        while len({e.event for e in seen}) < 2:
            await asyncio.sleep(0.01)
    runtime = next(e for e in seen if e.event[1] == "runtime")
    host = next(e for e in seen if e.event[1] == "os")
    assert runtime.measurements["processes"] >= 2  # the test and the poller
    assert runtime.measurements["memory"] > 10_000_000
    assert 0 <= runtime.measurements["loop_lag"] < 1
    assert host.measurements["memory_total"] >= host.measurements["memory_available"] > 0
    assert 0 <= host.measurements["cpu_percent"] <= 100
    assert runtime.metadata["node"] == host.metadata["node"]
    with pytest.raises(ValueError, match="period"):
        Poller.spec(period=0)
