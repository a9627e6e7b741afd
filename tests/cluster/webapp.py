"""A web application for ``beamish run --nodes N`` tests: ``GET /node`` names the node that
answered; the ``room:*`` channel broadcasts ``shout`` to every socket on every node;
``GET /singleton`` names the node of the cluster's one ``Clock`` (a ``Singleton``), its OS
pid and how many times it was asked."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import beamish
from beamish import Application, CallError, GenServer, Ok, Pid, Reply, Supervisor
from beamish.cluster import Singleton
from beamish.pubsub import PubSub
from beamish.web import Channel, Endpoint, Router, Socket, SocketState, broadcast

PUBSUB = "webapp.pubsub"


class Room(Channel):
    async def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        return ("ok", {"node": beamish.node()}, socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if event == "shout":
            self.broadcast(socket, "shout", {**payload, "via": beamish.node()})
            return ("reply", ("ok", {}), socket)
        return ("reply", ("error", {"reason": f"unknown event {event!r}"}), socket)


class RoomSocket(Socket):
    channels: ClassVar[dict[str, type[Channel]]] = {"room:*": Room}


router = Router()


@router.post("/shout", name="shout")
async def shout(request: Request) -> Response:
    """A broadcast from an HTTP request's process (not a channel's), to every node."""
    broadcast(PUBSUB, "room:lobby", "shout", {"text": (await request.body()).decode(),
                                              "via": beamish.node()})
    return PlainTextResponse("ok")


@router.get("/node", name="node")
async def node(request: Request) -> Response:
    return PlainTextResponse(beamish.node())


class Clock(GenServer):
    def init(self, _: Any) -> Ok:
        return Ok(0)

    def handle_call(self, request: Any, from_: Any, asked: int) -> Reply:
        return Reply(f"{beamish.node()} {os.getpid()} {asked + 1}", asked + 1)


@router.get("/singleton", name="singleton")
async def singleton(request: Request) -> Response:
    try:
        return PlainTextResponse(await GenServer.call(Singleton.server("clock"), "ask"))
    except CallError as error:
        return PlainTextResponse(f"no clock: {error.why}", status_code=503)


class WebApp(Application):
    async def start(self, start_type: Any, args: Any) -> Pid:
        return await Supervisor.start_link(
            [(PubSub, {"name": PUBSUB}), Singleton.spec(Clock, None, name="clock")],
            name="webapp.sup",
        )


endpoint = Endpoint(router=router, application=WebApp, sockets={"/socket": RoomSocket},
                    pubsub=PUBSUB)
