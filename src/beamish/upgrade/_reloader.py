"""``beamish run --reload``: every saved module is hot-swapped into the running node.

A service of ``beamish run``: it watches the application's directory (``watchfiles``, which
batches the events of one save) and, for each batch of changed ``.py`` files, upgrades the
modules the node has loaded from them (``beamish.upgrade``, with no ``extra``). The node is
never restarted: sockets stay open, channels keep their state, presence does not flicker,
and the new code takes effect at each process's next message.

When the change cannot be swapped (a syntax error, an import that fails, a ``code_change``
that raises, a class whose ``__slots__`` changed), the node keeps running the old code and
the log says why, once per save. The next save is tried afresh. A file the node never
imported is left alone (it takes effect when it is imported).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from beamish._runtime.api import as_process
from beamish.upgrade._handler import changed_modules, upgrade, watch_from
from beamish.upgrade._loader import UpgradeError

__all__ = ["Reloader"]

_log = logging.getLogger("beamish.reload")


class Reloader:
    """The ``--reload`` service (see the module)."""

    name = "reload"

    def __init__(self, app_dir: str, *, debounce: float = 0.05) -> None:
        self.app_dir = os.path.abspath(app_dir)
        self.debounce = debounce
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.swaps = 0  # upgrades applied (for tests and the log)

    async def start(self) -> None:
        try:
            import watchfiles  # noqa: F401
        except ModuleNotFoundError:
            raise OSError("--reload needs watchfiles (pip install 'beamish[reload]')") from None
        watch_from(self.app_dir)
        self.task = asyncio.ensure_future(self._watch())
        _log.info("reloading: saved modules under %s are swapped into the running node",
                  self.app_dir)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _watch(self) -> None:
        from watchfiles import PythonFilter, awatch

        stop = asyncio.Event()
        async for _changes in awatch(self.app_dir, watch_filter=PythonFilter(),
                                     debounce=int(self.debounce * 1000), step=20,
                                     stop_event=stop, yield_on_timeout=False):
            await self.swap()

    async def swap(self) -> Any:
        """Upgrade the modules changed on disk since they were loaded (or last swapped)."""
        names = changed_modules(self.app_dir)
        if not names:
            return None
        try:
            async with as_process():
                report = await upgrade(names)
        except UpgradeError:  # upgrade() logged why, once
            return None
        except Exception:
            _log.exception("not reloaded, the node keeps running the old code")
            return None
        self.swaps += 1
        return report
