"""The transport contract: what the cluster needs from a messaging engine, and no more.

A transport moves opaque frames (bytes) to subjects. It promises only what NATS and Redis
pub/sub both give: frames published by one transport to one subject reach each subscriber of
that subject in the order they were published, or not at all (when the engine is gone or
drops a slow consumer). Authentication, sessions, heartbeats and the meaning of subjects are
the cluster's (``_node.py``), so an engine is about a page of code:

- ``connect()`` / ``close()``;
- ``subscribe(subject, handler)``: ``handler(frame)`` runs on the event loop for each frame,
  in order; returns, once the engine has the subscription, a ``Subscription`` to
  ``cancel()``;
- ``publish(subject, frame)``: never blocks. Frames queue in a bounded outbox that a writer
  task drains (``max_outbox`` bytes, default 64 MiB); past it ``TransportBusy`` is raised and
  the frame is not queued. A frame over ``max_payload`` raises ``FrameTooLarge``;
- ``flush()``: wait until what was published has been handed to the engine;
- ``on_state(callback)``: ``callback(connected: bool)`` when the link to the engine drops or
  comes back.

Every transport runs the shared conformance suite, ``beamish.testing.TransportSuite``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = [
    "DEFAULT_MAX_OUTBOX", "FrameTooLarge", "Subscription", "Transport", "TransportBusy",
    "TransportError",
]

_log = logging.getLogger("beamish.cluster")

DEFAULT_MAX_OUTBOX = 64 * 1024 * 1024

Handler = Callable[[bytes], None]


class TransportError(Exception):
    """The engine could not be reached or refused an operation."""


class TransportBusy(TransportError):
    """The outbox is full: the engine does not take frames as fast as they are published."""


class FrameTooLarge(TransportError):
    """A frame over the engine's ``max_payload``."""


class Subscription:
    __slots__ = ("_cancel", "subject")

    def __init__(self, subject: str, cancel: Callable[[], Any]) -> None:
        self.subject = subject
        self._cancel = cancel

    async def cancel(self) -> None:
        result = self._cancel()
        if asyncio.iscoroutine(result):
            await result


class Transport(ABC):
    """A messaging engine as the cluster sees it (see the module's documentation)."""

    max_payload: int = 1024 * 1024

    def __init__(self, *, max_outbox: int = DEFAULT_MAX_OUTBOX) -> None:
        self.max_outbox = max_outbox
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_bytes = 0
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._idle: asyncio.Event | None = None
        self._finishing: asyncio.Task[None] | None = None  # a client's write, still going
        self._state_callbacks: list[Callable[[bool], Any]] = []
        self.connected = False

    # -- the contract -------------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def subscribe(self, subject: str, handler: Handler) -> Subscription: ...

    @abstractmethod
    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        """Hand a batch of (subject, frame) to the engine, in order."""

    def preload(self) -> None:  # noqa: B027  # most engines have nothing to load
        """Import the engine's client now (before an event loop runs: it takes a while)."""

    async def close(self) -> None:
        if self._writer is not None or self._finishing is not None:
            with _suppress_cancel():
                await asyncio.wait_for(self.flush(), 2.0)
        await _cancel(self._writer, self._finishing)
        self._writer = self._finishing = None
        self._set_state(False)

    def publish(self, subject: str, frame: bytes) -> None:
        size = len(frame)
        self._check_size(size)
        if self._outbox_bytes + size > self.max_outbox:
            raise self._busy("the engine does not keep up")
        self._outbox.append((subject, frame))
        self._outbox_bytes += size
        if self._writer is None:
            self._start_writer()
        assert self._wake is not None and self._idle is not None
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        if self._finishing is not None:
            await asyncio.wait({self._finishing})
        if self._idle is not None and self._outbox:
            await self._idle.wait()

    def on_state(self, callback: Callable[[bool], Any]) -> None:
        self._state_callbacks.append(callback)

    def on_subscriber(self, callback: Callable[[], Any]) -> None:  # noqa: B027
        """``callback()`` when another node subscribes (a node that just started may not
        have heard what was said before). Only engines without a server (``ipc://``) learn
        of it; on the others a subscription takes effect at once and this is never called."""

    def on_process_gone(self, callback: Callable[[int], Any]) -> None:  # noqa: B027
        """``callback(os_pid)`` when the OS process of a node on this machine is gone (killed
        with ``-9``: it could not say goodbye). Only ``ipc://`` learns of it; elsewhere such
        a node is declared down after ``tick_time`` of silence, as on the BEAM."""

    # -- helpers for engines --------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if size > self.max_payload:
            raise FrameTooLarge(
                f"a frame of {size} bytes is over this engine's max_payload of "
                f"{self.max_payload} bytes"
            )

    def _busy(self, why: str) -> TransportBusy:
        return TransportBusy(
            f"the transport's outbox holds {self._outbox_bytes} bytes (max_outbox="
            f"{self.max_outbox}): {why}"
        )

    def _may_write_now(self) -> bool:
        """Nothing waits before a new frame: it may go straight into the engine's client
        (``_write_now``), a loop turn sooner than through the writer task."""
        return self._finishing is None and (self._idle is None or self._idle.is_set())

    def _write_now(self, step: Coroutine[Any, Any, Any]) -> None:
        """Run ``step``, the engine client's write of one frame (a coroutine), to its end now.
        If the client must wait (its buffer is full), the frame is in its buffer already and
        the step finishes in a task; until it has, ``publish`` queues frames in the outbox
        and the writer sends them after it, in order. Raises what the step raises."""
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except BaseException:
            step.close()
            raise
        self._finishing = asyncio.get_running_loop().create_task(self._finish(step, waiting))

    async def _finish(self, step: Coroutine[Any, Any, Any], waiting: Any) -> None:
        try:
            while True:
                if waiting is not None:
                    await asyncio.wait({waiting})
                else:
                    await asyncio.sleep(0)
                try:
                    waiting = step.send(None)
                except StopIteration:
                    return
        except Exception as exc:
            _log.warning("%s lost a frame: %s", type(self).__name__, exc)
        finally:
            self._finishing = None

    def _set_state(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        for callback in self._state_callbacks:
            try:
                callback(connected)
            except Exception:
                _log.exception("transport state callback %r raised", callback)

    def _start_writer(self) -> None:
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer = asyncio.get_running_loop().create_task(
            self._drain(), name=f"beamish-{type(self).__name__}-writer"
        )

    async def _drain(self) -> None:
        assert self._wake is not None and self._idle is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                if self._finishing is not None:  # a frame the client still writes goes first
                    await asyncio.wait({self._finishing})
                batch = list(self._outbox)
                self._outbox.clear()
                self._outbox_bytes = 0
                try:
                    await self._write(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the engine is gone: the frames are lost
                    _log.warning("%s lost %d frame(s): %s", type(self).__name__, len(batch), exc)
                    self._set_state(False)
            self._idle.set()


async def _cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks given (None: none) and wait until they have ended."""
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


class _suppress_cancel:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: Any, e: Any, tb: Any) -> bool:
        return et is not None and issubclass(et, asyncio.CancelledError | TimeoutError)
