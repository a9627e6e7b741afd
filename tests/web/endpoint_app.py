"""The routes the endpoint tests serve, in-process and over real servers.

Handlers that a test wants to watch send to the process registered as ``"web.test"`` (the
test's own process, when it registers itself), so a test can see pids and stops.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket

import beamish
from beamish import Application, GenServer, Ok, Reply, Supervisor
from beamish.web import Endpoint, Router

STATIC = Path(__file__).parent / "static"
WATCHER = "web.test"


def tell(message: Any) -> None:
    """Send ``message`` to the test process, if it registered as ``web.test``."""
    if beamish.whereis(WATCHER) is not None:
        beamish.send(WATCHER, message)


router = Router()


@router.get("/")
async def home(request: Request) -> Response:
    return PlainTextResponse("hello")


@router.get("/pid")
async def pid(request: Request) -> Response:
    return PlainTextResponse(repr(beamish.self()))


@router.get("/sync")
def sync_handler(request: Request) -> Response:
    return PlainTextResponse(f"sync in {beamish.self()!r}")


@router.get("/crash")
async def crash(request: Request) -> Response:
    raise ValueError("the handler broke")


@router.get("/crash/{rest:path}")
async def crash_anywhere(request: Request) -> Response:
    raise ValueError("the handler broke")


@router.get("/not-a-response")
async def not_a_response(request: Request) -> Any:
    return "just a str"


@router.get("/sleep/{seconds:float}")
async def sleep(request: Request) -> Response:
    await asyncio.sleep(request.path_params["seconds"])
    return PlainTextResponse("slept")


@router.get("/hang", timeout=0.3)
async def hang(request: Request) -> Response:
    me = beamish.self()
    tell(("hanging", me))
    try:
        await asyncio.sleep(3600)
    finally:
        tell(("stopped", me))
    return PlainTextResponse("never")


@router.get("/wait", timeout=None)
async def wait(request: Request) -> Response:
    """Runs until it is stopped: for the disconnect watch."""
    me = beamish.self()
    tell(("waiting", me))
    try:
        await asyncio.sleep(3600)
    finally:
        tell(("stopped", me))
    return PlainTextResponse("never")


@router.get("/users/{id:int}", name="user")
async def user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"],
                         "self": str(request.url_for("user", id=7))})


@router.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


api = router.scope("/api", name="api")


@api.get("/items/{name}", name="item")
async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["name"],
                         "url": router.url_for("api.item", name="x")})


async def legacy_hello(request: Request) -> Response:
    return PlainTextResponse(f"starlette in {beamish.self()!r}")


async def legacy_crash(request: Request) -> Response:
    raise RuntimeError("starlette handler broke")


legacy = Starlette(routes=[
    Route("/hello", legacy_hello, name="hello"),
    Route("/crash", legacy_crash),
])
router.mount("/legacy", legacy, name="legacy")
router.static("/static", directory=STATIC)


@router.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello from {beamish.self()!r}")
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "crash":
            raise RuntimeError("the socket handler broke")
        await websocket.send_text(message.get("text") or "")


class Greeter(GenServer):
    def init(self, arg: Any) -> Ok:
        return Ok("hello")

    def handle_call(self, request: Any, from_: Any, state: Any) -> Reply:
        return Reply(state, state)


class WebApp(Application):
    """A small application the endpoint starts with its lifespan."""

    async def start(self, start_type: Any, args: Any) -> Any:
        return await Supervisor.start_link(
            [Supervisor.child_spec_of(Greeter, id="greeter")], strategy="one_for_one",
            name="web_app.sup",
        )


@router.get("/greeting")
async def greeting(request: Request) -> Response:
    [child] = await Supervisor.which_children("web_app.sup")
    return PlainTextResponse(await GenServer.call(child.pid, "greet"))


def make_endpoint(**options: Any) -> Endpoint:
    """An endpoint over this module's router; ``options`` go to ``Endpoint``."""
    return Endpoint(router=router, **options)


endpoint = Endpoint(router=router, application=WebApp)
