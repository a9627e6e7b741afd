"""Logging for ``beamish run``: one record per event, on standard error, process-aware.

Supervisor reports (``beamish.supervisor``) name the supervisor, the child, its exit reason
and the restart taken; crash reports (``beamish.gen_server``, ``beamish.process``) add the
traceback; ``beamish.application`` and ``beamish.cli`` tell the node's life. The user's own
loggers go through the same handler. Every record made inside a process carries its pid,
name and request id (``beamish.logs``); ``--log-format text`` writes readable lines,
``json`` one JSON object per line.
"""

from __future__ import annotations

import logging
import sys

from beamish.logs import JsonFormatter, TextFormatter

__all__ = ["FORMATS", "configure_logging"]

FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log record at ``level`` or above to stderr (unless already configured),
    as ``log_format`` says."""
    if log_format not in FORMATS:
        raise ValueError(f"the log format is one of {', '.join(FORMATS)}, got {log_format!r}")
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
