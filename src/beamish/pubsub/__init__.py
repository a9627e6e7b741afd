"""beamish.pubsub: publish/subscribe by topic, on a partitioned Registry plus an adapter."""

import contextlib

from beamish.pubsub._adapter import Adapter, LocalAdapter
from beamish.pubsub._pubsub import Dispatcher, PubSub

__all__ = ["Adapter", "Dispatcher", "LocalAdapter", "PubSub"]


def _set_public_module() -> None:
    g = globals()
    for name in __all__:
        obj = g[name]
        if getattr(obj, "__module__", "").startswith("beamish.pubsub._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_set_public_module()
del _set_public_module
