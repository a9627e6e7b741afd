"""The NATS transport (``nats-py``): the default engine for a cluster of machines.

Core NATS subjects, no JetStream: the cluster needs ordered delivery per publisher and
subject, which core NATS gives, and treats a lost frame as a lost connection (its sessions).
A subscription's pending queue is bounded (``pending_bytes``, default 64 MiB): a node that
cannot keep up is told by the server as a slow consumer and loses frames, and its peers'
sessions with it restart, as a broken connection does on the BEAM.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from beamish.cluster._transport import Handler, Subscription, Transport, TransportError

__all__ = ["NatsTransport"]

_log = logging.getLogger("beamish.cluster")


class NatsTransport(Transport):
    def __init__(self, url: str, *, pending_bytes: int = 64 * 1024 * 1024,
                 connect_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self.pending_bytes = pending_bytes
        self.connect_timeout = connect_timeout
        self._nc: Any = None

    def preload(self) -> None:
        import nats  # noqa: F401

    async def connect(self) -> None:
        import nats

        async def disconnected() -> None:
            self._set_state(False)

        async def reconnected() -> None:
            self._set_state(True)

        failures: list[Exception] = []

        async def error(exc: Exception) -> None:
            if self._nc is None:  # still connecting: said once, when connect gives up
                failures.append(exc)
            else:
                _log.warning("NATS at %s: %s", _safe(self.url), exc)

        try:
            # once connected it reconnects forever; the first connection is bounded
            self._nc = await asyncio.wait_for(nats.connect(
                self.url, name="beamish", allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, disconnected_cb=disconnected,
                reconnected_cb=reconnected, error_cb=error, connect_timeout=2,
            ), self.connect_timeout)
        except Exception as exc:
            why = failures[-1] if failures else exc
            raise TransportError(
                f"cannot connect to NATS at {_safe(self.url)} within {self.connect_timeout:g}s: "
                f"{why or type(why).__name__}"
            ) from None
        self.max_payload = self._nc.max_payload
        self._set_state(True)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        async def callback(msg: Any) -> None:
            handler(msg.data)

        sub = await self._nc.subscribe(
            subject, cb=callback, pending_msgs_limit=-1, pending_bytes_limit=self.pending_bytes
        )
        await self._round_trip()  # the server has the subscription

        async def cancel() -> None:
            await sub.unsubscribe()
            await self._round_trip()

        return Subscription(subject, cancel)

    async def _round_trip(self) -> None:
        """Return once the server has processed what this client sent so far.

        nats-py's ``flush()`` is a PING and its PONG, but it writes the PING straight to the
        socket while a SUB or UNSUB waits in the client's buffer for its flusher task: the
        PING can pass it, and its PONG come back before the server has the subscription.
        A frame published at once from another connection was then dropped (2 lost in 150
        subscriptions, under uvloop). So the client's buffer is written out first (its
        ``_flush_pending(force_flush=True)`` waits for the flusher), then the round trip."""
        nc = self._nc
        flush_pending = getattr(nc, "_flush_pending", None)
        if flush_pending is not None:
            await flush_pending(force_flush=True)
        await nc.flush()

    def publish(self, subject: str, frame: bytes) -> None:
        """Straight into the client's buffer when nothing waits before it: one loop turn less
        per frame than through the writer task (a ping-pong crosses four of them)."""
        nc = self._nc
        if (not self._may_write_now() or nc is None or not nc.is_connected
                or len(frame) > self.max_payload):
            super().publish(subject, frame)  # in order behind what waits; or the errors
            return
        try:
            self._write_now(nc.publish(subject, frame))
        except Exception:
            super().publish(subject, frame)  # the writer task tries again

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        nc = self._nc
        for subject, frame in batch:  # into the client's buffer; its flusher writes it out
            await nc.publish(subject, frame)

    async def flush(self) -> None:
        await super().flush()
        if self._nc is not None and self._nc.is_connected:
            await self._nc.flush()

    async def close(self) -> None:
        await super().close()
        if self._nc is not None:
            try:
                await self._nc.drain()
            except Exception:
                await self._nc.close()
            self._nc = None


def _safe(url: str) -> str:
    """The URL without its credentials, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
