"""write_now: an ASGI send run without a task when it does not wait, finished by one when
it does."""

from __future__ import annotations

import asyncio

import pytest

from beamish.web._writer import write_now


async def test_write_now_finishes_at_once_when_send_does_not_wait():
    sent = []

    async def send(message):
        sent.append(message)

    assert write_now(send, {"n": 1}) is None
    assert sent == [{"n": 1}]


async def test_write_now_hands_a_waiting_send_to_a_task_in_order():
    writable = asyncio.Event()
    sent = []

    async def send(message):
        await writable.wait()
        await asyncio.sleep(0)  # a bare yield too
        sent.append(message)

    first = write_now(send, {"n": 1})
    second = write_now(send, {"n": 2})
    assert first is not None and second is not None and sent == []
    writable.set()
    await asyncio.gather(first, second)
    assert sent == [{"n": 1}, {"n": 2}]


async def test_write_now_passes_errors_through():
    async def broken(message):
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        write_now(broken, {})

    gate = asyncio.get_running_loop().create_future()

    async def fails_later(message):
        await gate
        raise ConnectionResetError("gone later")

    task = write_now(fails_later, {})
    gate.set_result(None)
    with pytest.raises(ConnectionResetError, match="later"):
        await task


async def test_write_now_task_can_be_cancelled():
    async def never(message):
        await asyncio.Event().wait()

    task = write_now(never, {})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class _NextOnly:
    """An awaitable whose iterator has ``__next__`` but no ``send`` (granian's send returns
    one such, made in Rust)."""

    def __init__(self, future=None):
        self.future = future

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.future is not None and not self.future.done():
            self.future._asyncio_future_blocking = True
            return self.future
        raise StopIteration


async def test_write_now_takes_an_awaitable_that_is_not_a_coroutine():
    sent = []

    def send(message):
        sent.append(message)
        return _NextOnly()

    assert write_now(send, {"n": 1}) is None
    assert sent == [{"n": 1}]
    writable = asyncio.get_running_loop().create_future()
    task = write_now(lambda message: _NextOnly(writable), {"n": 2})
    assert task is not None and not task.done()
    writable.set_result(None)
    await task
    assert task.done() and task.exception() is None
