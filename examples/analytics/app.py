"""The real-time dashboard: its supervision tree, its page and its endpoint.

Run it alone with ``beamish run examples.analytics.app:Analytics`` and open
http://127.0.0.1:4000, or with the other examples under ``make run`` (at ``/analytics/``). ::

    analytics.supervisor (rest_for_one)
    ├── PubSub "analytics.pubsub"
    ├── Replica                  the latest frame and checkpoint, on every node
    └── Singleton "analytics.pipeline"
        └── Pipeline             events -> counters -> frames, once per cluster (pipeline.py)

Settings (environment variables): ``ANALYTICS_RATE``, events made a second (10,000; the
benchmark runs 50,000), ``ANALYTICS_INTERVAL``, seconds between two frames to the viewers
(0.5), ``ANALYTICS_MAX_UNAPPLIED``, batches the source keeps for a counter that is behind
(1,500: 30 s of ticks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.web_assets import check_vendor, serve_vendor
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from beamish import Application, CallError, Pid, Settings, Supervisor
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.web import Endpoint, Router

from . import pipeline
from .channels import PUBSUB, AnalyticsSocket

HERE = Path(__file__).resolve().parent


class AnalyticsSettings(Settings):
    rate: float = 10_000.0
    interval: float = 0.5
    max_unapplied: int = 1_500


class Analytics(Application):
    settings: AnalyticsSettings  # ANALYTICS_RATE, ANALYTICS_INTERVAL, ANALYTICS_MAX_UNAPPLIED

    async def start(self, start_type: Any, args: Any) -> Pid:
        check_vendor()
        s = self.settings
        if not 0 <= s.rate <= 1_000_000 or s.interval <= 0 or s.max_unapplied < 1:
            raise ValueError(
                "ANALYTICS_RATE is 0 to 1,000,000 events a second, ANALYTICS_INTERVAL a "
                "positive number of seconds, ANALYTICS_MAX_UNAPPLIED at least 1; got "
                f"{s.rate}, {s.interval}, {s.max_unapplied}"
            )
        children = [
            (PubSub, {"name": PUBSUB}),
            (pipeline.Replica, PUBSUB),
            Singleton.spec(pipeline.Pipeline, (PUBSUB, s.rate, s.interval, s.max_unapplied),
                           name=pipeline.PIPELINE),
        ]
        return await Supervisor.start_link(
            children, strategy="rest_for_one", name="analytics.supervisor"
        )


router = Router()


@router.get("/", name="analytics")
async def index(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


@router.get("/stats", name="analytics_stats")
async def stats(request: Request) -> Response:
    """What was made and counted, per metric (the benchmark checks that they match)."""
    try:
        return JSONResponse(await pipeline.stats())
    except CallError:  # its node went: another takes it over within a tick
        return JSONResponse({"error": "the pipeline is moving to another node; try again"},
                            status_code=503)


router.static("/assets", directory=HERE / "static", name="analytics_assets")
serve_vendor(router)

SOCKETS = {"/socket": AnalyticsSocket}
endpoint = Endpoint(router=router, application=Analytics, sockets=SOCKETS)
