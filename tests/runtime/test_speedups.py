"""The C send (``_speedups``) is built, and behaves as the Python reference does.

The whole kernel suite runs on whichever send is active; ``make test`` runs it a second time
with ``BEAMISH_PURE_PYTHON=1``. Here: the extension is present where it must be, and a few
paths are checked against each other directly.
"""

from __future__ import annotations

import os

import pytest

import beamish
from beamish._runtime import api


def test_the_c_send_is_in_use_unless_disabled():
    built = api._fast_send() is not None
    if os.environ.get("BEAMISH_PURE_PYTHON"):
        assert beamish.send is api._send_py
    elif os.environ.get("CI"):
        assert built, "the _speedups extension was not built: gcc and Python headers needed"
        assert beamish.send is not api._send_py
    elif not built:
        pytest.skip("the _speedups extension is not built here (optional outside CI)")


@pytest.mark.parametrize("impl", ["c", "py"])
async def test_both_sends_deliver_isolate_and_drop(impl):
    send = api._send_py if impl == "py" else (api._fast_send() or api._send_py)
    me = beamish.self()
    data = [1]
    send(me, ("tuple", me, 1.5, None))
    send(me, data)
    data.append(2)
    send(me, "plain")
    dead, _ = beamish.spawn_monitor(lambda: None)
    await beamish.receive(beamish.Down, timeout=1)
    send(dead, "dropped")
    assert await beamish.receive(timeout=1) == ("tuple", me, 1.5, None)
    assert await beamish.receive(timeout=1) == [1]
    assert await beamish.receive(timeout=1) == "plain"
    with pytest.raises(beamish.NotRegisteredError):
        send("nobody", "x")
    with pytest.raises(beamish.MessageCopyError):
        import threading

        send(me, [threading.Lock()])


@pytest.mark.parametrize("impl", ["c", "py"])
async def test_both_sends_schedule_an_idle_actor(impl):
    send = api._send_py if impl == "py" else (api._fast_send() or api._send_py)
    me = beamish.self()

    class Echo(beamish.Actor):
        def handle(self, message):
            send(me, ("echo", message))

    pid = beamish.spawn(Echo())
    for i in range(3):
        send(pid, i)
        assert await beamish.receive(timeout=1) == ("echo", i)
        await beamish.sleep(0)  # idle again: the next send must queue it
    beamish.exit(pid, "kill")
