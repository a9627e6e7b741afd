"""The request logger's tap: log records, as they are made, for the dashboard pages that
watch them.

A page on the Logs view *watches*: a level, and a text to match (a request id, a pid such
as ``<0.42.0>``, or any words of the message; empty: every record). While at least one page
watches, a handler sits on the root logger; each record it gets is made process-aware
(``beamish.logs``) and, for every watch it matches, sent to that page's channel process as
a small dict. A watch gets at most ``RATE`` lines per second: beyond that, records are
dropped and counted, and the next line says how many were, so a chatty node cannot fill a
page's mailbox. The handler goes when the last watch does.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

from beamish._runtime.api import send
from beamish._runtime.isolation import mark_shared
from beamish._runtime.pid import Pid
from beamish.logs import enrich

__all__ = ["RATE", "LogLine", "unwatch", "watch"]

RATE = 50  # lines a second, per watching page


@mark_shared
class LogLine:
    """One record, as a watching page gets it."""

    __slots__ = ("line",)

    def __init__(self, line: dict[str, Any]) -> None:
        self.line = line


class _Watch:
    __slots__ = ("context", "dropped", "level", "loop", "match", "second", "sent")

    def __init__(self, match: str, level: int) -> None:
        self.match = match
        self.level = level
        self.second = 0
        self.sent = 0
        self.dropped = 0
        # a record may be made in another thread (offload's): the line is then sent from
        # the watching page's loop, in its process's context, never from that thread
        self.loop = asyncio.get_running_loop()
        self.context = contextvars.copy_context()


class _Tap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.watches: dict[Pid, _Watch] = {}

    def emit(self, record: logging.LogRecord) -> None:
        enrich(record)
        message = None
        now = int(time.monotonic())
        for pid, seen in list(self.watches.items()):
            if record.levelno < seen.level:
                continue
            if message is None:
                message = record.getMessage()
            wanted = seen.match
            if wanted and wanted != getattr(record, "request_id", "") and wanted != getattr(
                    record, "pid", "") and wanted not in message:
                continue
            if seen.second != now:
                seen.second, seen.sent = now, 0
            if seen.sent >= RATE:
                seen.dropped += 1
                continue
            seen.sent += 1
            line = {
                "time": record.created, "level": record.levelname.lower(),
                "logger": record.name, "message": message[:2000],
                "pid": getattr(record, "pid", ""), "request_id": getattr(record, "request_id", ""),
                "dropped": seen.dropped,
            }
            seen.dropped = 0
            if _on(seen.loop):
                self._send(pid, line)
            else:
                seen.loop.call_soon_threadsafe(self._send, pid, line, context=seen.context)

    def _send(self, pid: Pid, line: dict[str, Any]) -> None:
        try:
            send(pid, LogLine(line))
        except Exception:  # the page's process is gone: its watch goes too
            self.watches.pop(pid, None)


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread
        return False


_TAP = _Tap()


def watch(pid: Pid, match: str, level: str) -> None:
    """Send ``pid`` the records at ``level`` or above that ``match`` (see the module)."""
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else logging.INFO
    _TAP.watches[pid] = _Watch(match[:200], number if isinstance(number, int) else logging.INFO)
    root = logging.getLogger()
    if _TAP not in root.handlers:
        root.addHandler(_TAP)


def unwatch(pid: Pid) -> None:
    """Stop sending ``pid`` records; the handler goes with the last watch."""
    _TAP.watches.pop(pid, None)
    if not _TAP.watches:
        logging.getLogger().removeHandler(_TAP)
