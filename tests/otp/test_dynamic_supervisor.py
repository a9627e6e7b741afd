"""DynamicSupervisor, by the reference behaviours (OTP-SEMANTICS section 7)."""

from __future__ import annotations

import time

import pytest

import beamish
from beamish import (
    ChildCounts,
    ChildSpec,
    Down,
    DynamicSupervisor,
    Exit,
    GenServer,
    NoReply,
    Ok,
    StartError,
    SupervisorError,
    receive,
    send,
)
from beamish.testing import wait_until_idle


class Worker(GenServer):
    def init(self, arg):
        if isinstance(arg, dict) and arg.get("trap"):
            beamish.trap_exit(True)
        return Ok(arg)

    async def handle_cast(self, request, state):
        match request:
            case ("exit", reason):
                raise beamish.ProcessExit(reason)
        return NoReply(state)

    async def terminate(self, reason, state):
        if isinstance(state, dict) and state.get("slow_exit"):
            await beamish.sleep(state["slow_exit"])


def worker(restart="permanent", **arg):
    return ChildSpec(id=None, start=(Worker.start_link, (arg,)), restart=restart)


async def test_max_children_79():
    sup = await DynamicSupervisor.start_link(max_children=1)
    await DynamicSupervisor.start_child(sup, worker())
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, worker())
    assert info.value.reason == "max_children"
    none = await DynamicSupervisor.start_link(max_children=0)
    with pytest.raises(SupervisorError):
        await DynamicSupervisor.start_child(none, worker())


async def test_a_restarting_child_still_occupies_its_slot_79():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) > 1:
            raise StartError("down")
        return await Worker.start_link({})

    # it retries without end (the node is never idle), until the test ends
    sup = await DynamicSupervisor.start_link(max_children=1, max_restarts=10**9)
    pid = await DynamicSupervisor.start_child(sup, ChildSpec(id=None, start=(flaky, ())))
    beamish.monitor(pid)
    GenServer.cast(pid, ("exit", "died"))
    await receive(Down, timeout=1)  # the supervisor has the Exit, ahead of the next call
    assert [c.pid for c in await DynamicSupervisor.which_children(sup)] == ["restarting"]
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, worker())
    assert info.value.reason == "max_children"


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        ("temporary", "shutdown", False), ("temporary", ("shutdown", "signal"), False),
        ("temporary", "whatever", False), ("transient", "shutdown", False),
        ("transient", ("shutdown", "signal"), False), ("transient", "whatever", True),
        ("permanent", "shutdown", True), ("permanent", ("shutdown", "signal"), True),
        ("permanent", "whatever", True),
    ],
)
async def test_restart_types_80(restart, reason, restarted):
    sup = await DynamicSupervisor.start_link(max_restarts=100)
    pid = await DynamicSupervisor.start_child(sup, worker(restart))
    ref = beamish.monitor(pid)
    GenServer.cast(pid, ("exit", reason))
    await receive(Down, timeout=1)
    del ref
    await wait_until_idle()
    counts = await DynamicSupervisor.count_children(sup)
    assert counts == (ChildCounts(1, 1, 0, 1) if restarted else ChildCounts(0, 0, 0, 0))
    children = await DynamicSupervisor.which_children(sup)
    if restarted:
        assert children[0].pid != pid


@pytest.mark.parametrize("max_restarts", [1, 10])
async def test_intensity_applies_to_failed_restarts_82(max_restarts):
    beamish.trap_exit(True)
    calls = []

    async def fails_after_first():
        calls.append(1)
        if len(calls) > 1:
            raise StartError("no")
        return await Worker.start_link({})

    sup = await DynamicSupervisor.start_link(max_restarts=max_restarts)
    pid = await DynamicSupervisor.start_child(
        sup, ChildSpec(id=None, start=(fails_after_first, ()))
    )
    GenServer.cast(pid, ("exit", "shutdown"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")


async def test_the_crash_that_exceeds_the_intensity_is_reported_as_giving_up(caplog):
    beamish.trap_exit(True)
    sup = await DynamicSupervisor.start_link(max_restarts=0)
    child = await DynamicSupervisor.start_child(sup, Worker)
    GenServer.cast(child, ("exit", "died"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")
    [report] = [r.getMessage() for r in caplog.records if "exited with reason" in r.getMessage()]
    assert f"child {child!r} (Worker)" in report and "restarting it" not in report
    assert "shutting down: restart intensity exceeded (1 restart in 5 s" in report


async def test_terminate_child_by_pid_83():
    sup = await DynamicSupervisor.start_link()
    brutal = await DynamicSupervisor.start_child(
        sup, worker(trap=True).replace(shutdown="brutal_kill")
    )
    timed = await DynamicSupervisor.start_child(sup, worker(trap=True).replace(shutdown=1.0))
    refs = {beamish.monitor(brutal): "killed", beamish.monitor(timed): "shutdown"}
    for pid in (brutal, timed):
        assert await DynamicSupervisor.terminate_child(sup, pid) is None
        down = await receive(Down, timeout=1)
        assert down.reason == refs[down.ref]
        with pytest.raises(SupervisorError) as info:
            await DynamicSupervisor.terminate_child(sup, pid)
        assert info.value.reason == "not_found"
    assert await DynamicSupervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_terminate_a_restarting_child_83():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) > 1:
            raise StartError("down")
        return await Worker.start_link({})

    sup = await DynamicSupervisor.start_link(max_restarts=10**9)  # it retries without end
    pid = await DynamicSupervisor.start_child(sup, ChildSpec(id=None, start=(flaky, ())))
    beamish.monitor(pid)
    GenServer.cast(pid, ("exit", "died"))
    await receive(Down, timeout=1)  # the supervisor has the Exit, ahead of the next call
    assert (await DynamicSupervisor.count_children(sup)).active == 0
    assert await DynamicSupervisor.terminate_child(sup, pid) is None
    assert await DynamicSupervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_extra_arguments_85():
    me = beamish.self()

    async def runner(report, arg):
        send(report, ("ran", arg))
        return await Worker.start_link({})

    sup = await DynamicSupervisor.start_link(extra_arguments=[me])
    pid = await DynamicSupervisor.start_child(
        sup, ChildSpec(id=None, start=(runner, ("x",)), restart="transient")
    )
    assert await receive(timeout=1) == ("ran", "x")
    GenServer.cast(pid, ("exit", "abnormal"))
    assert await receive(timeout=1) == ("ran", "x")  # restarted with the same extras


async def test_init_defaults_and_validation_86():
    flags = DynamicSupervisor.init()
    assert (flags.strategy, flags.max_restarts, flags.max_seconds) == ("one_for_one", 3, 5.0)
    assert (flags.max_children, flags.extra_arguments) == ("infinity", ())
    cases = [
        ({"strategy": "one_for_all"}, "invalid_strategy"),
        ({"max_restarts": -1}, "invalid_intensity"),
        ({"max_seconds": 0}, "invalid_period"),
        ({"max_children": -1}, "invalid_max_children"),
        ({"extra_arguments": -1}, "invalid_extra_arguments"),
    ]
    for options, kind in cases:
        with pytest.raises(SupervisorError) as info:
            DynamicSupervisor.init(**options)
        assert info.value.reason[1][0] == kind

    class Unknown(DynamicSupervisor):
        def init(self, arg):
            return "unknown"

    class Ignores(DynamicSupervisor):
        def init(self, arg):
            return beamish.Ignore()

    with pytest.raises(StartError) as info:
        await Unknown.start_link(None)
    assert info.value.reason == ("bad_return", (Unknown, "init", "unknown"))
    with pytest.raises(beamish.StartIgnored):
        await Ignores.start_link(None)


async def test_invalid_child_specs_are_rejected_before_asking_88():
    sup = await DynamicSupervisor.start_link()
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, {})
    assert info.value.reason == ("invalid_child_spec", {})
    with pytest.raises(SupervisorError) as info:  # Elixir's validate_child: the whole spec
        await DynamicSupervisor.start_child(sup, {"id": "x"})
    assert info.value.reason == ("invalid_child_spec", {"id": "x"})
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, ChildSpec(id=None, start=("nope", ())))
    assert info.value.reason[0] == "invalid_mfa"
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child(sup, worker().replace(shutdown=-1))
    assert info.value.reason == ("invalid_shutdown", -1)


async def test_shutdown_of_dynamic_children_is_concurrent_89():
    beamish.trap_exit(True)
    sup = await DynamicSupervisor.start_link()
    for _ in range(5):
        await DynamicSupervisor.start_child(
            sup, worker(trap=True, slow_exit=0.2).replace(shutdown=1.0)
        )
    started = time.monotonic()
    await DynamicSupervisor.stop(sup)
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 0.6  # about one child's 0.2 s, not 5 x 0.2 s


async def test_start_child_failure_leaves_nothing_and_ignore_returns_none():
    class Ignored(GenServer):
        def init(self, arg):
            return beamish.Ignore()

    sup = await DynamicSupervisor.start_link()

    async def fails():
        raise StartError("nope")

    with pytest.raises(StartError):
        await DynamicSupervisor.start_child(sup, ChildSpec(id=None, start=(fails, ())))
    ignored = ChildSpec(id=None, start=(Ignored.start_link, (None,)))
    assert await DynamicSupervisor.start_child(sup, ignored) is None
    assert await DynamicSupervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)


async def test_dynamic_supervisor_as_a_module_under_a_supervisor():
    class Rooms(DynamicSupervisor):
        def init(self, arg):
            return DynamicSupervisor.init(max_children=arg)

    top = await beamish.Supervisor.start_link([(Rooms, 2)])
    rooms = (await beamish.Supervisor.which_children(top))[0]
    assert rooms.type == "supervisor"
    await DynamicSupervisor.start_child(rooms.pid, worker())
    await DynamicSupervisor.start_child(rooms.pid, worker())
    with pytest.raises(SupervisorError):
        await DynamicSupervisor.start_child(rooms.pid, worker())


async def test_dynamic_supervisor_with_options_as_a_child():
    """Elixir's {DynamicSupervisor, name: ..., max_children: ...}."""
    await beamish.Supervisor.start_link([
        (DynamicSupervisor, {"name": "rooms", "max_children": 1}),
        (DynamicSupervisor, {"name": "other"}),
    ])
    await DynamicSupervisor.start_child("rooms", worker())
    with pytest.raises(SupervisorError) as info:
        await DynamicSupervisor.start_child("rooms", worker())
    assert info.value.reason == "max_children"
    assert DynamicSupervisor.child_spec({"name": "rooms"}).id == ("DynamicSupervisor", "rooms")


async def test_start_errors_name_the_public_supervisor_not_its_hidden_server():
    async def refuses():
        raise StartError("nope")

    with pytest.raises(StartError) as info:
        await beamish.Supervisor.start_link([ChildSpec(id="bad", start=(refuses, ()))])
    assert "_SupervisorServer" not in str(info.value)
    assert str(info.value).startswith("Supervisor failed to start")
