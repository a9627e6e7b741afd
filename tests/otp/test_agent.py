"""Agent, by the reference behaviours (OTP-SEMANTICS section 10; item numbers in names)."""

from __future__ import annotations

import pytest

import beamish
from beamish import Agent, CallError, ChildSpec, Crash, GenServer, StartError, Supervisor


def put(mapping, key, value):
    return {**mapping, key: value}


async def test_agent_basic_workflow_124():
    agent = await Agent.start_link(lambda: {})
    assert agent in beamish.process_info(beamish.self()).links
    assert await Agent.update(agent, put, "hello", "world") is None
    assert await Agent.get(agent, lambda state: state["hello"]) == "world"
    assert await Agent.get_and_update(agent, lambda state: (state["hello"], {})) == "world"
    assert await Agent.get(agent, lambda state: state) == {}
    exited = beamish.wait_exit(agent)
    assert await Agent.stop(agent) is None
    assert await exited == "normal"


async def test_agent_named_start_and_cast_125():
    agent = await Agent.start(dict, name="agent")
    assert agent not in beamish.process_info(beamish.self()).links
    assert Agent.cast("agent", put, "hello", "world") is None
    assert await Agent.get("agent", dict.get, "hello") == "world"  # the cast came first
    await Agent.stop("agent")
    assert beamish.whereis("agent") is None


async def test_agent_code_change_127():
    agent = await Agent.start_link(dict)
    await GenServer.suspend(agent)
    await GenServer.change_code(agent, None, lambda state: put(state, "hello", "world"))
    assert await GenServer.get_state(agent) == {"hello": "world"}

    def broken(state):
        raise KeyError("no upgrade path")

    with pytest.raises(KeyError):
        await GenServer.change_code(agent, None, broken)
    assert await GenServer.get_state(agent) == {"hello": "world"}  # unchanged
    await GenServer.change_code(agent, None, (put, "version", 2))
    await GenServer.resume(agent)
    assert await Agent.get(agent, dict.get, "version") == 2
    await Agent.stop(agent)


class Settings(Agent, restart="transient", shutdown=1.0):
    @classmethod
    async def start_link(cls, defaults):
        return await Agent.start_link(dict, defaults, name="settings")


async def test_agent_under_a_supervisor_128():
    sup = await Supervisor.start_link([(Agent, lambda: "ok")])
    [child] = await Supervisor.which_children(sup)
    assert await Agent.get(child.pid, lambda state: state) == "ok"
    await Supervisor.stop(sup)

    def initial():
        return 0

    assert Agent.child_spec(initial) == ChildSpec(
        id=Agent, start=(Agent.start_link, (initial,)), modules=(Agent,)
    )
    spec = Settings.child_spec({"theme": "dark"})
    assert (spec.id, spec.start, spec.restart, spec.shutdown) == (
        Settings, (Settings.start_link, ({"theme": "dark"},)), "transient", 1.0,
    )
    sup = await Supervisor.start_link([(Settings, {"theme": "dark"})])
    assert await Agent.get("settings", dict.get, "theme") == "dark"
    await Supervisor.stop(sup)


async def test_agent_failures_reach_the_caller():
    beamish.trap_exit(True)
    agent = await Agent.start_link(lambda: 1)
    with pytest.raises(CallError) as info:
        await Agent.get(agent, lambda state: state / 0)
    why, call = info.value.reason
    assert isinstance(why, Crash) and isinstance(why.exception, ZeroDivisionError)
    assert call == ("Agent.get", agent, 5.0)
    assert not beamish.is_alive(agent)  # the function ran in the agent, and killed it

    agent = await Agent.start_link(lambda: 1)
    with pytest.raises(CallError) as info:
        await Agent.get_and_update(agent, lambda state: state + 1)
    assert "must return (reply, new_value)" in str(info.value.why.exception)

    with pytest.raises(CallError) as info:
        await Agent.get(agent, lambda state: state)
    assert info.value.why == "noproc"
    with pytest.raises(StartError) as started:
        await Agent.start_link(lambda: 1 / 0)
    assert isinstance(started.value.reason, Crash)
    with pytest.raises(TypeError, match="takes a function"):
        await Agent.get(agent, "state")


async def test_agent_get_times_out_without_a_late_reply():
    agent = await Agent.start_link(lambda: "slow")

    async def slowly(state):
        await beamish.sleep(0.05)
        return state

    with pytest.raises(CallError) as info:
        await Agent.get(agent, slowly, timeout=0.01)
    assert info.value.reason == ("timeout", ("Agent.get", agent, 0.01))
    assert await Agent.get(agent, lambda state: state) == "slow"  # async fns run in the agent
    assert await beamish.receive(timeout=0, default=None) is None
    await Agent.stop(agent)
