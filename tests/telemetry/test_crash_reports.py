"""Crash reports: every crash, a plain process's or a behaviour's, in the log and in the
``beamish.process.crash`` event, naming the process, its ancestors, and for a behaviour
what it was handling and its state."""

from __future__ import annotations

import logging

import beamish
from beamish import Down, GenServer, NoReply, Ok, Supervisor, receive
from beamish._runtime.crash import CLIP, clip
from beamish.testing import capture_events


class Cart(GenServer):
    def init(self, arg):
        return Ok({"items": list(range(1000)), "owner": arg})

    def handle_cast(self, request, state):
        if request == "checkout":
            raise ZeroDivisionError("no payment")
        return NoReply(state)


async def test_a_gen_server_crash_report_names_its_behaviour_message_state_and_ancestors(
    caplog,
):
    caplog.set_level(logging.ERROR)
    beamish.trap_exit(True)
    with capture_events(("beamish", "process", "crash")) as crashes:
        sup = await Supervisor.start_link(
            [{"id": "cart", "start": (Cart.start_link, ("ada",)), "restart": "temporary"}],
            name="carts",
        )
        [child] = await Supervisor.which_children(sup)
        cart = child.pid
        ref = beamish.monitor(cart)
        GenServer.cast(cart, "checkout")
        await receive(lambda m: type(m) is Down and m.ref == ref, timeout=2)
    [event] = crashes
    report = event.metadata["report"]
    assert report.pid == cart and report.behaviour == "GenServer"
    assert report.initial_call.endswith("Cart")
    assert report.ancestors[0] == "carts"  # its supervisor, by name, then the test process
    assert report.ancestors[1] == beamish.self()
    assert report.message is not None and "checkout" in report.message
    assert report.state is not None and len(report.state) <= CLIP and "ada" in report.state
    assert isinstance(report.exception, ZeroDivisionError)
    assert "ZeroDivisionError: no payment" in report.stacktrace
    logged = [r.getMessage() for r in caplog.records if r.name == "beamish.gen_server"]
    assert len(logged) == 1 and "** ancestors: 'carts'" in logged[0]
    await Supervisor.stop(sup)


async def test_a_plain_process_crash_is_reported_once_with_its_initial_call(caplog):
    caplog.set_level(logging.ERROR)

    async def importer():
        raise KeyError("row 7")

    with capture_events(("beamish", "process", "crash")) as crashes:
        pid, ref = beamish.spawn_monitor(importer)
        await receive(Down, timeout=2)
    [event] = crashes
    report = event.metadata["report"]
    assert report.pid == pid and report.behaviour is None and report.message is None
    assert "importer" in report.initial_call
    assert report.ancestors == (beamish.self(),)
    logged = [r.getMessage() for r in caplog.records if r.name == "beamish.process"]
    assert len(logged) == 1
    assert "** initial call:" in logged[0] and "** ancestors:" in logged[0]


def test_clip_bounds_what_a_report_shows():
    huge = {"rows": [list(range(100))] * 100, "text": "x" * 10_000}
    shown = clip(huge)
    assert len(shown) <= CLIP and shown.startswith("{")

    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert "Broken" in clip(Broken())  # a repr that raises does not take the report down


async def test_a_gen_state_machine_crash_is_counted_and_reported_with_its_event_and_state(
    caplog,
):
    from beamish import GenStateMachine

    class Door(GenStateMachine):
        def init(self, arg):
            return ("ok", "locked", {"code": arg})

        def handle_event(self, kind, event, state, data):
            raise OSError("jammed")

    before = beamish.statistics().crashed
    with capture_events(("beamish", "process", "crash")) as crashes:
        pid = await Door.start("1234")
        ref = beamish.monitor(pid)
        GenStateMachine.cast(pid, "push")
        await receive(lambda m: type(m) is Down and m.ref == ref, timeout=2)
    assert beamish.statistics().crashed == before + 1  # counted, as every crash is
    [event] = crashes
    report = event.metadata["report"]
    assert report.behaviour == "GenStateMachine" and "push" in report.message
    assert "locked" in report.state and "1234" in report.state
    assert isinstance(report.exception, OSError)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and "terminating" in logged[0].getMessage()
