"""Testing helpers for code built on beamish.

The pytest plugin (installed with beamish, enabled automatically) runs every ``async def``
test inside a fresh runtime, as a process, and fails a test that leaves processes or
asyncio tasks behind.
"""

from beamish.testing._leftovers import LeftoverError, check_leftovers, wait_until_idle

__all__ = ["LeftoverError", "check_leftovers", "wait_until_idle"]
