"""Server names: how an OTP process is named when it starts and found when it is called.

A server is named by one of these (``None`` starts it unnamed):

- ``"name"``: a locally registered name (a ``str``);
- ``("via", registry, key)``: a name kept by ``registry``, any object that implements the
  *via protocol* below (``beamish.Registry`` and ``PartitionSupervisor`` do);
- ``("global", term)``: a cluster-wide name (``beamish.cluster.global_names``); it needs the
  node to be in a cluster, and is refused with an error saying so otherwise.

A running server is addressed by its pid, by any of the name forms above, or by
``(name, node)``: the server registered as ``name`` on the node called ``node``.

The via protocol, as in Elixir (each is called by the process that needs it)::

    registry.register_name(key, pid) -> bool    # False if the key is taken
    registry.unregister_name(key) -> None
    registry.whereis_name(key) -> Pid | None
    registry.send(key, message) -> None         # raises if nobody holds the key
"""

from __future__ import annotations

from typing import Any, Protocol

from beamish._errors import InvalidNameError, not_awaited
from beamish._runtime.api import current_runtime, is_alive
from beamish._runtime.api import whereis as _whereis_local
from beamish._runtime.pid import Pid

__all__ = [
    "ServerRef", "ViaRegistry", "check_name", "describe", "destination", "normalize",
    "unregister_own", "whereis",
]

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
        _global_registry(name)
        return
    raise InvalidNameError(
        not_awaited(name, None, "a server (a pid or a name)")
        or f"invalid server name {name!r}. Accepted names: {_ACCEPTED}"
    )


def _global_registry(name: Any) -> Any:
    registry = current_runtime().global_registry
    if registry is None:
        raise InvalidNameError(
            f"global names such as {name!r} need this node to be in a cluster: connect it "
            "first (beamish.cluster.connect, or beamish run --cluster URL)"
        )
    return registry


def normalize(name: Any) -> Any:
    """A name to register under, with ``("global", term)`` as the via name it stands for."""
    if type(name) is tuple and len(name) == 2 and name[0] == "global":
        return ("via", _global_registry(name), name[1])
    return name


def unregister_own(name: Any, pid: Pid) -> None:
    """Undo a failed start's via registration (``name`` as ``normalize`` gave it), if
    ``pid`` still holds it: a name it lost meanwhile (a global conflict) is the winner's."""
    if type(name) is tuple:
        registry, key = name[1], name[2]
        if registry.whereis_name(key) == pid:
            registry.unregister_name(key)


def _is_remote(server: Any) -> bool:
    return (type(server) is tuple and len(server) == 2 and type(server[0]) is str
            and type(server[1]) is str and server[0] != "global")


def whereis(server: Any) -> Pid | None:
    """The pid of a server given by pid or name, or None if nobody is there (a pid of
    another node is returned as it is: whether it lives is for its node to say)."""
    if type(server) is Pid:
        return server if is_alive(server) or server.node_id.index else None
    if type(server) is str:
        return _whereis_local(server)
    if type(server) is tuple and len(server) == 3 and server[0] == "via":
        found: Pid | None = server[1].whereis_name(server[2])
        return found
    if type(server) is tuple and len(server) == 2 and server[0] == "global":
        return _global_registry(server).whereis_name(server[1])  # type: ignore[no-any-return]
    if _is_remote(server):
        if server[1] == current_runtime().node_id.name:
            return _whereis_local(server[0])
        return None
    check_name(server)
    return None


def destination(server: Any) -> Pid | tuple[str, str] | None:
    """Where a call or cast to ``server`` goes: a pid, ``(name, node)`` for a server of
    another node, or None if nobody is there."""
    if _is_remote(server) and server[1] != current_runtime().node_id.name:
        return server  # type: ignore[no-any-return]
    return whereis(server)


def describe(server: Any) -> str:
    return repr(server)
