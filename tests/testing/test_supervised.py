"""start_supervised, stop_supervised, supervised_scope, and the plugin's teardown."""

from __future__ import annotations

import asyncio

import pytest

import beamish
from beamish import (
    ChildSpec,
    Down,
    GenServer,
    Ignore,
    NoReply,
    Ok,
    Reply,
    StartError,
    Stop,
    SupervisorError,
    receive,
    send,
)
from beamish.testing import (
    _supervised,
    assert_receive,
    assert_received,
    refute_received,
    start_supervised,
    stop_supervised,
    supervised_scope,
    wait_until_idle,
)


class Recorder(GenServer):
    """Traps exits, so that its terminate runs on shutdown, and reports it to ``owner``."""

    def init(self, arg):
        beamish.trap_exit(True)
        return Ok(arg)

    def handle_call(self, request, from_, state):
        return Reply(state[0], state)

    def terminate(self, reason, state):
        name, owner = state
        send(owner, ("terminated", name, reason))


class Counter(GenServer):
    def init(self, start):
        return Ok(start or 0)

    def handle_call(self, request, from_, count):
        return Reply(count, count)

    def handle_cast(self, request, count):
        if request == "crash":
            raise RuntimeError("crash on purpose")
        return NoReply(count + 1)


async def test_start_supervised_returns_a_running_child_not_linked_to_the_test():
    pid = await start_supervised((Counter, 5))
    assert await GenServer.call(pid, "get") == 5
    assert pid not in beamish.process_info(beamish.self()).links
    assert beamish.process_info(pid).links  # linked to its supervisor


async def test_start_supervised_accepts_every_child_form():
    by_class = await start_supervised(Counter)
    by_pair = await start_supervised((Counter, 2), id="pair")
    by_spec = await start_supervised(ChildSpec(id="spec", start=(Counter.start_link, (3,))))
    by_map = await start_supervised({"id": "map", "start": (Counter.start_link, [4])})
    counts = [await GenServer.call(p, "get") for p in (by_class, by_pair, by_spec, by_map)]
    assert counts == [0, 2, 3, 4]


async def test_start_supervised_calls_at_once_share_one_supervisor():
    a, b = await asyncio.gather(
        start_supervised(Counter, id="a"), start_supervised(Counter, id="b")
    )
    assert beamish.process_info(a).parent == beamish.process_info(b).parent


async def test_supervised_scope_stops_children_in_reverse_start_order():
    me = beamish.self()
    async with supervised_scope():
        for name in ("a", "b", "c"):
            await start_supervised((Recorder, (name, me)), id=name)
    assert [await receive(timeout=0) for _ in range(3)] == [
        ("terminated", "c", "shutdown"),
        ("terminated", "b", "shutdown"),
        ("terminated", "a", "shutdown"),
    ]
    assert beamish.processes() == [me]


async def test_start_supervised_restarts_a_crashed_child_by_its_restart_type(caplog):
    pid = await start_supervised(Counter)
    GenServer.cast(pid, "crash")
    await wait_until_idle()
    assert not beamish.is_alive(pid)
    [restarted] = [p for p in beamish.processes() if p != beamish.self() and
                   beamish.process_info(p).initial_call.endswith("Counter")]
    assert await GenServer.call(restarted, "get") == 0
    assert "crash on purpose" in caplog.text


async def test_start_supervised_same_id_twice_fails_with_a_hint():
    await start_supervised(Counter)
    hint = r"already running as <.*>\. Give the second one its own id: start_supervised\(child"
    with pytest.raises(SupervisorError, match=hint):
        await start_supervised(Counter)
    await start_supervised(Counter, id="second")


class Refuses(GenServer):
    def init(self, arg):
        return Stop("bad config") if arg == "stop" else Ignore()


async def test_start_supervised_failures_raise_start_error():
    with pytest.raises(StartError, match=r"^start_supervised\(\) could not start 'refuses': "
                                         r"Refuses failed to start: 'bad config'") as failed:
        await start_supervised((Refuses, "stop"), id="refuses")
    assert failed.value.reason == "bad config"
    with pytest.raises(StartError, match=r"'ignored' ignored the start \(no pid\)"):
        await start_supervised((Refuses, "ignore"), id="ignored")
    await start_supervised(Counter, id="ignored")  # the ignored spec was not kept


async def test_start_supervised_refuses_unknown_overrides():
    with pytest.raises(TypeError, match="unknown child spec key"):
        await start_supervised(Counter, restrat="temporary")


async def test_stop_supervised_stops_the_child_and_forgets_it():
    me = beamish.self()
    with pytest.raises(SupervisorError, match="no child with id 'r'"):
        await stop_supervised("r")  # nothing started yet
    pid = await start_supervised((Recorder, ("r", me)), id="r")
    await stop_supervised("r")
    assert await assert_received() == ("terminated", "r", "shutdown")
    assert not beamish.is_alive(pid)
    with pytest.raises(SupervisorError, match="no child with id 'r'"):
        await stop_supervised("r")
    await start_supervised((Recorder, ("r", me)), id="r", restart="temporary")
    await stop_supervised("r")
    await assert_received(("terminated", "r", "shutdown"))


async def test_start_supervised_belongs_to_the_test_process():
    me = beamish.self()

    async def helper():
        try:
            await start_supervised(Counter)
        except RuntimeError as exc:
            send(me, str(exc))

    beamish.spawn_link(helper)
    message = await assert_receive(timeout=1)
    assert message.startswith("start_supervised() works in a test scope: in an async test run "
                              "by the beamish pytest plugin (from the test process itself")


class CrashesAtOnce(GenServer):
    def init(self, arg):
        return Ok(None, 0)

    def handle_info(self, message, state):
        raise RuntimeError("crash loop")


async def test_a_test_supervisor_that_gives_up_is_reported(caplog):
    with pytest.raises(RuntimeError, match=r"the test supervisor <.*> exited during the test "
                                           r"with reason 'shutdown'"):
        async with supervised_scope():
            await start_supervised(CrashesAtOnce)
            await wait_until_idle()
            with pytest.raises(RuntimeError, match="exited during the test"):
                await start_supervised(Counter)
    assert "shutting down: restart intensity exceeded" in caplog.text


class Stuck(GenServer):
    """Never finishes its terminate."""

    def init(self, owner):
        beamish.trap_exit(True)
        send(owner, ("stuck", beamish.self()))
        return Ok(None)

    async def terminate(self, reason, state):
        await beamish.sleep(3600)


async def test_a_child_that_does_not_stop_fails_the_teardown(monkeypatch):
    monkeypatch.setattr(_supervised, "TEARDOWN_TIMEOUT", 0.05)
    with pytest.raises(RuntimeError, match=r"did not stop its children within 0\.05 real "
                                           r"seconds and was killed") as failed:
        async with supervised_scope():
            await start_supervised((Stuck, beamish.self()), shutdown="infinity")
    assert "shutdown='brutal_kill'" in str(failed.value)
    (_, stuck) = await assert_received(("stuck", beamish.ANY))
    beamish.exit(stuck, "kill")


async def test_a_failure_inside_the_scope_wins_over_the_teardown(monkeypatch):
    monkeypatch.setattr(_supervised, "TEARDOWN_TIMEOUT", 0.05)
    with pytest.raises(ZeroDivisionError) as failed:
        async with supervised_scope():
            await start_supervised((Stuck, beamish.self()), shutdown="infinity")
            1 / 0  # noqa: B018
    assert "while stopping the children of start_supervised: the test supervisor did not" in (
        failed.value.__notes__[0]
    )
    (_, stuck) = await assert_received(("stuck", beamish.ANY))
    beamish.exit(stuck, "kill")


async def test_nothing_is_started_until_the_first_start_supervised():
    async with supervised_scope():
        await refute_received()
    assert beamish.processes() == [beamish.self()]


# -- the plugin's teardown ------------------------------------------------------------------


def test_the_plugin_stops_supervised_children_before_the_leftover_check(pytester):
    pytester.makepyfile(
        """
        import beamish
        from beamish import GenServer, Ok, Reply
        from beamish.testing import start_supervised

        class Named(GenServer):
            def init(self, arg):
                return Ok(arg)

            def handle_call(self, request, from_, state):
                return Reply(state, state)

        async def test_starts_servers_and_leaves():
            await start_supervised(Named.child_spec("one"), id=1)
            pid = await start_supervised((Named, "two"), id=2)
            assert await GenServer.call(pid, "who") == "two"

        async def test_fails_with_servers_running():
            await start_supervised(Named)
            assert 1 == 2

        async def test_the_next_test_starts_clean():
            assert beamish.processes() == [beamish.self()]
            await start_supervised(Named)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    assert "process(es) running" not in result.stdout.str()  # no leftover reported


async def test_start_supervised_children_outlive_a_crashed_test_process_until_teardown():
    # the test supervisor is not linked to the test process: a helper that kills the test
    # would not take it down; only the teardown stops it
    pid = await start_supervised(Counter)
    sup = beamish.process_info(pid).parent
    ref = beamish.monitor(sup)
    await refute_received(Down)
    assert beamish.self() not in beamish.process_info(sup).links
    assert ref is not None
