"""Testing helpers for code built on beamish.

The pytest plugin (installed with beamish, enabled automatically) runs every ``async def``
test inside a fresh runtime, as a process, stops what it started with ``start_supervised``,
and fails a test that leaves processes or asyncio tasks behind. The helpers:

- ``assert_receive``/``refute_receive`` (and ``assert_received``/``refute_received``, which
  do not wait): ExUnit's mailbox assertions, with the mailbox shown on failure;
- ``start_supervised``/``stop_supervised``: servers that live as long as the test;
- ``VirtualClock``: time that moves when the test says (the ``virtual_clock`` fixture);
- ``wait_until_idle``: wait until every process has handled what was sent to it.

See ``docs/guides/testing.md``.
"""

import contextlib

from beamish.testing._clock import VirtualClock, VirtualTimer
from beamish.testing._idle import wait_until_idle
from beamish.testing._leftovers import LeftoverError, check_leftovers
from beamish.testing._receive import (
    assert_receive,
    assert_received,
    refute_receive,
    refute_received,
)
from beamish.testing._supervised import start_supervised, stop_supervised, supervised_scope

__all__ = [
    "LeftoverError",
    "VirtualClock",
    "VirtualTimer",
    "assert_receive",
    "assert_received",
    "check_leftovers",
    "refute_receive",
    "refute_received",
    "start_supervised",
    "stop_supervised",
    "supervised_scope",
    "wait_until_idle",
]


def _set_public_module() -> None:
    # Tracebacks and reprs show the public path (beamish.testing.VirtualClock).
    g = globals()
    for name in __all__:
        obj = g[name]
        if getattr(obj, "__module__", "").startswith("beamish.testing._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = __name__


_set_public_module()
del _set_public_module
