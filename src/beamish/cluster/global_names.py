"""Global names (Erlang's ``global``): ``register_name``, ``unregister_name``,
``whereis_name``, ``registered_names``, ``send``; and cluster locks: ``set_lock``,
``del_lock``, ``trans``. A server started with ``name=("global", name)`` registers here.
See ``_global.py`` for conflicts and locks."""

from beamish.cluster._global import (
    del_lock,
    register_name,
    registered_names,
    set_lock,
    trans,
    unregister_name,
    whereis_name,
)
from beamish.cluster._global import send_global as send

__all__ = [
    "del_lock", "register_name", "registered_names", "send", "set_lock", "trans",
    "unregister_name", "whereis_name",
]
