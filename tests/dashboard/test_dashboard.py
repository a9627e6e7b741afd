"""The live dashboard: access, its page, and its channel over a real server and client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re

import httpx
import orjson
import pytest
from starlette.responses import PlainTextResponse
from websockets.asyncio.client import connect

import beamish
from beamish import Application, GenServer, Ok, Supervisor
from beamish.dashboard import Dashboard
from beamish.data import Pool, SQLite
from beamish.pubsub import PubSub
from beamish.telemetry import PrometheusReporter, default_metrics
from beamish.testing import ASGIClient
from beamish.web import Endpoint, EndpointServer, Router

log = logging.getLogger("tests.dashboard")
METRICS = PrometheusReporter(default_metrics())


async def work(request):
    log.warning("working on it")
    return PlainTextResponse("done")


def endpoint_with(dashboard: Dashboard) -> Endpoint:
    router = Router()
    router.mount("/dashboard", dashboard.app())
    router.add("/work", work)
    return Endpoint(router=router, application=Watched)


class Sleeper(GenServer):
    def init(self, arg):
        return Ok({"naps": arg})


class Watched(Application):
    async def start(self, start_type, args):
        return await Supervisor.start_link([
            (PubSub, {"name": "dash.ps"}),
            Pool(SQLite(":memory:"), name="dash.db", size=1).child_spec(),
            METRICS.spec(),
            {"id": "sleeper", "start": (functools.partial(Sleeper.start_link, name="sleeper"),
                                        (3,))},
        ], name="watched")


async def test_the_dashboard_is_off_unless_allowed():
    async with ASGIClient(endpoint_with(Dashboard(pubsub="dash.ps"))) as client:
        page = await client.get("/dashboard/")
        assert page.status_code == 403 and "Dashboard(allow=...)" in page.text
    local = Dashboard(pubsub="dash.ps", allow="local")
    async with ASGIClient(endpoint_with(local), client=("203.0.113.7", 5000)) as remote:
        assert (await remote.get("/dashboard/")).status_code == 403
    picky = Dashboard(pubsub="dash.ps", allow=lambda scope: scope["path"].endswith("/"))
    async with ASGIClient(endpoint_with(picky), client=("203.0.113.7", 5000)) as client:
        assert (await client.get("/dashboard/")).status_code == 200
        assert (await client.get("/dashboard/dashboard.js")).status_code == 403


async def test_the_page_carries_a_token_and_says_when_it_has_no_credentials():
    async with ASGIClient(endpoint_with(Dashboard(pubsub="dash.ps", allow="local"))) as client:
        page = await client.get("/dashboard/")
        assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
        assert "development mode" in page.text
        assert re.search(r'data-token="[\w.-]{20,}"', page.text)
        script = await client.get("/dashboard/dashboard.js")
        assert script.status_code == 200 and "dashboard:live" in script.text
        assert (await client.post("/dashboard/")).status_code == 405
        assert (await client.get("/dashboard/nothing")).status_code == 404


@contextlib.asynccontextmanager
async def live(dashboard: Dashboard):
    """The dashboard's channel, joined as the page joins it, over a real server."""
    server = EndpointServer(endpoint_with(dashboard), port=0, graceful_timeout=2)
    await server.start()
    try:
        async with ASGIClient(endpoint_with(dashboard)) as client:
            token = re.search(r'data-token="([^"]+)"', (await client.get("/dashboard/")).text)
        base = server.url.replace("http", "ws") + "/dashboard/live/websocket?vsn=2.0.0"
        async with connect(f"{base}&token={token.group(1)}") as ws:
            await ws.send(orjson.dumps(["1", "1", "dashboard:live", "phx_join", {}]).decode())
            yield ws, base
    finally:
        await server.stop()


async def events_for(ws, seconds):
    """The events pushed within ``seconds``."""
    seen = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            seen.append(orjson.loads(await asyncio.wait_for(ws.recv(), left))[3])
        except TimeoutError:
            break
    return seen


async def next_push(ws, event, accept=lambda payload: True):
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame[3] == event and accept(frame[4]):
            return frame[4]


async def test_the_channel_pushes_home_and_processes_and_kills_what_it_showed():
    async with live(Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)) as (ws, base):
        home = await next_push(ws, "home")
        assert home["processes"] >= 3 and home["process_limit"] > home["processes"]
        assert home["memory"] > 0 and home["os_memory_total"] > 0
        assert "processes" not in await events_for(ws, 0.5)  # home shown: no table read
        await ws.send(orjson.dumps(["1", "9", "dashboard:live", "view",
                                    {"view": "processes"}]).decode())  # pushed while shown
        await next_push(ws, "processes")
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "query",
                                    {"search": "sleeper", "sort": "memory",
                                     "descending": True}]).decode())
        page = await next_push(ws, "processes", lambda p: p["search"] == "sleeper")
        [row] = page["rows"]
        assert row["name"] == "sleeper" and row["pid"].startswith("<0.")
        await ws.send(orjson.dumps(["1", "3", "dashboard:live", "details",
                                    {"pid": row["pid"]}]).decode())
        reply = await next_push(ws, "phx_reply", lambda p: "state" in p.get("response", {}))
        assert "naps" in reply["response"]["state"]
        await ws.send(orjson.dumps(["1", "4", "dashboard:live", "kill",
                                    {"pid": "<0.0.0>"}]).decode())  # never shown: refused
        refused = await next_push(ws, "phx_reply", lambda p: p["status"] == "error")
        assert "not on the page" in refused["response"]["reason"]
        await ws.send(orjson.dumps(["1", "5", "dashboard:live", "kill",
                                    {"pid": row["pid"]}]).decode())
        restarted = await next_push(
            ws, "processes", lambda p: len(p["rows"]) == 1 and p["rows"][0]["pid"] != row["pid"]
        )
        assert restarted["rows"][0]["name"] == "sleeper"  # its supervisor started another
        assert beamish.whereis("sleeper") is not None


async def test_a_socket_without_the_pages_token_or_from_another_origin_is_refused():
    async with live(Dashboard(pubsub="dash.ps", allow="local")) as (ws, base):
        await next_push(ws, "home")
        for url, headers in ((f"{base}&token=forged", {}),
                             (base, {}),
                             (f"{base}&token=x", {"Origin": "https://evil.example"})):
            try:
                async with connect(url, additional_headers=headers) as other:
                    await other.recv()
                raise AssertionError(f"{url} was let in")
            except Exception as exc:  # refused at the handshake (403)
                assert "403" in str(exc) or "HTTP" in str(exc), exc


def find(node, name):
    """The node named ``name`` in a drawn tree (depth first), or None."""
    if node["name"] == name or node["id"] == name:
        return node
    for child in node["children"]:
        found = find(child, name)
        if found is not None:
            return found
    return None


async def test_the_applications_view_draws_each_tree_and_a_restart_shows_a_new_pid():
    async with live(Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)) as (ws, base):
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "view",
                                    {"view": "applications"}]).decode())
        pushed = await next_push(ws, "applications")
        [app] = [a for a in pushed["applications"] if a["name"] == "watched"]
        root = app["tree"]
        assert root["type"] == "supervisor" and root["name"] == "watched"
        sleeper = find(root, "sleeper")
        assert sleeper is not None and sleeper["type"] == "worker"
        assert len(root["children"]) == 4  # the PubSub, the pool, the metrics, the sleeper
        await ws.send(orjson.dumps(["1", "3", "dashboard:live", "kill",
                                    {"pid": sleeper["pid"]}]).decode())  # drawn: allowed
        again = await next_push(ws, "applications", lambda p: any(
            (s := find(a["tree"], "sleeper")) is not None and s["pid"] != sleeper["pid"]
            for a in p["applications"] if a["name"] == "watched"))
        assert again["applications"]


async def test_the_sockets_view_counts_connections_and_their_topics():
    async with live(Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)) as (ws, base):
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "view",
                                    {"view": "sockets"}]).decode())
        page = await next_push(ws, "sockets")
        assert page["total"] == 1  # the page's own connection
        assert page["by_socket"] == {"DashboardSocket over websocket": 1}
        assert page["topics"] == [{"topic": "dashboard:live", "channels": 1}]
        [connection] = page["connections"]
        assert connection["topics"] == ["dashboard:live"] and connection["channels"] == 1
        # plain processes subscribed to a PubSub topic show too, by PubSub
        listeners = [beamish.spawn(_listener, "news") for _ in range(3)]
        page = await next_push(ws, "sockets", lambda p: any(
            t["topic"] == "news" for q in p["pubsub"] for t in q["busiest"]))
        [dash] = [q for q in page["pubsub"] if q["pubsub"] == "dash.ps"]
        assert {"topic": "news", "subscribers": 3} in dash["busiest"]
        assert dash["topics"] >= 1 and dash["subscriptions"] >= 3
        for pid in listeners:
            beamish.exit(pid, "kill")


async def _listener(topic):
    PubSub.subscribe("dash.ps", topic)
    await beamish.receive()


async def test_the_data_view_shows_each_pools_statistics():
    async with live(Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)) as (ws, base):
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "view",
                                    {"view": "data"}]).decode())
        page = await next_push(ws, "data", lambda p: p["pools"]
                               and p["pools"][0]["connected"] == 1)
        [pool] = page["pools"]
        assert (pool["pool"], pool["size"], pool["in_use"], pool["waiting"]) == (
            "dash.db", 1, 0, 0)


async def test_the_logs_view_streams_the_records_that_match_with_their_request_id():
    async with live(Dashboard(pubsub="dash.ps", allow="local")) as (ws, base):
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "logs",
                                    {"match": "working", "level": "warning"}]).decode())
        await next_push(ws, "phx_reply", lambda p: p["status"] == "ok")
        http = base.replace("ws://", "http://", 1).split("/dashboard")[0]
        async with httpx.AsyncClient() as client:
            response = await client.get(http + "/work")
        line = await next_push(ws, "log")
        assert line["message"] == "working on it" and line["level"] == "warning"
        assert line["request_id"] == response.headers["x-request-id"]
        assert line["pid"].startswith("<0.")
        await beamish.offload(log.warning, "working in a thread")  # sent from the loop
        assert (await next_push(ws, "log"))["message"] == "working in a thread"
        log.warning("something else")  # does not match: not sent
        log.info("working, but below the level")  # not sent either
        log.error("working again")
        assert (await next_push(ws, "log"))["message"] == "working again"
        await ws.send(orjson.dumps(["1", "3", "dashboard:live", "view",
                                    {"view": "home"}]).decode())  # leaving stops the watch
        await next_push(ws, "home")
    assert not [h for h in logging.getLogger().handlers if type(h).__name__ == "_Tap"]


async def test_the_metrics_view_pushes_the_reporters_figures():
    dashboard = Dashboard(pubsub="dash.ps", allow="local", refresh=0.2, metrics=METRICS)
    async with live(dashboard) as (ws, base):
        http = base.replace("ws://", "http://", 1).split("/dashboard")[0]
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                assert (await client.get(http + "/work")).status_code == 200
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "view",
                                    {"view": "metrics"}]).decode())

        def requests_of(payload):
            return next(m for m in payload["metrics"]
                        if m["name"] == "beamish_endpoint_requests")

        pushed = await next_push(ws, "metrics", lambda p: any(
            s["labels"]["route"] == "/work" for s in requests_of(p)["series"]))
        [work] = [s for s in requests_of(pushed)["series"] if s["labels"]["route"] == "/work"]
        assert work["value"] >= 3 and work["labels"]["status"] == "200"
        assert requests_of(pushed)["series_total"] >= len(requests_of(pushed)["series"])
        timed = next(m for m in pushed["metrics"]
                     if m["name"] == "beamish_endpoint_duration_seconds")
        assert timed["kind"] == "distribution" and timed["series"][0]["count"] >= 3


def test_chart_assets_must_be_uplots_dist(tmp_path):
    with pytest.raises(ValueError, match="uPlot's dist directory"):
        Dashboard(pubsub="dash.ps", chart_assets=tmp_path)


async def test_basic_auth_challenges_then_lets_in_the_right_credentials():
    guarded = Dashboard(pubsub="dash.ps", allow=Dashboard.basic_auth("ops", "s3cret"))
    async with ASGIClient(endpoint_with(guarded)) as client:
        challenged = await client.get("/dashboard/")
        assert challenged.status_code == 401
        assert challenged.headers["www-authenticate"].startswith("Basic ")
        assert (await client.get("/dashboard/", auth=("ops", "wrong"))).status_code == 401
        assert (await client.get("/dashboard/", auth=("ops", "s3cret"))).status_code == 200
    with pytest.raises(ValueError, match="user and a password"):
        Dashboard.basic_auth("ops", "")


async def start_agent():
    """Node b's tree runs the dashboard's agent (its own Dashboard: nothing is sent)."""
    return await Supervisor.start([Dashboard(pubsub="dash.ps").spec()])


@pytest.mark.beamish(node="a@test")
async def test_a_page_can_look_at_another_node_of_the_cluster_read_only():
    from beamish.testing import local_cluster

    dashboard = Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)
    async with local_cluster("b@test") as cluster, live(dashboard) as (ws, base):
        await cluster.node("b@test").run(start_agent)
        here = await next_push(ws, "home")
        assert here["viewing"] == beamish.node() and "b@test" in here["nodes"]
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "node",
                                    {"node": "b@test"}]).decode())
        there = await next_push(ws, "home", lambda p: p["viewing"] == "b@test")
        assert there["node"] == "b@test" and there["processes"] >= 1
        await ws.send(orjson.dumps(["1", "3", "dashboard:live", "view",
                                    {"view": "processes"}]).decode())
        rows = await next_push(ws, "processes", lambda p: p["rows"])
        await ws.send(orjson.dumps(["1", "4", "dashboard:live", "kill",
                                    {"pid": rows["rows"][0]["pid"]}]).decode())
        refused = await next_push(ws, "phx_reply", lambda p: p["status"] == "error")
        assert "read-only" in refused["response"]["reason"]
        await ws.send(orjson.dumps(["1", "5", "dashboard:live", "node",
                                    {"node": "nowhere@test"}]).decode())
        unknown = await next_push(ws, "phx_reply", lambda p: p["status"] == "error")
        assert "no such node" in unknown["response"]["reason"]


async def test_the_sockets_view_counts_who_is_present_by_topic():
    from beamish.pubsub import Tracker

    async with live(Dashboard(pubsub="dash.ps", allow="local", refresh=0.2)) as (ws, base):
        tracker = await Tracker.start_link(name="dash.tracker", pubsub="dash.ps")
        for key in ("ada", "bob"):
            await Tracker.track("dash.tracker", beamish.self(), "room:1", key, {})
        await ws.send(orjson.dumps(["1", "2", "dashboard:live", "view",
                                    {"view": "sockets"}]).decode())
        page = await next_push(ws, "sockets")
        [tracked] = [p for p in page["presences"] if p["tracker"] == "dash.tracker"]
        assert tracked["present"] == 2 and tracked["fullest"] == [
            {"topic": "room:1", "keys": 2}]
        await Supervisor.stop(tracker)
