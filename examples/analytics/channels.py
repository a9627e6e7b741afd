"""The dashboard's real-time side: one channel topic, ``analytics:live``.

The contract, for any Phoenix client: connect to the socket, join ``analytics:live`` (the
reply carries ``{"frame": ...}``, the latest state, so a page draws at once), then receive
``state`` (the same shape) at the publisher's fixed rate. A client that cannot keep up gets
the latest ``state`` and skips the ones in between (``coalesce``): ``seq`` tells it how
many it skipped. An operator (a page on this machine) may push ``incident`` with
``{"seconds": n}``: for that long a third of the events are errors, for every viewer to see.
"""

from __future__ import annotations

from typing import Any, ClassVar

from beamish import Reply
from beamish.web import Channel, Socket, SocketState

from . import pipeline

PUBSUB = "analytics.pubsub"


class DashboardChannel(Channel):
    """One viewer of the dashboard (a process per viewer)."""

    coalesce: ClassVar = ["state"]  # a slow viewer gets the newest state, never a queue

    def join(self, topic: str, payload: Any, socket: SocketState) -> Any:
        if topic != pipeline.TOPIC:
            return ("error", {"reason": f"the dashboard's topic is {pipeline.TOPIC}"})
        return ("ok", {"frame": pipeline.latest_frame()}, socket)

    async def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        if event != "incident":
            return Reply(("error", {"reason": f"unknown event {event!r}"}), socket)
        if not socket.assigns.get("operator"):
            return Reply(("error", {"reason": "only an operator (this machine) may do that"}),
                         socket)
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            0 < seconds <= pipeline.MAX_INCIDENT
        ):
            return Reply(("error", {"reason": f"an incident lasts 0 to "
                                              f"{pipeline.MAX_INCIDENT:g} seconds"}), socket)
        await pipeline.simulate_incident(float(seconds))
        return Reply("ok", socket)


class AnalyticsSocket(Socket, pubsub=PUBSUB, longpoll=True):
    """Anyone may watch; only a page on this machine is an operator, who may simulate an
    incident (the demo's rule: an application of yours checks a token in ``connect``)."""

    channels: ClassVar[dict[str, type[Channel]]] = {"analytics:*": DashboardChannel}

    def connect(self, params: Any, socket: SocketState, connect_info: Any) -> Any:
        peer = (connect_info.get("peer_data") or {}).get("address")
        return ("ok", socket.assign(operator=peer in ("127.0.0.1", "::1")))
