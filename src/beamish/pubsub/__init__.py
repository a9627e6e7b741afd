"""beamish.pubsub: publish/subscribe by topic, on a partitioned Registry plus an adapter."""

from beamish._public import publish
from beamish.pubsub._adapter import Adapter, LocalAdapter
from beamish.pubsub._pubsub import Dispatcher, PubSub
from beamish.pubsub._tracker import Tracker, TrackerError

__all__ = ["Adapter", "Dispatcher", "LocalAdapter", "PubSub", "Tracker", "TrackerError"]


publish(globals(), __all__, __name__)
del publish
