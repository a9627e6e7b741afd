"""Process groups across the cluster (Erlang's ``pg``): ``join``, ``leave``,
``get_members``, ``get_local_members``, ``which_groups``. See ``_pg.py``."""

from beamish.cluster._pg import (
    SCOPE,
    get_local_members,
    get_members,
    join,
    leave,
    which_groups,
)

__all__ = ["SCOPE", "get_local_members", "get_members", "join", "leave", "which_groups"]
