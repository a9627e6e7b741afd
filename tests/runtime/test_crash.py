"""Crash isolation: a process that raises disturbs no other, and is logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

import beamish
from beamish import (
    Actor,
    Agent,
    Crash,
    Down,
    Exit,
    GenServer,
    Ok,
    ProcessExit,
    Stop,
    Supervisor,
    Task,
    receive,
    send,
    spawn,
)
from beamish.pubsub import PubSub
from beamish.testing import capture_events, channel_socket, join, push, start_supervised
from beamish.web import Channel


class Counter(Actor):
    def __init__(self):
        self.n = 0

    def handle(self, message):
        match message:
            case "inc":
                self.n += 1
            case ("get", who):
                send(who, self.n)


class Fragile(Actor):
    def handle(self, message):
        if message == "crash":
            raise RuntimeError("fragile broke")


async def test_a_crash_disturbs_no_other_process():
    counter = spawn(Counter())
    fragile, ref = beamish.spawn_monitor(Fragile())
    for _ in range(10):
        send(counter, "inc")
    send(fragile, "crash")
    for _ in range(10):
        send(counter, "inc")
    send(counter, ("get", beamish.self()))
    assert await receive(int, timeout=1) == 20
    down = await receive(Down, timeout=1)
    assert down.pid == fragile and isinstance(down.reason, Crash)
    assert beamish.is_alive(counter)
    beamish.exit(counter, "kill")


async def test_a_crash_is_logged_once_with_pid_name_exception_and_traceback(caplog):
    caplog.set_level(logging.ERROR, logger="beamish.process")

    async def worker():
        beamish.register("worker-1")
        raise KeyError("missing")

    pid, ref = beamish.spawn_monitor(worker)
    await receive(Down, timeout=1)
    records = [r for r in caplog.records if r.name == "beamish.process"]
    assert len(records) == 1
    record = records[0]
    text = record.getMessage()
    assert repr(pid) in text and "worker-1" in text and "KeyError" in text
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "in worker" in caplog.text  # the traceback


async def test_an_explicit_exit_reason_is_not_logged_as_a_crash(caplog):
    async def leaves():
        raise beamish.ProcessExit("my_reason")

    pid, ref = beamish.spawn_monitor(leaves)
    assert await receive(Down, timeout=1) == Down(ref, pid, "my_reason")
    assert not [r for r in caplog.records if r.name == "beamish.process"]


async def test_statistics_count_crashes():
    before = beamish.statistics().crashed
    pid, ref = beamish.spawn_monitor(Fragile())
    send(pid, "crash")
    await receive(Down, timeout=1)
    assert beamish.statistics().crashed == before + 1


# -- every crash is counted, told to the crash hooks and logged once ----------------------------


class Crashes:
    """Watches one test's crashes: the counter, the ``crash`` hook, the error log."""

    def __init__(self, caplog):
        self.runtime = beamish.current_runtime()
        self.before = self.runtime.statistics().crashed
        self.capture = capture_events(("beamish", "process", "crash"))
        self.caplog = caplog
        caplog.set_level(logging.ERROR)
        caplog.clear()

    def check(self, pid, reason=None, *, logged=1, mention=None):
        """One crash of ``pid``: counted once, hooked once, logged ``logged`` times."""
        self.capture.stop()
        hooked = [(e.metadata["pid"], e.metadata["reason"]) for e in self.capture]
        assert self.runtime.statistics().crashed == self.before + 1
        assert [p for p, _ in hooked] == [pid]
        if reason is not None:
            assert hooked[0][1] == reason
        reports = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert len(reports) == logged, [r.getMessage() for r in reports]
        if mention is not None:
            assert mention in reports[0].getMessage()

    def none(self):
        self.capture.stop()
        assert self.runtime.statistics().crashed == self.before
        assert list(self.capture) == []


class Server(GenServer):
    def init(self, arg):
        return Ok(arg)

    def handle_cast(self, request, state):
        match request:
            case "raise":
                raise RuntimeError("server broke")
            case ("stop", reason):
                return Stop(reason, state)
            case ("exit", reason):
                raise ProcessExit(reason)


async def test_a_task_shaped_process_crash_is_counted_and_hooked_once(caplog):
    crashes = Crashes(caplog)

    async def worker():
        raise KeyError("missing")

    pid, _ = beamish.spawn_monitor(worker)
    await receive(Down, timeout=1)
    crashes.check(pid, mention="worker")


async def test_a_gen_server_crash_is_counted_and_hooked_once(caplog):
    crashes = Crashes(caplog)
    pid = await Server.start(None)
    beamish.monitor(pid)
    GenServer.cast(pid, "raise")
    down = await receive(Down, timeout=1)
    crashes.check(pid, down.reason, mention="Server")
    assert isinstance(down.reason, Crash)


@pytest.mark.parametrize("how", ["stop", "exit"])
async def test_a_gen_server_stopping_abnormally_is_a_crash(caplog, how):
    crashes = Crashes(caplog)
    pid = await Server.start(None)
    beamish.monitor(pid)
    GenServer.cast(pid, (how, "gave_up"))
    assert (await receive(Down, timeout=1)).reason == "gave_up"
    crashes.check(pid, "gave_up", mention="terminating")


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "done")])
async def test_a_gen_server_stopping_cleanly_is_no_crash(caplog, reason):
    crashes = Crashes(caplog)
    pid = await Server.start(None)
    beamish.monitor(pid)
    GenServer.cast(pid, ("stop", reason))
    assert (await receive(Down, timeout=1)).reason == reason
    crashes.none()


async def test_an_agent_crash_is_counted_and_hooked_once(caplog):
    crashes = Crashes(caplog)
    agent = await Agent.start(dict)
    beamish.monitor(agent)
    Agent.cast(agent, lambda value: 1 / 0)
    await receive(Down, timeout=1)
    crashes.check(agent, mention="Agent")


async def test_a_supervisors_own_crash_is_counted_and_hooked_once(caplog):
    crashes = Crashes(caplog)
    sup = await Supervisor.start([], strategy="one_for_one")
    beamish.monitor(sup)
    GenServer.cast(sup, "not a supervisor call")  # a supervisor defines no handle_cast
    await receive(Down, timeout=1)
    crashes.check(sup, mention="Supervisor")


@pytest.mark.parametrize("body", ["raise", "exit"])
async def test_a_task_crash_is_counted_and_hooked_once_and_names_its_function(caplog, body):
    crashes = Crashes(caplog)
    beamish.trap_exit(True)

    async def fetch_page(url):
        if body == "raise":
            raise ValueError(f"cannot fetch {url}")
        raise ProcessExit(("unreachable", url))

    task = Task.async_(fetch_page, "http://example")
    assert (await Task.yield_(task, 1))[0] == "exit"
    crashes.check(task.pid, mention="fetch_page")
    assert await receive(Exit, timeout=1)


async def test_a_channel_crash_is_counted_and_hooked_once(caplog):
    class Room(Channel):
        def join(self, topic, payload, socket):
            return Ok(socket)

        def handle_in(self, event, payload, socket):
            raise RuntimeError("channel broke")

    beamish.trap_exit(True)  # the joined channel is linked to the test, as in Phoenix
    await start_supervised((PubSub, {"name": "ps"}))
    crashes = Crashes(caplog)
    _, socket = await join(channel_socket(pubsub="ps"), "room:1", channel=Room)
    beamish.monitor(socket.channel_pid)
    push(socket, "boom")
    await receive(Down, timeout=1)
    crashes.check(socket.channel_pid, mention="channel broke")


async def test_a_crash_leaving_an_as_process_block_is_counted_not_logged(caplog):
    crashes = Crashes(caplog)
    runtime = beamish.current_runtime()
    inside = []

    async def host():
        async with runtime.as_process() as pid:
            inside.append(pid)
            raise LookupError("the handler failed")

    with pytest.raises(LookupError):
        await asyncio.get_running_loop().create_task(host())
    crashes.check(inside[0], logged=0)  # the code around the block got the exception


async def test_an_init_that_reports_its_own_crash_is_counted_once(caplog):
    """A behaviour built on GenServer (the channel server, say) may log why its init failed
    and end with ProcessExit(reason, reported=True): one crash, not logged again."""

    class Refuses(GenServer):
        def init(self, arg):
            logging.getLogger("tests").error("my own report of a failed init")
            raise ProcessExit(("join_crashed", arg), reported=True)

    crashes = Crashes(caplog)
    with (capture_events(("beamish", "process", "spawn")) as spawned,
          pytest.raises(beamish.StartError) as info):
        await Refuses.start("room:1")
    pids = [e.metadata["pid"] for e in spawned]
    assert info.value.reason == ("join_crashed", "room:1")
    crashes.check(pids[0], ("join_crashed", "room:1"), mention="my own report")


async def test_killing_an_actor_before_its_async_handler_starts_leaves_no_unawaited_coroutine():
    """The kill lands between the dispatch that made the handler's task and that task's
    first step: the handler's coroutines (a GenServer's wrapper and its callback too) are
    closed, not left to warn "never awaited" when collected."""
    import gc
    import warnings

    from beamish import GenServer, NoReply, Ok

    class Slow(beamish.Actor):
        async def handle(self, message):
            await asyncio.sleep(5)

    class SlowServer(GenServer):
        def init(self, arg):
            return Ok(None)

        async def handle_info(self, message, state):
            await asyncio.sleep(5)
            return NoReply(state)

    class Killer(beamish.Actor):
        def handle(self, message):
            beamish.exit(message, "kill")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for target in (beamish.spawn(Slow()), await SlowServer.start(None)):
            killer = beamish.spawn(Killer())
            beamish.send(target, "go")  # the same tick: the target's turn, then the killer's
            beamish.send(killer, target)
            assert await beamish.wait_exit(target, timeout=2) == "killed"
            beamish.exit(killer, "kill")
        await asyncio.sleep(0.01)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], [
        str(w.message) for w in caught
    ]
