"""Supervisor, by the reference behaviours (OTP-SEMANTICS section 6; item numbers in names)."""

from __future__ import annotations

import time

import pytest

import beamish
from beamish import (
    ChildCounts,
    ChildSpec,
    Down,
    Exit,
    GenServer,
    NoReply,
    Ok,
    Reply,
    StartError,
    StartIgnored,
    Stop,
    Supervisor,
    SupervisorError,
    receive,
    send,
)
from beamish.testing import wait_until_idle


class Worker(GenServer):
    """A child whose behaviour the test picks through its argument."""

    def init(self, arg):
        if isinstance(arg, dict) and arg.get("trap"):
            beamish.trap_exit(True)
        if isinstance(arg, dict) and arg.get("report"):
            send(arg["report"], ("started", arg.get("id"), beamish.self()))
        return Ok(arg)

    def handle_call(self, request, from_, state):
        match request:
            case ("stop", reason):
                return Stop(reason, state, reply="ok")
            case "state":
                return Reply(state, state)

    async def handle_cast(self, request, state):
        match request:
            case ("exit", reason):
                raise beamish.ProcessExit(reason)
            case ("busy", seconds):  # awaiting in a handler: exit messages wait their turn
                await beamish.sleep(seconds)
        return NoReply(state)

    def terminate(self, reason, state):
        if isinstance(state, dict) and state.get("report"):
            send(state["report"], ("terminated", state.get("id"), reason))


def spec(child_id, restart="permanent", **arg):
    return ChildSpec(id=child_id, start=(Worker.start_link, ({"id": child_id, **arg},)),
                     restart=restart)


async def pid_of(sup, child_id):
    for child in await Supervisor.which_children(sup):
        if child.id == child_id:
            return child.pid
    return None


async def wait_new_pid(sup, child_id, old):
    """The pid of ``child_id`` once the supervisor has reacted; it must not be ``old``."""
    await wait_until_idle()
    pid = await pid_of(sup, child_id)
    assert type(pid) is beamish.Pid and pid != old, f"{child_id} was not restarted: {pid!r}"
    return pid


async def test_children_start_in_order_and_start_link_waits_50():
    me = beamish.self()
    ids = ["c7", "c3", "c10", "c2", "c5"]
    sup = await Supervisor.start_link([spec(i, report=me) for i in ids])
    started = [await receive(("started", beamish.ANY, beamish.ANY), timeout=0) for _ in ids]
    assert [s[1] for s in started] == ids
    pids = [s[2] for s in started]
    assert pids == sorted(pids)
    assert await Supervisor.count_children(sup) == ChildCounts(5, 5, 0, 5)


async def test_permanent_children_are_always_restarted_52():
    sup = await Supervisor.start_link([spec("c")])
    for reason in ["normal", "shutdown", ("shutdown", "some_info"), "died"]:
        old = await pid_of(sup, "c")
        GenServer.cast(old, ("exit", reason))
        await wait_new_pid(sup, "c", old)
        assert await Supervisor.count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_transient_children_restart_only_on_abnormal_exits_53():
    sup = await Supervisor.start_link([spec("c", restart="transient")], max_restarts=10)
    for reason in ["normal", "shutdown", ("shutdown", "x")]:
        pid = await pid_of(sup, "c")
        ref = beamish.monitor(pid)
        GenServer.cast(pid, ("exit", reason))
        await receive(Down, timeout=1)
        await wait_until_idle()
        assert await pid_of(sup, "c") is None
        assert await Supervisor.count_children(sup) == ChildCounts(1, 0, 0, 1)
        await Supervisor.restart_child(sup, "c")
        del ref
    old = await pid_of(sup, "c")
    GenServer.cast(old, ("exit", "died"))
    await wait_new_pid(sup, "c", old)


async def test_temporary_children_are_never_restarted_and_their_spec_goes():
    sup = await Supervisor.start_link([spec("t", restart="temporary")])
    pid = await pid_of(sup, "t")
    GenServer.cast(pid, ("exit", "died"))
    await wait_until_idle()
    assert await Supervisor.which_children(sup) == []


async def test_one_for_one_restarts_only_the_failed_child_55():
    sup = await Supervisor.start_link([spec("c1"), spec("c2")], strategy="one_for_one")
    c1, c2 = await pid_of(sup, "c1"), await pid_of(sup, "c2")
    GenServer.cast(c1, ("exit", "died"))
    await wait_new_pid(sup, "c1", c1)
    assert await pid_of(sup, "c2") == c2
    assert await Supervisor.count_children(sup) == ChildCounts(2, 2, 0, 2)


async def test_one_for_all_restarts_everyone_56():
    me = beamish.self()
    sup = await Supervisor.start_link(
        [spec("c1"), spec("c2", report=me)], strategy="one_for_all"
    )
    c1, c2 = await pid_of(sup, "c1"), await pid_of(sup, "c2")
    await receive(("started", "c2", beamish.ANY), timeout=1)
    ref = beamish.monitor(c2)
    GenServer.cast(c1, ("exit", "died"))
    assert await receive(Down, timeout=1) == Down(ref, c2, "shutdown")
    new1 = await wait_new_pid(sup, "c1", c1)
    new2 = await wait_new_pid(sup, "c2", c2)
    assert {new1, new2}.isdisjoint({c1, c2})
    assert await Supervisor.count_children(sup) == ChildCounts(2, 2, 0, 2)


async def test_rest_for_one_restarts_the_failed_and_later_children():
    sup = await Supervisor.start_link([spec("a"), spec("b"), spec("c")], strategy="rest_for_one")
    a, b, c = [await pid_of(sup, i) for i in "abc"]
    GenServer.cast(b, ("exit", "died"))
    await wait_new_pid(sup, "b", b)
    await wait_new_pid(sup, "c", c)
    assert await pid_of(sup, "a") == a


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_restart_intensity_limit_takes_the_supervisor_down_58(strategy):
    beamish.trap_exit(True)
    sup = await Supervisor.start_link(
        [spec("c1"), spec("c2")], strategy=strategy, max_restarts=2, max_seconds=3600
    )
    for _ in range(2):
        old = await pid_of(sup, "c1")
        GenServer.cast(old, ("exit", "died"))
        await wait_new_pid(sup, "c1", old)
    c2 = await pid_of(sup, "c2")
    ref = beamish.monitor(c2)
    GenServer.cast(await pid_of(sup, "c1"), ("exit", "died"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")
    assert (await receive(Down, timeout=1)).ref == ref


async def test_max_restarts_zero_fails_at_the_first_crash_58():
    beamish.trap_exit(True)
    sup = await Supervisor.start_link([spec("c")], max_restarts=0)
    GenServer.cast(await pid_of(sup, "c"), ("exit", "died"))
    assert await receive(Exit, timeout=1) == Exit(sup, "shutdown")


async def test_the_intensity_window_slides_59():
    sup = await Supervisor.start_link([spec("c")], max_restarts=1, max_seconds=0.1)
    for _ in range(4):
        old = await pid_of(sup, "c")
        beamish.exit(old, "kill")
        await wait_new_pid(sup, "c", old)
        await beamish.sleep(0.15)  # the subject: time passes beyond the 0.1 s window
    assert beamish.is_alive(sup)


class FailsAfterFirst:
    """A start function that works once, then fails (supervisor_1.erl's start_child(error))."""

    def __init__(self):
        self.calls = 0

    async def start(self):
        self.calls += 1
        if self.calls > 1:
            raise StartError("no_more")
        return await Worker.start_link({"id": "c1"})


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_escalation_when_a_restart_keeps_failing_61(strategy):
    beamish.trap_exit(True)
    failing = FailsAfterFirst()
    children = [ChildSpec(id="c1", start=(failing.start, ())), spec("c2")]
    sup = await Supervisor.start_link(children, strategy=strategy, max_restarts=4)
    c2 = await pid_of(sup, "c2")
    ref = beamish.monitor(c2)
    GenServer.cast(await pid_of(sup, "c1"), ("exit", "died"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")
    assert (await receive(Down, timeout=1)).ref == ref
    assert failing.calls == 5  # the first start and 4 failed restarts


class Gate:
    """Start functions that fail as many times as the test decides."""

    def __init__(self):
        self.failures = {}  # child id: how many of its next starts fail
        self.starts = []

    def spec(self, child_id):
        async def start():
            self.starts.append(child_id)
            if self.failures.get(child_id, 0) > 0:
                self.failures[child_id] -= 1
                raise StartError("gated")
            return await Worker.start_link({"id": child_id})

        return ChildSpec(id=child_id, start=(start, ()))


async def test_group_restart_where_another_child_fails_one_for_all_62():
    gate = Gate()
    sup = await Supervisor.start_link(
        [gate.spec("c1"), gate.spec("c2")], strategy="one_for_all", max_restarts=3
    )
    gate.failures["c2"] = 1
    c1 = await pid_of(sup, "c1")
    GenServer.cast(c1, ("exit", "died"))
    await wait_new_pid(sup, "c1", c1)
    await wait_new_pid(sup, "c2", None)
    # c1 was started again after c2 failed: the whole group restarted twice
    assert gate.starts.count("c1") == 3


async def test_group_restart_where_another_child_fails_rest_for_one_62():
    gate = Gate()
    sup = await Supervisor.start_link(
        [gate.spec("c1"), gate.spec("c2")], strategy="rest_for_one", max_restarts=3
    )
    gate.failures["c2"] = 1
    GenServer.cast(await pid_of(sup, "c2"), ("exit", "died"))
    await wait_new_pid(sup, "c2", None)
    assert gate.starts.count("c1") == 1  # c1 is not restarted a second time


async def test_shutdown_values_64():
    me = beamish.self()
    beamish.trap_exit(True)
    children = [
        Supervisor.child_spec_of(spec("inf", trap=True, report=me), shutdown="infinity"),
        Supervisor.child_spec_of(spec("coop", trap=True, report=me), shutdown=1.0),
        Supervisor.child_spec_of(spec("busy", trap=True), shutdown=0.2),
        Supervisor.child_spec_of(spec("brutal", trap=True), shutdown="brutal_kill"),
        Supervisor.child_spec_of(spec("plain"), shutdown=10),
    ]
    sup = await Supervisor.start_link(children)
    refs = {}
    for child in await Supervisor.which_children(sup):
        refs[beamish.monitor(child.pid)] = child.id
    GenServer.cast(await pid_of(sup, "busy"), ("busy", 0.5))  # cannot act on signals
    await wait_until_idle()  # it is in its handler
    started = time.monotonic()
    beamish.exit(sup, "shutdown")
    reasons = {}
    for _ in range(5):
        down = await receive(Down, timeout=3)
        reasons[refs[down.ref]] = down.reason
    assert reasons == {
        "inf": "shutdown", "coop": "shutdown", "busy": "killed", "brutal": "killed",
        "plain": "shutdown",
    }
    assert time.monotonic() - started < 2.5
    assert await receive(Exit, timeout=1) == Exit(sup, "shutdown")


async def test_shutdown_order_is_reverse_of_start():
    me = beamish.self()
    beamish.trap_exit(True)
    sup = await Supervisor.start_link([spec(i, trap=True, report=me) for i in "abc"])
    for _ in "abc":
        await receive(("started", beamish.ANY, beamish.ANY), timeout=1)
    await Supervisor.stop(sup)
    order = [(await receive(("terminated", beamish.ANY, beamish.ANY), timeout=1))[1]
             for _ in "abc"]
    assert order == ["c", "b", "a"]


async def test_a_child_failing_during_start_aborts_the_start_65():
    me = beamish.self()
    beamish.trap_exit(True)

    class Refuses(GenServer):
        def init(self, arg):
            return Stop("r")

    children = [
        spec("c1", trap=True, report=me),
        ChildSpec(id="c2", start=(Refuses.start_link, (None,))),
        spec("c3", report=me),
    ]
    with pytest.raises(StartError) as info:
        await Supervisor.start_link(children)
    assert info.value.reason == ("shutdown", ("failed_to_start_child", "c2", "r"))
    assert (await receive(("started", beamish.ANY, beamish.ANY), timeout=1))[1] == "c1"
    assert await receive(("terminated", "c1", beamish.ANY), timeout=1) == (
        "terminated", "c1", "shutdown"
    )
    assert await receive(("started", "c3", beamish.ANY), timeout=0.05, default=None) is None


async def test_start_child_results_67():
    sup = await Supervisor.start_link([spec("child1")])
    new = await Supervisor.start_child(sup, spec("child2"))
    assert (await Supervisor.which_children(sup))[0].pid == new  # appended: most recent first
    child1 = await pid_of(sup, "child1")
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_child(sup, spec("child1"))
    assert info.value.reason == ("already_started", child1)
    await Supervisor.terminate_child(sup, "child1")
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_child(sup, spec("child1"))
    assert info.value.reason == "already_present"

    async def failing():
        raise StartError("reason")

    with pytest.raises(StartError) as failed:
        await Supervisor.start_child(sup, ChildSpec(id="bad", start=(failing, ())))
    assert failed.value.reason == "reason"

    async def returns_garbage():
        return 42

    with pytest.raises(StartError):
        await Supervisor.start_child(sup, ChildSpec(id="garbage", start=(returns_garbage, ())))
    assert {c.id for c in await Supervisor.which_children(sup)} == {"child1", "child2"}

    async def with_info():
        return (await Worker.start_link({"id": "info"}), "extra info")

    result = await Supervisor.start_child(sup, ChildSpec(id="info", start=(with_info, ())))
    assert result[1] == "extra info"
    await Supervisor.terminate_child(sup, "info")
    again = await Supervisor.restart_child(sup, "info")
    assert again[1] == "extra info"


async def test_terminate_child_68():
    sup = await Supervisor.start_link([spec("child1")])
    pid = await pid_of(sup, "child1")
    ref = beamish.monitor(pid)
    assert await Supervisor.terminate_child(sup, "child1") is None
    assert await receive(Down, timeout=1) == Down(ref, pid, "shutdown")
    assert await pid_of(sup, "child1") is None
    assert await Supervisor.count_children(sup) == ChildCounts(1, 0, 0, 1)
    assert await Supervisor.terminate_child(sup, "child1") is None
    with pytest.raises(SupervisorError) as info:
        await Supervisor.terminate_child(sup, "nope")
    assert info.value.reason == "not_found"
    running = await Supervisor.restart_child(sup, "child1")
    with pytest.raises(SupervisorError):
        await Supervisor.terminate_child(sup, running)  # by pid: not on a static supervisor
    assert beamish.is_alive(running)
    temp = await Supervisor.start_child(sup, spec("temp", restart="temporary"))
    await Supervisor.terminate_child(sup, "temp")
    assert "temp" not in {c.id for c in await Supervisor.which_children(sup)}
    assert not beamish.is_alive(temp)


async def test_which_children_and_count_children_70():
    inner = await Supervisor.start_link([spec("w")])
    sup = await Supervisor.start_link([
        spec("a"),
        ChildSpec(id="inner", start=(Supervisor.start_link, ([spec("x")],)), type="supervisor"),
    ])
    children = await Supervisor.which_children(sup)
    assert [(c.id, c.type) for c in children] == [("inner", "supervisor"), ("a", "worker")]
    assert await Supervisor.count_children(sup) == ChildCounts(2, 2, 1, 1)
    await Supervisor.terminate_child(sup, "a")
    assert await Supervisor.count_children(sup) == ChildCounts(2, 1, 1, 1)
    with pytest.raises(beamish.CallError) as info:
        await Supervisor.which_children("no_such_sup")
    assert info.value.why == "noproc"
    await Supervisor.stop(inner)


async def test_a_child_stuck_in_a_restart_loop_71():
    gate = Gate()
    sup = await Supervisor.start_link([gate.spec("c")], max_restarts=1000, max_seconds=60)
    gate.failures["c"] = 10**9  # it retries without end: the node is never idle
    child = await pid_of(sup, "c")
    beamish.monitor(child)
    GenServer.cast(child, ("exit", "died"))
    await receive(Down, timeout=1)  # the supervisor has the Exit, ahead of the next call
    assert await pid_of(sup, "c") == "restarting"
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_child(sup, gate.spec("c"))
    assert info.value.reason == "already_present"
    for op in (Supervisor.restart_child, Supervisor.delete_child):
        with pytest.raises(SupervisorError) as info:
            await op(sup, "c")
        assert info.value.reason == "restarting"
    assert await Supervisor.terminate_child(sup, "c") is None
    assert await pid_of(sup, "c") is None
    started = time.monotonic()
    await Supervisor.stop(sup)
    assert time.monotonic() - started < 1


async def test_a_temporary_child_whose_start_is_ignored_is_not_kept_70():
    """OTP's sup_start_ignore_temporary_child and sup_start_ignore_child: an ignored start
    keeps the spec of a permanent or transient child (pid None), not of a temporary one,
    at init and through start_child alike."""

    async def ignored():
        raise StartIgnored()

    temporary = ChildSpec(id="t", start=(ignored, ()), restart="temporary")
    permanent = ChildSpec(id="p", start=(ignored, ()))
    sup = await Supervisor.start_link([temporary, permanent, spec("w")], strategy="one_for_one")
    assert [c.id for c in await Supervisor.which_children(sup)] == ["w", "p"]
    assert await Supervisor.count_children(sup) == ChildCounts(2, 1, 0, 2)
    assert await Supervisor.start_child(sup, temporary.replace(id="t2")) is None
    assert await Supervisor.start_child(sup, permanent.replace(id="p2")) is None
    assert [c.id for c in await Supervisor.which_children(sup)] == ["p2", "w", "p"]
    assert await Supervisor.start_child(sup, temporary) is None  # not present: no error


async def test_supervisor_init_outcomes_73():
    class Ignores(Supervisor):
        def init(self, arg):
            return beamish.Ignore()

    class Raises(Supervisor):
        def init(self, arg):
            raise RuntimeError("boom")

    class Garbage(Supervisor):
        def init(self, arg):
            return "garbage"

    class BadStrategy(Supervisor):
        def init(self, arg):
            return Supervisor.init([], strategy="invalid")

    with pytest.raises(StartIgnored):
        await Ignores.start_link(None)
    with pytest.raises(StartError) as info:
        await Raises.start_link(None)
    assert isinstance(info.value.reason, beamish.Crash)
    with pytest.raises(StartError) as info:
        await Garbage.start_link(None)
    assert info.value.reason == ("bad_return", (Garbage, "init", "garbage"))
    with pytest.raises(StartError) as info:
        await BadStrategy.start_link(None)
    assert info.value.reason == ("supervisor_data", ("invalid_strategy", "invalid"))
    for flags, kind in [
        ({"max_restarts": -1}, "invalid_intensity"), ({"max_seconds": 0}, "invalid_period"),
    ]:
        with pytest.raises(SupervisorError) as bad:
            await Supervisor.start_link([], **flags)
        assert bad.value.reason[1][0] == kind


async def test_permanent_child_that_stops_normally_is_restarted_and_reregistered_74():
    class DynStack(GenServer):
        def init(self, arg):
            return Ok(["hello"])

        def handle_call(self, request, from_, state):
            match request:
                case "pop":
                    return Reply(state[0] if state else None, state[1:])
                case "stop":
                    return Stop("normal", state, reply="ok")

    spec_ = ChildSpec(id="stack", start=(DynStack.start_link, (None,)))
    spec_ = spec_.replace(start=(lambda: DynStack.start_link(None, name="dyn_stack"), ()))
    await Supervisor.start_link([spec_])
    assert await GenServer.call("dyn_stack", "pop") == "hello"
    old = beamish.whereis("dyn_stack")
    assert await GenServer.call("dyn_stack", "stop") == "ok"
    await wait_until_idle()  # restarted and registered again
    assert beamish.whereis("dyn_stack") not in (None, old)
    assert await GenServer.call("dyn_stack", "pop") == "hello"


async def test_stop_and_the_parent_link_76():
    me = beamish.self()
    sup = await Supervisor.start([spec("a", trap=True, report=me)])
    await Supervisor.stop(sup)
    assert not beamish.is_alive(sup)

    async def parent():
        await Supervisor.start_link([spec("b", trap=True, report=me)])
        send(me, "parent done")

    beamish.spawn(parent)
    await receive("parent done", timeout=1)
    # the parent ended normally: the supervisor stops its children (with "shutdown") and exits
    assert await receive(("terminated", "b", beamish.ANY), timeout=1) == (
        "terminated", "b", "shutdown"
    )


async def test_a_child_that_unlinks_itself_can_still_be_terminated_77():
    class Unlinker(GenServer):
        def init(self, arg):
            return Ok(arg, 0)

        def handle_info(self, message, state):
            if message == "timeout":
                beamish.unlink(state)
            return NoReply(state)

    sup = await Supervisor.start_link(
        [ChildSpec(id="u", start=(lambda: Unlinker.start_link(beamish.self()), ()))]
    )
    await wait_until_idle()  # its timeout of 0 has fired: it unlinked
    await Supervisor.terminate_child(sup, "u")
    send(sup, "plain message")
    assert await Supervisor.count_children(sup) == ChildCounts(1, 0, 0, 1)


async def test_child_spec_forms_and_overrides():
    by_class = Supervisor.child_spec_of(Worker)
    by_pair = Supervisor.child_spec_of((Worker, 5))
    by_map = Supervisor.child_spec_of({"id": "m", "start": (Worker.start_link, [None])})
    assert by_class.start == (Worker.start_link, (None,))
    assert by_pair.start == (Worker.start_link, (5,))
    assert by_map.start == (Worker.start_link, (None,))
    overridden = Supervisor.child_spec_of(Worker, id="w2", restart="temporary", shutdown=1)
    assert (overridden.id, overridden.restart, overridden.shutdown) == ("w2", "temporary", 1)
    with pytest.raises(TypeError, match="unknown child spec key"):
        Supervisor.child_spec_of(Worker, restrat="temporary")
    with pytest.raises(SupervisorError) as info:
        Supervisor.child_spec_of(Worker, shutdown=-1)
    assert info.value.reason == ("invalid_shutdown", -1)
    with pytest.raises(SupervisorError, match="give a class with child_spec"):
        Supervisor.child_spec_of(42)
    with pytest.raises(SupervisorError, match="share the id"):
        await Supervisor.start_link([Worker, Worker])


async def test_malformed_child_specs_are_refused_with_otp_reasons_67():
    """OTP's check_childspec, as Elixir's Supervisor.start_child reports it: a missing key
    is named (missing_id before missing_start), then each field is checked in turn."""
    sup = await Supervisor.start_link([], strategy="one_for_one")
    start = (Worker.start_link, (None,))
    cases = [
        ({}, "missing_id"),
        ({"start": start}, "missing_id"),
        ({"id": "x"}, "missing_start"),
        ({"id": "x", "start": "nope"}, ("invalid_mfa", "nope")),
        ({"id": "x", "start": start, "restart": "often"}, ("invalid_restart_type", "often")),
        ({"id": "x", "start": start, "type": "boss"}, ("invalid_child_type", "boss")),
        ({"id": "x", "start": start, "shutdown": -1}, ("invalid_shutdown", -1)),
        ({"id": "x", "start": start, "modules": Worker}, ("invalid_modules", Worker)),
        (42, ("invalid_child_spec", 42)),
    ]
    for child, reason in cases:
        with pytest.raises(SupervisorError) as info:
            await Supervisor.start_child(sup, child)
        assert info.value.reason == reason, child
    assert "has no id" in str(
        (await _refusal(Supervisor.start_child(sup, {"start": start}))).value
    )
    assert await Supervisor.count_children(sup) == ChildCounts(0, 0, 0, 0)
    listed = await Supervisor.start_child(sup, {"id": "l", "start": start, "modules": [Worker]})
    assert (await Supervisor.get_childspec(sup, "l")).modules == (Worker,)
    assert beamish.is_alive(listed)
    # among a supervisor's initial children the reason is wrapped, as OTP's {start_spec, _}
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_link([{"id": "x"}], strategy="one_for_one")
    assert info.value.reason == ("start_spec", "missing_start")
    with pytest.raises(SupervisorError) as info:
        await Supervisor.start_link([Worker, Worker], strategy="one_for_one")
    assert info.value.reason == ("start_spec", ("duplicate_child_name", Worker))


async def _refusal(call):
    with pytest.raises(SupervisorError) as info:
        await call
    return info


async def test_supervisor_module_and_nested_trees():
    class Inner(Supervisor):
        def init(self, arg):
            return Supervisor.init([(Worker, {"id": "leaf"})], strategy="one_for_one")

    class Outer(Supervisor, restart="permanent"):
        def init(self, arg):
            return Supervisor.init([Inner, spec("w")], strategy="one_for_all")

    assert Outer.child_spec(None).type == "supervisor"
    assert Outer.child_spec(None).shutdown == "infinity"
    top = await Outer.start_link(None, name="top")
    inner = await pid_of(top, Inner)
    assert (await Supervisor.count_children(inner)).active == 1
    with pytest.raises(TypeError, match="sets its strategy in init"):
        await Outer.start_link(None, strategy="one_for_one")
    await Supervisor.stop("top")
    assert not beamish.is_alive(inner)


async def test_restart_of_a_crashing_child_is_logged(caplog):
    sup = await Supervisor.start_link([spec("c")])
    old = await pid_of(sup, "c")
    GenServer.cast(old, ("exit", "died"))
    await wait_new_pid(sup, "c", old)
    assert "child 'c'" in caplog.text and "'died'" in caplog.text
    assert "restarting it" in caplog.text


async def test_the_crash_that_exceeds_the_intensity_is_reported_as_giving_up_58(caplog):
    """The report of the crash that takes a supervisor over its restart intensity says it
    gives up (OTP's reached_max_restart_intensity), not "restarting it"; a child whose id
    is a class is named by the class's qualified name."""

    class Stubborn(Worker):
        pass

    beamish.trap_exit(True)
    sup = await Supervisor.start_link(
        [(Stubborn, {"id": "s"})], strategy="one_for_one", max_restarts=1, max_seconds=3600
    )
    old = await pid_of(sup, Stubborn)
    GenServer.cast(old, ("exit", "died"))
    await wait_new_pid(sup, Stubborn, old)
    GenServer.cast(await pid_of(sup, Stubborn), ("exit", "died again"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")
    lines = [r.getMessage() for r in caplog.records if r.name == "beamish.supervisor"]
    first, last = [line for line in lines if "exited with reason" in line]
    assert "restarting it" in first and "'died'" in first
    assert "restarting it" not in last and "'died again'" in last
    assert "shutting down: restart intensity exceeded (2 restarts in 3600 s" in last
    assert "child Stubborn" in first and "<class" not in "\n".join(lines)


async def test_a_permanent_child_exiting_normally_past_the_intensity_is_reported(caplog):
    beamish.trap_exit(True)
    sup = await Supervisor.start_link([spec("n")], strategy="one_for_one", max_restarts=0)
    GenServer.cast(await pid_of(sup, "n"), ("exit", "normal"))
    assert await receive(Exit, timeout=2) == Exit(sup, "shutdown")
    assert "shutting down: restart intensity exceeded (1 restart in 5 s" in caplog.text
