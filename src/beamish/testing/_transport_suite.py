"""``TransportSuite``: the conformance tests every cluster transport passes.

As Phoenix.PubSub ships its adapter tests, beamish ships the transport contract's
(``beamish.cluster.Transport``): subclass it in a test module, give it ``make_transport``,
and pytest collects the inherited tests::

    from beamish.cluster import transport_for
    from beamish.testing import TransportSuite

    class TestMyEngine(TransportSuite):
        async def make_transport(self):
            return transport_for("myengine://127.0.0.1:9999")

Each test makes its own transports (connected by the suite) and its own subjects, so tests
on one shared engine do not meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from beamish.cluster._transport import FrameTooLarge, Transport, TransportBusy

__all__ = ["TransportSuite"]

WAIT = 10.0  # seconds; only reached when something is broken


class _Inbox:
    """What one subscription received, with a way to wait for a count."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self._changed = asyncio.Event()

    def __call__(self, frame: bytes) -> None:
        self.frames.append(frame)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.frames) < count:
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"waited {timeout}s for {count} frames, got {len(self.frames)}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.frames


class TransportSuite:
    """Inherit it and define ``make_transport``; the ``test_*`` methods are the suite."""

    async def make_transport(self) -> Transport:
        raise NotImplementedError("a TransportSuite subclass defines make_transport()")

    # -- helpers ------------------------------------------------------------------------

    async def _connected(self, *, cleanup: list[Transport], **_: Any) -> Transport:
        transport = await self.make_transport()
        await transport.connect()
        cleanup.append(transport)
        return transport

    @staticmethod
    def _subject(tag: str) -> str:
        return f"beamish.suite.{tag}.{uuid.uuid4().hex}"

    async def _with(self, fn: Callable[..., Any]) -> None:
        cleanup: list[Transport] = []
        try:
            await fn(cleanup)
        finally:
            for transport in cleanup:
                await transport.close()

    @staticmethod
    async def _subscribed(transport: Transport, subject: str) -> _Inbox:
        inbox = _Inbox()
        await transport.subscribe(subject, inbox)
        return inbox

    # -- the suite ------------------------------------------------------------------------

    async def test_frames_arrive_whole_and_in_order(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            receiver = await self._connected(cleanup=cleanup)
            subject = self._subject("order")
            inbox = await self._subscribed(receiver, subject)
            frames = [b"", b"x", bytes(range(256)), b"\x00" * 1000]
            frames += [i.to_bytes(4, "big") for i in range(10_000)]
            for frame in frames:
                sender.publish(subject, frame)  # never blocks: returns at once
            assert await inbox.wait_for(len(frames)) == frames

        await self._with(body)

    async def test_the_largest_frame_passes_and_a_larger_one_raises(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            subject = self._subject("large")
            inbox = await self._subscribed(sender, subject)
            largest = bytes(range(256)) * (sender.max_payload // 256)
            largest += b"!" * (sender.max_payload - len(largest))
            sender.publish(subject, largest)
            assert (await inbox.wait_for(1))[0] == largest
            try:
                sender.publish(subject, largest + b"+")
            except FrameTooLarge as exc:
                assert str(sender.max_payload) in str(exc)
            else:
                raise AssertionError("a frame over max_payload was accepted")

        await self._with(body)

    async def test_every_subscriber_gets_every_frame(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            subject = self._subject("fanout")
            inboxes = [
                await self._subscribed(await self._connected(cleanup=cleanup), subject)
                for _ in range(3)
            ]
            for i in range(100):
                sender.publish(subject, b"%d" % i)
            for inbox in inboxes:
                assert await inbox.wait_for(100) == [b"%d" % i for i in range(100)]

        await self._with(body)

    async def test_a_subscription_holds_once_subscribe_returns(self) -> None:
        """A frame published from another connection right after ``subscribe`` returns
        arrives: the subscription is in effect on the server by then, every time (200
        times, or as many as 2 s allow where a subscription takes longer)."""
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            receiver = await self._connected(cleanup=cleanup)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            for i in range(200):
                if i and loop.time() > deadline:
                    break
                subject = self._subject(f"at-once-{i}")
                inbox = await self._subscribed(receiver, subject)
                sender.publish(subject, b"%d" % i)
                assert await inbox.wait_for(1, timeout=5) == [b"%d" % i], i

        await self._with(body)

    async def test_a_subject_without_subscribers_and_a_cancelled_subscription(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            sender.publish(self._subject("nobody"), b"lost, and that is fine")
            subject = self._subject("cancel")
            receiver = await self._connected(cleanup=cleanup)
            inbox = _Inbox()
            subscription = await receiver.subscribe(subject, inbox)
            sender.publish(subject, b"one")
            await inbox.wait_for(1)
            await subscription.cancel()
            sender.publish(subject, b"two")
            marker = self._subject("marker")
            marked = await self._subscribed(receiver, marker)
            sender.publish(marker, b"after")  # published after "two" on the same sender
            await marked.wait_for(1)
            await asyncio.sleep(0.05)
            assert inbox.frames == [b"one"]

        await self._with(body)

    async def test_the_outbox_is_bounded_and_nothing_below_the_bound_is_lost(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            sender = await self._connected(cleanup=cleanup)
            sender.max_outbox = 64 * 1024
            subject = self._subject("bound")
            inbox = await self._subscribed(sender, subject)
            frame = b"f" * 1024
            accepted = 0
            busy = None
            for _ in range(100_000):  # within one turn: nothing is written meanwhile
                try:
                    sender.publish(subject, frame)
                except TransportBusy as exc:
                    busy = exc
                    break
                accepted += 1
            # the engine's client may buffer some itself (bounded too); then the outbox fills
            assert busy is not None and "max_outbox" in str(busy), "the outbox grew unbounded"
            assert accepted >= 64
            await sender.flush()
            assert len(await inbox.wait_for(accepted)) == accepted
            sender.publish(subject, frame)  # room again once written
            await inbox.wait_for(accepted + 1)

        await self._with(body)

    async def test_state_callbacks_and_close(self) -> None:
        async def body(cleanup: list[Transport]) -> None:
            transport = await self._connected(cleanup=cleanup)
            seen: list[bool] = []
            transport.on_state(seen.append)
            assert transport.connected
            await transport.close()
            assert seen == [False] and not transport.connected

        await self._with(body)

