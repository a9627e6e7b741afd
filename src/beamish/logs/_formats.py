"""Two ways to write a record: a readable line for people, one JSON object for machines.

``TextFormatter``: ``2026-12-04 07:15:02 ERROR   <0.42.0> req=k3f9-2a beamish.web: request
crashed ...``: the process (and its registered name), the request id and the process's
metadata as ``key=value`` appear when there are some, before the logger's name; the
traceback follows the message.

``JsonFormatter``: one object per line: ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, ``pid``, ``process_name``, ``request_id``, ``node`` (the
OS process's pid), the process's metadata under ``metadata``, whatever the call passed as
``extra=`` (values JSON cannot hold are written as their ``repr``), and ``exception`` (the
formatted traceback) when there is one.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from beamish.logs._records import enrich

__all__ = ["JsonFormatter", "TextFormatter"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(where)s%(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# What a LogRecord carries by itself: anything else was passed as ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "pid", "process_name", "request_id", "metadata", "where",
    "taskName",
}


class TextFormatter(logging.Formatter):
    """A readable line (see the module)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        enrich(record)
        where = []
        pid = getattr(record, "pid", "")
        if pid:
            name = getattr(record, "process_name", "")
            where.append(f"{pid} {name}" if name else pid)
        request_id = getattr(record, "request_id", "")
        if request_id:
            where.append(f"req={request_id}")
        for key, value in (getattr(record, "metadata", None) or {}).items():
            where.append(f"{key}={value}")
        record.where = " ".join(where) + " " if where else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        enrich(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": getattr(record, "pid", ""),
            "process_name": getattr(record, "process_name", ""),
            "request_id": getattr(record, "request_id", ""),
            "node": os.getpid(),
        }
        meta = getattr(record, "metadata", None)
        if meta:
            entry["metadata"] = meta
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=repr, ensure_ascii=False)
