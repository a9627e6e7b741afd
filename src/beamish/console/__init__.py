"""The node's console: ``beamish remote`` (a REPL inside a running node) and the channel
``beamish upgrade`` uses, over a Unix socket only the node's user can open.

``beamish run`` opens it (``--no-console`` leaves it closed); ``ConsoleServer`` is the
service, for nodes started otherwise. See the hot code upgrades guide.
"""

from beamish._public import publish
from beamish.console._client import ConsoleClient, ConsoleError
from beamish.console._server import ConsoleServer

__all__ = ["ConsoleClient", "ConsoleError", "ConsoleServer"]

publish(globals(), __all__, __name__)
