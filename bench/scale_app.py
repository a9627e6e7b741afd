"""The application bench/scale.py serves: ``GET /`` answers "hello" (a process per request,
as every beamish endpoint runs them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from beamish import Application, Pid, Supervisor
from beamish.pubsub import PubSub
from beamish.web import Endpoint, Router

router = Router()


@router.get("/", name="hello")
async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


class ScaleApp(Application):
    async def start(self, start_type: Any, args: Any) -> Pid:
        return await Supervisor.start_link([(PubSub, {"name": "scale.pubsub"})],
                                           name="scale.sup")


endpoint = Endpoint(router=router, application=ScaleApp, pubsub="scale.pubsub")
