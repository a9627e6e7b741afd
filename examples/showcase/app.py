"""All the examples in one node, behind a landing page: what ``make run`` starts.

``beamish run examples.showcase.app:Showcase``, then open http://127.0.0.1:4000. Each
example is an application of its own (its own supervision tree and PubSub); this one
depends on them, so ``beamish run`` starts them first, and serves their routers and
sockets from one endpoint::

    /                the landing page
    /chat/           rooms with presence and history  (examples.chat)
    /feed/           a social feed: follows, posts, likes, replies, live timelines  (examples.feed)
    /analytics/      a real-time dashboard of business events  (examples.analytics)
    /stream/         one broadcaster, many viewers, a chat and a viewer count  (examples.stream)
    /dashboard/      beamish's own live dashboard: every process, the node, the metrics
    /metrics         Prometheus

Each socket names its application's PubSub (the socket option ``pubsub``), so one endpoint
serves them all; each page finds its socket under its own path, so it works mounted here or
served alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from examples.analytics import app as analytics
from examples.chat import app as chat
from examples.feed import app as feed
from examples.stream import app as stream
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from beamish import Application, Pid, Supervisor
from beamish.web import Endpoint, Router

HERE = Path(__file__).resolve().parent

# (mount, the example's router, its sockets): each served under its mount
EXAMPLES = (
    ("/chat", chat.router, {"/socket": chat.UserSocket}),
    ("/feed", feed.router, feed.SOCKETS),
    ("/analytics", analytics.router, analytics.SOCKETS),
    ("/stream", stream.router, stream.SOCKETS),
)


class Showcase(Application):
    dependencies: ClassVar = (chat.Chat, feed.Feed, analytics.Analytics, stream.Stream)

    async def start(self, start_type: Any, args: Any) -> Pid:
        # the examples run in their own trees; this application only serves them
        return await Supervisor.start_link([], strategy="one_for_one", name="showcase.sup")


router = Router()


@router.get("/", name="home")
async def home(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


def _to_slash(path: str) -> Any:
    async def redirect(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{path}/{query}", status_code=308)

    return redirect


for mount, example_router, _ in EXAMPLES:
    # a page's relative links (assets/, socket) need the trailing slash
    router.get(mount, name=f"{mount[1:]}_home")(_to_slash(mount))
    router.mount(mount, example_router, name=mount[1:])
router.get("/dashboard", name="dashboard_home")(_to_slash("/dashboard"))
router.mount("/dashboard", chat.DASHBOARD.app(), name="dashboard")
router.mount("/metrics", chat.METRICS.app(), name="metrics")
router.static("/assets", directory=HERE / "static", name="showcase_assets")

SOCKETS = {mount + path: socket for mount, _, sockets in EXAMPLES
           for path, socket in sockets.items()}
endpoint = Endpoint(router=router, application=Showcase, sockets=SOCKETS, pubsub=chat.PUBSUB)
