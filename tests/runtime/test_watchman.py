"""The watchdog's thread in C (``_watchman.c``): it watches the heartbeat without the GIL and
calls back, with the GIL, once for each late heartbeat. (test_fairness.py checks what the
watchdog reports, with whichever thread the runtime runs: C by default, Python under
``BEAMISH_PURE_PYTHON``.)"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from beamish._runtime import watchdog
from beamish._runtime._watchman import Watchman
from beamish._runtime.runtime import Runtime


def test_bad_arguments_are_refused_with_what_was_wrong():
    with pytest.raises(ValueError, match=r"must be > 0 seconds, got 0\.0"):
        Watchman(0.0, 0.1, lambda beat: None)
    with pytest.raises(TypeError, match="on_late must be callable, got 3"):
        Watchman(0.01, 0.1, 3)
    idle = Watchman(0.01, 0.1, lambda beat: None)
    idle.stop()  # never started: nothing to stop
    with pytest.raises(RuntimeError, match="starts once"):
        idle.start()


def test_a_late_heartbeat_is_reported_once_and_a_steady_one_never():
    late: list[tuple[float, int]] = []
    watchman = Watchman(0.005, 0.05, lambda beat: late.append((beat, threading.get_ident())))
    watchman.start()
    assert watchman.running
    try:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:  # beats every 5 ms: never late
            watchman.beat()
            time.sleep(0.005)
        assert late == []
        watchman.beat()
        beat = watchman.last_beat()
        assert abs(beat - time.monotonic()) < 0.05  # time.monotonic()'s clock
        time.sleep(0.3)  # no beat for six thresholds: one report, not six
        assert len(late) == 1
        assert late[0][0] == beat and late[0][1] != threading.get_ident()
        watchman.beat()
        time.sleep(0.2)
        assert len(late) == 2  # a new beat late again: reported again
    finally:
        watchman.stop()
    assert not watchman.running
    watchman.stop()  # a second stop does nothing
    with pytest.raises(RuntimeError, match="starts once"):
        watchman.start()


def test_an_error_in_on_late_is_reported_and_the_watch_goes_on(monkeypatch):
    calls: list[float] = []
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))

    def on_late(beat: float) -> None:
        calls.append(beat)
        raise ValueError("broken hook")

    watchman = Watchman(0.005, 0.02, on_late)
    watchman.start()
    try:
        time.sleep(0.15)
        watchman.beat()
        time.sleep(0.15)
    finally:
        watchman.stop()
    assert len(calls) == 2
    assert [str(exc) for exc in unraisable] == ["broken hook"] * 2


def test_stop_returns_while_on_late_waits_for_the_gil():
    """stop() lets the GIL go while it joins: a thread waiting for it to call on_late
    (a step holding the loop) must not deadlock the stop."""
    watchman = Watchman(0.001, 0.005, lambda beat: None)
    watchman.start()
    end = time.monotonic() + 0.05
    while time.monotonic() < end:  # hold the GIL past the threshold
        pass
    began = time.monotonic()
    watchman.stop()
    assert time.monotonic() - began < 1.0


def _switches() -> int:
    """Voluntary context switches of every thread of this process so far."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/status") as status:
            for line in status:
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads Linux's /proc")
@pytest.mark.skipif(bool(os.environ.get("BEAMISH_PURE_PYTHON")),
                    reason="BEAMISH_PURE_PYTHON turns the C thread off")
def test_the_c_thread_does_not_fight_the_busy_loop_for_the_gil():
    """A busy loop lets the GIL go at every turn; a Python watchdog thread, woken by each
    release and losing the race for it, then switches in and out thousands of times a
    second. The C thread only wakes on its interval (here every 25 ms)."""
    import uvloop

    def busy_turns(native: bool) -> int:
        async def main() -> int:
            async with Runtime(long_schedule=0.1) as runtime:
                dog = runtime._watchdog
                assert dog is not None
                if dog.native != native:  # run the other thread for the comparison
                    dog.stop()
                    dog = runtime._watchdog = watchdog.Watchdog(
                        runtime, asyncio.get_running_loop(), 0.1, native=native)
                    dog.start()
                assert dog.native == native
                before = _switches()
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    await asyncio.sleep(0)
                return _switches() - before

        return uvloop.run(main())

    native = busy_turns(True)
    python = busy_turns(False)
    print(f"context switches in 0.5 s of busy turns: C {native}, Python {python}")
    assert native < 100, native  # 20 wakes in 0.5 s, with room for a noisy machine
    assert python > 2 * native, (python, native)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_stops_without_joining_the_parents_thread():
    watchman = Watchman(0.01, 0.1, lambda beat: None)
    watchman.start()
    try:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: the thread stayed in the parent; stop must not join it
            try:
                watchman.stop()
                os.write(write, b"stopped")
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            said = pipe.read()
        os.waitpid(child, 0)
        assert said == b"stopped"
        assert watchman.running  # the parent's thread goes on
    finally:
        watchman.stop()
