"""The social feed: users, follows, posts, likes and replies; a home timeline that updates
live; who is online. Its tree, its page and its endpoint.

Run it alone with ``beamish run examples.feed.app:Feed`` and open http://127.0.0.1:4000, or
with the other examples under ``make run`` (at ``/feed/``). ::

    feed.supervisor (rest_for_one)
    ├── PubSub "feed.pubsub"
    ├── FeedPresence           who is online
    ├── Pool "feed.db"         SQLite (the default) or PostgreSQL (FEED_DATABASE_URL)
    ├── (migrations)           migrations/<the database>/*.sql, once
    └── Timelines              a process per online user's home timeline (timelines.py)

Settings (environment variables): ``FEED_DATABASE``, the SQLite file (``var/feed.sqlite3``;
``:memory:`` keeps nothing), ``FEED_DATABASE_URL``, a PostgreSQL DSN to use instead
(``postgresql://postgres@127.0.0.1:5432/test``), ``FEED_MAX_ONLINE``, timelines running at
once (100,000).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.web_assets import check_vendor, serve_vendor
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from beamish import Application, Pid, Settings, Supervisor
from beamish.data import Pool, Postgres, SQLite
from beamish.pubsub import PubSub
from beamish.web import Endpoint, Router

from . import channels, timelines
from .channels import PUBSUB, FeedPresence, FeedSocket

HERE = Path(__file__).resolve().parent


class FeedSettings(Settings):
    database: str = str(HERE.parents[1] / "var" / "feed.sqlite3")
    database_url: str = ""
    max_online: int = 100_000


class Feed(Application):
    settings: FeedSettings  # FEED_DATABASE, FEED_DATABASE_URL, FEED_MAX_ONLINE

    async def start(self, start_type: Any, args: Any) -> Pid:
        check_vendor()
        s = self.settings
        if s.database_url:
            db = Pool(Postgres(s.database_url), name="feed.db")
            migrations = HERE / "migrations" / "postgresql"
        else:
            if s.database != ":memory:":
                Path(s.database).parent.mkdir(parents=True, exist_ok=True)
            db = Pool(SQLite(s.database), name="feed.db")
            migrations = HERE / "migrations" / "sqlite"
        channels.DB["pool"] = db
        children = [
            (PubSub, {"name": PUBSUB}),
            FeedPresence,
            db.child_spec(),
            db.migrator(migrations),
            (timelines.Timelines, (PUBSUB, db, s.max_online)),
        ]
        return await Supervisor.start_link(
            children, strategy="rest_for_one", name="feed.supervisor"
        )


router = Router()


@router.get("/", name="feed")
async def index(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


@router.get("/health", name="feed_health")
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "online": timelines.online_count()})


router.static("/assets", directory=HERE / "static", name="feed_assets")
serve_vendor(router, uplot=False)

SOCKETS = {"/socket": FeedSocket}
endpoint = Endpoint(router=router, application=Feed, sockets=SOCKETS)
