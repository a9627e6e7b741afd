"""Server names: how an OTP process is named when it starts and found when it is called.

A server is named by one of these (``None`` starts it unnamed):

- ``"name"``: a locally registered name (a ``str``);
- ``("via", registry, key)``: a name kept by ``registry``, any object that implements the
  *via protocol* below (``beamish.Registry`` and ``PartitionSupervisor`` do);
- ``("global", term)``: a cluster-wide name; it needs the cluster, which is not part of this
  release, so it is refused with an error saying so.

A running server is addressed by its pid or by any of the name forms above.

The via protocol, as in Elixir (each is called by the process that needs it)::

    registry.register_name(key, pid) -> bool    # False if the key is taken
    registry.unregister_name(key) -> None
    registry.whereis_name(key) -> Pid | None
    registry.send(key, message) -> None         # raises if nobody holds the key
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._errors import InvalidNameError, not_awaited
from beamish._runtime.api import is_alive
from beamish._runtime.api import whereis as _whereis_local
from beamish._runtime.pid import Pid

__all__ = ["ServerRef", "ViaRegistry", "check_name", "describe", "whereis"]

ServerRef = Pid | str | tuple[Any, ...]

_ACCEPTED = (
    "None, a str, (\"via\", registry, key) where registry implements register_name, "
    "unregister_name, whereis_name and send, or (\"global\", term)"
)


class ViaRegistry(Protocol):
    def register_name(self, key: Any, pid: Pid) -> bool: ...

    def unregister_name(self, key: Any) -> None: ...

    def whereis_name(self, key: Any) -> Pid | None: ...

    def send(self, key: Any, message: Any) -> None: ...


def check_name(name: Any) -> None:
    """Validate a ``name=`` option; raise InvalidNameError listing the accepted forms."""
    if name is None or type(name) is str:
        if name == "":
            raise InvalidNameError("a server name must not be the empty string")
        return
    if type(name) is tuple and len(name) == 3 and name[0] == "via":
        registry = name[1]
        missing = [
            m for m in ("register_name", "unregister_name", "whereis_name", "send")
            if not callable(getattr(registry, m, None))
        ]
        if missing:
            raise InvalidNameError(
                f"invalid via name {name!r}: {registry!r} does not implement the via protocol "
                f"(missing {', '.join(missing)}). Accepted names: {_ACCEPTED}"
            )
        return
    if type(name) is tuple and len(name) == 2 and name[0] == "global":
        raise InvalidNameError(
            f"global names such as {name!r} need a cluster, which this release does not "
            "include yet; use a local name (a str) or a via name"
        )
    raise InvalidNameError(
        not_awaited(name, None, "a server (a pid or a name)")
        or f"invalid server name {name!r}. Accepted names: {_ACCEPTED}"
    )


def whereis(server: Any) -> Pid | None:
    """The pid of a server given by pid or name, or None if nobody is there."""
    if type(server) is Pid:
        return server if is_alive(server) else None
    if type(server) is str:
        return _whereis_local(server)
    if type(server) is tuple and len(server) == 3 and server[0] == "via":
        found: Pid | None = server[1].whereis_name(server[2])
        return found
    check_name(server)
    return None


def describe(server: Any) -> str:
    return repr(server)
