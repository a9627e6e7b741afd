"""The live stream: its supervision tree, its page and its endpoint.

Run it alone with ``beamish run examples.stream.app:Stream`` and open
http://127.0.0.1:4000, or with the other examples under ``make run`` (at ``/stream/``).
The tree is in ``studio.py``. Settings (environment variables): ``STREAM_FPS``, segments a
second (10), ``STREAM_SEGMENT_BYTES``, the size of one (20,000; 10 to 50 KB is a small video
segment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.web_assets import check_vendor, serve_vendor
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from beamish import Application, Pid, Settings, Supervisor
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.web import Endpoint, Router

from . import studio
from .channels import StreamSocket

HERE = Path(__file__).resolve().parent
STREAM = "main"


class StreamSettings(Settings):
    fps: float = 10.0
    segment_bytes: int = 20_000


class Stream(Application):
    settings: StreamSettings  # STREAM_FPS, STREAM_SEGMENT_BYTES

    async def start(self, start_type: Any, args: Any) -> Pid:
        check_vendor()
        s = self.settings
        if not 0 < s.fps <= 60 or not 1_000 <= s.segment_bytes <= 1_000_000:
            raise ValueError(
                "STREAM_FPS is above 0 and at most 60; STREAM_SEGMENT_BYTES 1,000 to "
                f"1,000,000; got {s.fps} and {s.segment_bytes}"
            )
        children = [
            (PubSub, {"name": studio.PUBSUB}),
            studio.StreamPresence,
            {"id": "relay", "start": (studio.Relay.start_for, (STREAM,))},
            Singleton.spec(studio.Studio, (STREAM, s.fps, s.segment_bytes),
                           name=studio.studio_name(STREAM)),
        ]
        return await Supervisor.start_link(
            children, strategy="rest_for_one", name="stream.supervisor"
        )


router = Router()


@router.get("/", name="stream")
async def index(request: Request) -> Response:
    return FileResponse(HERE / "index.html")


router.static("/assets", directory=HERE / "static", name="stream_assets")
serve_vendor(router, uplot=False)

SOCKETS = {"/socket": StreamSocket}
endpoint = Endpoint(router=router, application=Stream, sockets=SOCKETS)
