"""The dashboard's real-time side: one channel topic, ``analytics:live``.

The contract, for any Phoenix client: connect to the socket, join ``analytics:live`` (the
reply carries ``{"frame": ...}``, the latest state, so a page draws at once), then receive
``state`` (the same shape) at the publisher's fixed rate. A client that cannot keep up gets
the latest ``state`` and skips the ones in between (``coalesce``): ``seq`` tells it how
many it skipped. The page sends nothing: it only watches.
"""

from __future__ import annotations

from typing import Any, ClassVar

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

    def handle_in(self, event: str, payload: Any, socket: SocketState) -> Any:
        return ("reply", ("error", {"reason": "the dashboard takes no messages"}), socket)


class AnalyticsSocket(Socket, pubsub=PUBSUB, longpoll=True):
    """Anyone may watch (a demo: an application of yours checks a token in ``connect``)."""

    channels: ClassVar[dict[str, type[Channel]]] = {"analytics:*": DashboardChannel}
