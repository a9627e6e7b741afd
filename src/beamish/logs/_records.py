"""Process-aware log records: Logger metadata for Python's ``logging``.

``ProcessFilter`` (a handler filter) and beamish's formatters give every record made inside
a beamish process ``record.pid`` (``"<0.42.0>"``), ``record.process_name`` (its registered
name), ``record.request_id`` (inside an HTTP request's process) and the process's own
metadata (``metadata(user_id=...)``, Elixir's ``Logger.metadata``) in ``record.metadata``.
Outside any process they are empty strings and an empty dict. It is done where the record
is handled, in the logging call itself (so in the process that logged), after ``extra=``
was applied: a call's own ``extra={"request_id": ...}`` wins, and nothing is looked up for
a record no handler takes.

Request ids come from *providers*: functions ``pid -> str | None`` that the web layer
registers (``add_provider``), so this module knows nothing of requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from beamish._runtime.context import current_process

__all__ = ["ProcessFilter", "add_provider", "enrich", "metadata"]

_METADATA: ContextVar[dict[str, Any] | None] = ContextVar("beamish_log_metadata", default=None)
_PROVIDERS: list[Callable[[Any], str | None]] = []


def metadata(**values: Any) -> dict[str, Any]:
    """Add ``values`` to the calling process's log metadata (a value of None removes a key);
    returns the metadata now. Each process has its own: it is set in the process's context."""
    current = dict(_METADATA.get() or {})
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    _METADATA.set(current)
    return current


def add_provider(provider: Callable[[Any], str | None]) -> None:
    """Register ``provider(pid) -> request id or None`` (the web layer's requests)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def enrich(record: logging.LogRecord) -> logging.LogRecord:
    """Give ``record`` the calling process's pid, name, request id and metadata (what a
    call already passed as ``extra=`` is kept). Call it where the record was made: in the
    logging call, as a handler's filter or formatter is."""
    if hasattr(record, "metadata") and hasattr(record, "pid"):
        return record  # done already (a second handler)
    proc = current_process()
    if proc is None:
        record.pid = record.process_name = ""
        if not hasattr(record, "request_id"):
            record.request_id = ""
        record.metadata = {}
        return record
    pid = proc.pid
    record.pid = repr(pid)
    record.process_name = proc.name or ""
    if not getattr(record, "request_id", None):
        record.request_id = ""
        for provider in _PROVIDERS:
            found = provider(pid)
            if found:
                record.request_id = found
                break
    record.metadata = dict(_METADATA.get() or {})
    return record


class ProcessFilter(logging.Filter):
    """A handler filter that makes every record it passes process-aware (``enrich``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        enrich(record)
        return True
