"""The records the web layer passes between processes (channel servers, transports, PubSub).

``Broadcast`` is what a broadcast to a topic delivers to the channel processes subscribed to
it: a channel pushes it to its client (or runs ``handle_out`` first, if it intercepts the
event). Presence diffs travel as ``Broadcast(topic, "presence_diff", diff)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beamish._runtime.records import register_wire_type

__all__ = ["Broadcast"]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """An event broadcast to every channel joined to ``topic``."""

    topic: str
    event: str
    payload: Any


register_wire_type(Broadcast, "beamish.web.Broadcast")  # broadcasts cross nodes
