"""The chat application: its supervision tree, its pages and its endpoint.

Run it with ``make run``, or ``beamish run examples.chat.app:Chat`` from the repository root,
and open http://127.0.0.1:4000. ::

    chat.supervisor (rest_for_one)
    ├── PubSub "chat.pubsub"            broadcasts, presence diffs
    ├── ChatPresence                   who is in each room
    ├── Pool "chat.db"                  SQLite connections, each in a process of its own
    ├── (migrations)                   applies migrations/*.sql once, then stops
    ├── Rooms                          a process per room, with its history (rooms.py)
    ├── (metrics)                      beamish's default metrics, at /metrics (this machine)
    ├── Poller                         the node's and the machine's figures, every 5 s
    └── (dashboard agent)              shows this node to the dashboards of the others

Settings (environment variables): ``CHAT_DATABASE``, the SQLite file the messages are kept
in (``var/chat.sqlite3`` in the repository; ``:memory:`` keeps them only while the node
runs), ``CHAT_HISTORY``, the messages a join replies with (50), and ``CHAT_MAX_ROOMS``, how
many rooms may be open at once (1000).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.web_assets import PHOENIX, UPLOT, check_vendor, serve_vendor
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from beamish import Application, Pid, Settings, Supervisor
from beamish.dashboard import Dashboard
from beamish.data import Pool, SQLite
from beamish.pubsub import PubSub
from beamish.telemetry import Poller, PrometheusReporter, default_metrics
from beamish.web import Endpoint, Router

from . import rooms
from .channels import PUBSUB, ChatPresence, UserSocket

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
__all__ = ["PHOENIX", "Chat", "endpoint", "router"]  # PHOENIX: where npm put the client

METRICS = PrometheusReporter(default_metrics())


class ChatSettings(Settings):
    database: str = str(HERE.parents[1] / "var" / "chat.sqlite3")
    history: int = 50
    max_rooms: int = 1000


class Chat(Application):
    settings: ChatSettings  # CHAT_HISTORY, CHAT_MAX_ROOMS

    async def start(self, start_type: Any, args: Any) -> Pid:
        check_vendor()
        database = self.settings.database
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        db = Pool(SQLite(database), name="chat.db")
        room_options = (PUBSUB, self.settings.history, self.settings.max_rooms, db)
        children = [
            (PubSub, {"name": PUBSUB}),
            ChatPresence,
            db.child_spec(),
            db.migrator(MIGRATIONS),
            (rooms.Rooms, room_options),
            METRICS.spec(),
            Poller.spec(period=5.0),
            DASHBOARD.spec(),  # lets the dashboards of the other nodes show this one
        ]
        return await Supervisor.start_link(
            children, strategy="rest_for_one", name="chat.supervisor"
        )


router = Router()


@router.get("/", name="index")
async def index(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


@router.get("/health", name="health")
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "rooms": rooms.count()})


router.mount("/metrics", METRICS.app(), name="metrics")  # Prometheus; this machine only
# The live dashboard, for this machine only and without credentials: the demo's
# development mode (an application of yours passes allow=a check of its own).
DASHBOARD = Dashboard(
    pubsub=PUBSUB, allow="local", title="chat", metrics=METRICS,
    chart_assets=UPLOT if UPLOT.is_dir() else None,
)
router.mount("/dashboard", DASHBOARD.app(), name="dashboard")
router.static("/assets", directory=HERE / "static", name="assets")
serve_vendor(router, uplot=False)  # the stock phoenix client, from npm's install


endpoint = Endpoint(
    router=router, application=Chat, sockets={"/socket": UserSocket}, pubsub=PUBSUB
)
