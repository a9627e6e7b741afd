"""Logging for ``beamish run``: one readable line per event, on standard error.

Supervisor reports (``beamish.supervisor``) name the supervisor, the child, its exit reason
and the restart taken; crash reports (``beamish.gen_server``, ``beamish.process``) add the
traceback; ``beamish.application`` and ``beamish.cli`` tell the node's life. The user's own
loggers go through the same handler.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["FORMAT", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure_logging(level: str) -> None:
    """Send every log record at ``level`` or above to stderr (unless already configured)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
