"""Global names (Erlang's ``global``): ``register_name``, ``unregister_name``,
``whereis_name``, ``registered_names``, ``send``. A server started with
``name=("global", name)`` registers here. See ``_global.py`` for conflicts."""

from beamish.cluster._global import (
    register_name,
    registered_names,
    unregister_name,
    whereis_name,
)
from beamish.cluster._global import send_global as send

__all__ = ["register_name", "registered_names", "send", "unregister_name", "whereis_name"]
