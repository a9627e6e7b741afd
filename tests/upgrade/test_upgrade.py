"""Upgrading running processes: code_change under load, all or nothing, every behaviour."""

from __future__ import annotations

import asyncio
import textwrap
import time

import pytest

import beamish
from beamish import Agent, GenServer, Supervisor, spawn, spawn_link
from beamish.testing import capture_events
from beamish.upgrade import Upgrade, UpgradeError, upgrade

COUNTER_V1 = """
    from beamish import GenServer, Ok, Reply

    class Counter(GenServer):
        vsn = 1

        def init(self, n):
            return Ok(n)

        def handle_call(self, request, from_, n):
            if request == "inc":
                return Reply(("v1", n + 1), n + 1)
            return Reply(("v1", n), n)
"""

COUNTER_V2 = """
    import time

    from beamish import GenServer, Ok, Reply

    class Counter(GenServer):
        vsn = 2

        def init(self, n):
            return Ok({"count": n, "since": time.time()})

        def handle_call(self, request, from_, state):
            if request == "inc":
                state = {**state, "count": state["count"] + 1}
            return Reply(("v2", state["count"]), state)

        def code_change(self, old_vsn, n, extra):
            assert old_vsn == 1, old_vsn
            return {"count": n, "since": extra["since"]}
"""


async def test_a_counter_upgraded_under_a_thousand_clients_loses_no_increment(code):
    code.write("counter", COUNTER_V1)
    Counter = code.load("counter").Counter
    server = await Counter.start_link(0, name="upgraded_counter")
    clients, rounds = 1_000, 20
    me = beamish.self()

    async def client() -> None:
        mine, failure = [], None
        try:
            for _ in range(rounds):
                asked = time.monotonic()
                version, _count = await GenServer.call(server, "inc")
                mine.append((asked, version))
        except BaseException as exc:  # a failed call is what this test must not see
            failure = repr(exc)
        beamish.send(me, ("client", mine, failure))

    for _ in range(clients):
        spawn(client)
    while (await GenServer.call(server, "get"))[1] < clients * rounds // 3:  # under way
        await asyncio.sleep(0.002)
    code.write("counter", COUNTER_V2)
    report = await upgrade([code.name("counter")], extra={"since": 123.0})
    upgraded_at = time.monotonic()
    answers, failures = [], []
    for _ in range(clients):
        _, mine, failure = await beamish.receive(timeout=30)
        answers.append(mine)
        if failure is not None:
            failures.append(failure)

    assert failures == []
    assert report.processes == 1 and report.classes == [code.name("counter") + ".Counter"]
    state = await GenServer.get_state(server)
    assert state == {"count": clients * rounds, "since": 123.0}  # no increment lost
    every = [answer for mine in answers for answer in mine]
    assert len(every) == clients * rounds
    after = [version for asked, version in every if asked > upgraded_at]
    assert after and set(after) == {"v2"}  # every call made after the swap: the new code
    assert {version for _, version in every} == {"v1", "v2"}
    for mine in answers:  # each client saw v1 then v2, never back
        versions = [version for _, version in mine]
        assert versions == sorted(versions)
    assert Counter.vsn == 2  # the class the server was started with, patched in place


def module(label: str, version: int, fail: bool = False) -> str:
    change = "raise ValueError('cannot migrate ' + repr(state))" if fail else \
        "return {'value': state}"
    return f"""
        from beamish import GenServer, Ok, Reply

        LABEL = "{label} v{version}"

        def describe(state):
            return LABEL + " " + repr(state)

        class Store(GenServer):
            vsn = {version}

            def init(self, state):
                return Ok(state)

            def handle_call(self, request, from_, state):
                return Reply(describe(state), state)

            def code_change(self, old_vsn, state, extra):
                {change}
    """


async def test_a_failing_code_change_leaves_every_process_on_the_old_code(code, caplog):
    names = ["first", "second", "third"]
    servers = []
    for i, name in enumerate(names):
        code.write(name, module(name, 1))
        store = code.load(name).Store
        servers += [await store.start_link(i * 10), await store.start_link(i * 10 + 1)]
    describe = code.load("second").describe  # held elsewhere: it must go back too
    for name in names:
        code.write(name, module(name, 2, fail=(name == "third")))

    with pytest.raises(UpgradeError, match=r"code_change of .*Store.* raised ValueError: "
                                           r"cannot migrate 20; nothing was changed"):
        await upgrade([code.name(n) for n in names])

    answers = [await GenServer.call(s, "what") for s in servers]
    assert answers == ["first v1 0", "first v1 1", "second v1 10", "second v1 11",
                       "third v1 20", "third v1 21"]  # old code, old state
    assert [code.load(n).Store.vsn for n in names] == [1, 1, 1]
    assert describe(5) == "second v1 5"
    assert "upgrade failed; nothing was changed, the node runs the old code" in caplog.text

    code.write("third", module("third", 2))  # fixed: the same upgrade goes through
    await upgrade([code.name(n) for n in names])
    answers = [await GenServer.call(s, "what") for s in servers]
    assert answers[0] == "first v2 {'value': 0}" and answers[5] == "third v2 {'value': 21}"
    assert describe(5) == "second v2 5"


async def test_a_module_that_fails_to_load_changes_nothing(code):
    code.write("store", module("store", 1))
    Store = code.load("store").Store
    server = await Store.start_link(1)
    half_written = "raise RuntimeError('half written')\n"
    code.write("store", textwrap.dedent(module("store", 2)) + half_written)
    with pytest.raises(UpgradeError, match="failed to load: RuntimeError: half written"):
        await upgrade([code.name("store")])
    code.write("store", "def broken(:\n")
    with pytest.raises(UpgradeError, match=r"syntax error, .*store.py line 1"):
        await upgrade([code.name("store")])
    assert await GenServer.call(server, "what") == "store v1 1"
    with pytest.raises(UpgradeError, match="not loaded in this node"):
        await upgrade([code.name("never_imported")])


async def test_a_class_whose_slots_changed_cannot_be_upgraded_in_place(code):
    code.write("slotted", """
        from beamish import Actor

        class Slotted(Actor):
            __slots__ = ("a",)

            def handle(self, message):
                pass
    """)
    code.load("slotted")
    code.write("slotted", """
        from beamish import Actor

        class Slotted(Actor):
            __slots__ = ("a", "b")

            def handle(self, message):
                pass
    """)
    with pytest.raises(UpgradeError, match=r"Slotted changed its __slots__ .*restart the node"):
        await upgrade([code.name("slotted")])


async def test_functions_and_classes_keep_their_identity_and_run_the_new_code(code):
    code.write("shapes", """
        SIDES = 3

        def sides():
            return SIDES

        class Shape:
            kinds = {"triangle": 3}

            def name(self):
                return "shape"

        class Square(Shape):
            def name(self):
                return "square"
    """)
    shapes = code.load("shapes")
    sides, Shape, Square = shapes.sides, shapes.Shape, shapes.Square
    held = Square()
    code.write("shapes", """
        SIDES = 4

        def sides():
            return SIDES * 10

        def helper():
            return Square

        class Shape:
            kinds = {"square": 4}

            def name(self):
                return "shape, new"

            @property
            def maker(self):
                return helper()

        class Square(Shape):
            def name(self):
                return "square, new; was " + super().name()
    """)
    report = await upgrade([code.name("shapes")])
    assert sides() == 40 and shapes.SIDES == 4  # the function held here runs the new code
    assert shapes.Shape is Shape and shapes.Square is Square
    assert held.name() == "square, new; was shape, new"  # super() finds the running class
    assert held.maker is Square and isinstance(held, shapes.Square)
    assert Shape.kinds == {"square": 4}
    assert report.processes == 0 and len(report.classes) == 2


async def test_module_state_is_kept_and_constants_are_replaced(code):
    code.write("stateful", """
        SEEN = []
        LIMIT = 1

        def remember(x):
            SEEN.append(x)
            return len(SEEN) <= LIMIT
    """)
    stateful = code.load("stateful")
    seen = stateful.SEEN
    assert stateful.remember("a") is True
    code.write("stateful", """
        SEEN = []
        LIMIT = 5

        def remember(x):
            SEEN.append(x.upper())
            return len(SEEN) <= LIMIT
    """)
    await upgrade([code.name("stateful")])
    assert stateful.remember("b") is True
    assert stateful.SEEN is seen and seen == ["a", "B"]  # what the node holds stays


async def test_plain_actors_state_machines_and_channels_get_code_change(code):
    code.write("kinds", """
        from beamish import Actor, GenStateMachine, KeepState, send

        class Plain(Actor):
            def __init__(self):
                self.items = ["x"]

            def handle(self, message):
                send(message, ("plain v1", self.items))

        class Door(GenStateMachine):
            callback_mode = "state_functions"

            def init(self, arg):
                return ("ok", "locked", 0)

            def locked(self, kind, content, data):
                return KeepState(data)
    """)
    kinds = code.load("kinds")
    plain = spawn_link(kinds.Plain())
    door = await kinds.Door.start_link(None)
    code.write("kinds", """
        from beamish import Actor, GenStateMachine, KeepState, ReplyAction, send

        class Plain(Actor):
            vsn = 2

            def handle(self, message):
                send(message, ("plain v2", self.items))

            def code_change(self, old_vsn, extra):
                self.items = {"items": self.items, "from": old_vsn, "extra": extra}

        class Door(GenStateMachine):
            callback_mode = "state_functions"

            def init(self, arg):
                return ("ok", "locked", 0)

            def locked(self, kind, content, data):
                return KeepState(data, actions=[ReplyAction(content[1], ("v2", data))])

            def code_change(self, old_vsn, state, data, extra):
                return ("locked", {"opened": data})
    """)
    report = await upgrade([code.name("kinds")], extra="e")
    assert report.processes == 2
    beamish.send(plain, beamish.self())
    assert await beamish.receive(timeout=2) == (
        "plain v2", {"items": ["x"], "from": None, "extra": "e"})
    assert await GenServer.get_state(door) == ("locked", {"opened": 0})


async def test_an_agent_is_changed_by_name_with_its_own_function(code):
    code.write("plain", "X = 1\n")
    code.load("plain")
    await Agent.start_link(lambda: {"hits": 3}, name="upgraded_agent")
    report = await upgrade([code.name("plain")],
                           change={"upgraded_agent": lambda old: {"v2": old["hits"]}})
    assert report.processes == 1
    assert await Agent.get("upgraded_agent", lambda v: v) == {"v2": 3}


async def test_a_busy_process_is_waited_for_then_upgraded(code):
    code.write("slow", """
        import asyncio
        from beamish import GenServer, Ok, Reply

        class Slow(GenServer):
            vsn = 1

            def init(self, arg):
                return Ok(0)

            async def handle_call(self, request, from_, state):
                await asyncio.sleep(request)
                return Reply(("v1", state), state + 1)
    """)
    Slow = code.load("slow").Slow
    server = await Slow.start_link(None)
    busy = asyncio.ensure_future(GenServer.call(server, 0.3))
    await asyncio.sleep(0.05)
    code.write("slow", (code.dir / "slow.py").read_text().replace("v1", "v2").replace(
        "vsn = 1", "vsn = 2"))
    with pytest.raises(UpgradeError, match=r"did not finish the message .* within 0.1s"):
        await upgrade([code.name("slow")], timeout=0.1)
    assert await busy == ("v1", 0)  # undisturbed by the failed attempt
    busy = asyncio.ensure_future(GenServer.call(server, 0.2))
    await asyncio.sleep(0.05)
    await upgrade([code.name("slow")], timeout=2)
    assert await busy == ("v1", 1)  # the message it was handling finished on the old code
    assert await GenServer.call(server, 0) == ("v2", 2)


async def test_an_upgrade_plan_in_the_new_code_names_modules_and_extra(code):
    code.write("counter", COUNTER_V1)
    Counter = code.load("counter").Counter
    server = await Counter.start_link(7)
    code.write("counter", COUNTER_V2)
    code.write("release", f"""
        from beamish.upgrade import Upgrade

        upgrade = Upgrade(modules=["{code.name('counter')}"], extra={{"since": 1.5}}, vsn="2")
    """)
    await upgrade(plan=code.name("release"))
    assert await GenServer.get_state(server) == {"count": 7, "since": 1.5}
    with pytest.raises(UpgradeError, match="defines no `upgrade = Upgrade"):
        await upgrade(plan=code.name("counter"))
    bare = Upgrade(modules=[])  # an upgrade names its modules; the rest has defaults
    assert isinstance(bare, Upgrade) and bare.extra is None and bare.change == {}


async def test_a_supervised_child_restarts_on_the_new_code(code):
    code.write("counter", COUNTER_V1)
    Counter = code.load("counter").Counter
    sup = await Supervisor.start_link([Counter.child_spec(5)], strategy="one_for_one")
    [child] = [c.pid for c in await Supervisor.which_children(sup)]
    code.write("counter", COUNTER_V2)
    await upgrade([code.name("counter")], extra={"since": 0})
    beamish.exit(child, "kill")
    await asyncio.sleep(0.05)
    [restarted] = [c.pid for c in await Supervisor.which_children(sup)]
    assert restarted != child
    assert await GenServer.call(restarted, "get") == ("v2", 5)  # the spec runs the new init


async def test_upgrades_are_told_to_telemetry(code):
    code.write("store", module("store", 1))
    Store = code.load("store").Store
    await Store.start_link(1)
    code.write("store", module("store", 2, fail=True))
    with capture_events(("beamish", "upgrade", "stop"),
                        ("beamish", "upgrade", "exception")) as seen:
        with pytest.raises(UpgradeError):
            await upgrade([code.name("store")])
        code.write("store", module("store", 2))
        await upgrade([code.name("store")])
    assert [e.event[-1] for e in seen] == ["exception", "stop"]
    assert "cannot migrate 1" in seen[0].metadata["reason"]
    assert seen[1].metadata == {"modules": [code.name("store")]}
    assert seen[1].measurements["processes"] == 1


ROOM_V1 = """
    from typing import ClassVar

    from beamish import Ok, Reply
    from beamish.web import Channel, Socket

    class Room(Channel):
        vsn = 1

        def join(self, topic, payload, socket):
            return Ok(socket.assign(count=0))

        def handle_in(self, event, payload, socket):
            n = socket.assigns["count"] + 1
            return Reply(("ok", {"v": 1, "n": n}), socket.assign(count=n))

    class RoomSocket(Socket):
        channels: ClassVar = {"room:*": Room}
"""

ROOM_V2 = """
    from typing import ClassVar

    from beamish import Ok, Reply
    from beamish.web import Channel, Socket

    class Room(Channel):
        vsn = 2
        intercept = ["shout"]

        def join(self, topic, payload, socket):
            return Ok(socket.assign(total=0))

        def handle_in(self, event, payload, socket):
            n = socket.assigns["total"] + payload["by"]
            return Reply(("ok", {"v": 2, "n": n}), socket.assign(total=n))

        def handle_out(self, event, payload, socket):
            self.push(socket, event, {"loud": payload["text"].upper()})
            return NoReply(socket)

        def code_change(self, old_vsn, socket, extra):
            return socket.assign(total=socket.assigns["count"] * extra, count=None)

    class RoomSocket(Socket):
        channels: ClassVar = {"room:*": Room}
"""


async def test_a_joined_channel_migrates_its_assigns_and_reads_intercept_again(code):
    from beamish.pubsub import PubSub
    from beamish.testing import (
        assert_push,
        assert_reply,
        channel_socket,
        push,
        start_supervised,
        subscribe_and_join,
    )
    from beamish.web import broadcast

    code.write("room", ROOM_V1)
    room = code.load("room")
    await start_supervised((PubSub, {"name": "upgrade_ps"}))
    socket = channel_socket(room.RoomSocket, pubsub="upgrade_ps")
    _, joined = await subscribe_and_join(socket, "room:1", {})
    await assert_reply(push(joined, "inc", {}), "ok", {"v": 1, "n": 1})
    code.write("room", ROOM_V2.replace("import Ok, Reply", "import NoReply, Ok, Reply"))
    report = await upgrade([code.name("room")], extra=10)
    assert report.processes == 1
    await assert_reply(push(joined, "inc", {"by": 5}), "ok", {"v": 2, "n": 15})
    broadcast("upgrade_ps", "room:1", "shout", {"text": "hi"})
    await assert_push("shout", {"loud": "HI"})  # the new intercept, read at the upgrade
