"""Helpers for the tests that drive the chat demo from outside: a server in a subprocess,
a stream read line by line, and the rule for missing tools.

A missing tool (node, chromium) fails the test under ``CI=true``, saying what to install;
elsewhere the test is skipped with the same words.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds; generous for a loaded machine, only reached when something is broken
SERVING = re.compile(r"serving <Endpoint of \w+> on (http://127\.0\.0\.1:(\d+))")


def require(found: Any, missing: str) -> Any:
    """``found`` if it is truthy; else fail under CI (skip elsewhere) saying ``missing``."""
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{missing} (CI=true: tests never skip for a missing tool)", pytrace=False)
    pytest.skip(missing)


class Lines:
    """A text stream read by a thread, so a test can wait for a line with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, matches: Callable[[str], Any], what: str, timeout: float = WAIT) -> Any:
        """The first truthy ``matches(line)`` of the lines to come; fails after ``timeout``."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"waited {timeout:g}s for {what}; got:\n" + "\n".join(self.seen)
                ) from None
            if line is None:
                self._queue.put(None)  # stays ended for the next caller
                raise AssertionError(f"the stream ended before {what}; got:\n"
                                     + "\n".join(self.seen))
            self.seen.append(line)
            found = matches(line)
            if found:
                return found

    def close(self) -> None:
        self._thread.join(timeout=WAIT)

    @property
    def text(self) -> str:
        return "\n".join(self.seen)


class ChatNode:
    """``beamish run examples.chat.app:Chat`` in a subprocess; ``app=`` runs another
    example (``examples.showcase.app:Showcase`` is what ``make run`` starts)."""

    def __init__(self, port: int = 0, *args: str, env: dict[str, str] | None = None,
                 app: str = "examples.chat.app:Chat") -> None:
        """``args``: more ``beamish run`` options (``--name``, ``--cluster``...); ``env``:
        variables over the test's environment."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beamish.cli", "run", app,
             "--port", str(port), "--shutdown-timeout", "10", *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=None if env is None else {**os.environ, **env},
        )
        assert self.proc.stderr is not None
        self.log = Lines(self.proc.stderr)

    def url(self) -> str:
        """Waits until the endpoint serves; returns its URL."""
        found = self.log.until(SERVING.search, "the chat to serve")
        return str(found.group(1))

    def kill(self) -> None:
        """SIGKILL: the node dies at once, as in a crash of the machine or the OOM killer."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)

    def stop(self) -> int:
        """SIGTERM: the node stops cleanly; returns its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=WAIT)

    def close(self) -> None:
        if self.proc.poll() is None:  # a failed test must not leave a server running
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.log.close()
        assert self.proc.stderr is not None
        self.proc.stderr.close()

