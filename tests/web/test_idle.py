"""One timer watches many connections for silence (web/_idle.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import beamish
from beamish import receive
from beamish._runtime.api import current_runtime
from beamish._runtime.runtime import Runtime
from beamish.testing import assert_receive
from beamish.web._idle import IdleTicker, _tickers, unwatch, watch


async def relay(to, n):
    """Tells ``to`` each message it gets, with its number."""
    while True:
        send_back = await receive()
        beamish.send(to, (n, send_back))


async def test_one_ticker_sends_to_every_watched_process_and_forgets_the_dead():
    runtime = current_runtime()
    me = beamish.self()
    pids = [beamish.spawn(relay, me, n) for n in range(3)]
    for pid in pids:
        watch(runtime, pid, 0.2, "check")
    (ticker,) = _tickers[runtime].values()
    assert ticker.period == 0.05 and ticker.pids == set(pids)
    got = {(await assert_receive((int, "check"), timeout=1))[0] for _ in range(3)}
    assert got == {0, 1, 2}
    beamish.exit(pids[0], "kill")
    unwatch(runtime, pids[1], 0.2, "check")
    await asyncio.sleep(0.15)  # a tick or two: the dead one is dropped, the unwatched gone
    assert ticker.pids == {pids[2]}
    beamish.exit(pids[1], "kill")
    beamish.exit(pids[2], "kill")
    await asyncio.sleep(0.15)
    assert ticker.pids == set() and ticker._handle is None  # nothing watched: no timer


async def test_a_long_timeout_is_still_looked_at_every_15_seconds():
    runtime = current_runtime()
    me = beamish.self()
    pid = beamish.spawn(relay, me, 0)
    watch(runtime, pid, 3600, "look")
    ticker = _tickers[runtime][(3600, "look")]
    assert ticker.period == 15.0  # a connection's mailbox is given back within 15 s idle
    beamish.exit(pid, "kill")


def test_a_ticker_does_not_keep_its_runtime_alive():
    runtime = Runtime()
    _tickers[runtime] = {(60.0, "check"): IdleTicker(runtime, 60.0, "check")}
    gone = weakref.ref(runtime)
    del runtime
    gc.collect()
    assert gone() is None  # the table is weak, and so is the ticker's reference
