"""beamish.web: the real-time web layer (ASGI endpoint, router, Channels, Presence, SSE)."""

import contextlib

from beamish.web._messages import Broadcast
from beamish.web._sse import EventStream, SSEEvent

__all__ = ["Broadcast", "EventStream", "SSEEvent"]


def _set_public_module() -> None:
    g = globals()
    for name in __all__:
        obj = g[name]
        if getattr(obj, "__module__", "").startswith("beamish.web._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_set_public_module()
del _set_public_module
