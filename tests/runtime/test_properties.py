"""Property tests: random interleavings of sends, receives and links against simple models."""

from __future__ import annotations

from collections import deque

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import beamish
from beamish import Down, Exit, receive, send, spawn
from beamish.testing import wait_until_idle

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(main, *args):
    return beamish.run(main, *args, long_schedule=None)


@SETTINGS
@given(
    plan=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), max_size=60),
)
def test_per_sender_order_holds_for_any_interleaving(plan):
    """Senders interleave sends with yields at random; each sender's order is kept."""

    async def main():
        me = beamish.self()
        by_sender: dict[int, list[int]] = {}
        for sender, pause in plan:
            by_sender.setdefault(sender, []).append(pause)

        async def sender(tag, pauses):
            for i, pause in enumerate(pauses):
                for _ in range(pause):
                    await beamish.sleep(0)
                send(me, (tag, i))

        for tag, pauses in by_sender.items():
            spawn(sender, tag, pauses)
        got = [await receive(timeout=2) for _ in range(len(plan))]
        for tag, pauses in by_sender.items():
            assert [i for t, i in got if t == tag] == list(range(len(pauses)))
        assert await receive(timeout=0, default=None) is None

    run(main)


@SETTINGS
@given(
    mailbox=st.lists(st.integers(0, 20), max_size=30),
    takes=st.lists(st.integers(1, 5), max_size=10),
)
def test_selective_receive_matches_a_list_model(mailbox, takes):
    """Taking 'first multiple of k' repeatedly leaves the rest in arrival order."""

    async def main():
        me = beamish.self()
        for m in mailbox:
            send(me, m)
        model = list(mailbox)
        for k in takes:
            expected = next((m for m in model if m % k == 0), None)
            got = await receive(lambda m, k=k: m % k == 0, timeout=0, default=None)
            assert got == expected
            if expected is not None:
                model.remove(expected)
        rest = [await receive(timeout=0) for _ in range(len(model))]
        assert rest == model

    run(main)


@st.composite
def link_graphs(draw):
    n = draw(st.integers(2, 12))
    edges = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=25))
    trapping = draw(st.sets(st.integers(0, n - 1)))
    victim = draw(st.integers(0, n - 1))
    reason = draw(st.sampled_from(["boom", "normal", "kill", ("shutdown", "x")]))
    return n, {(a, b) for a, b in edges if a != b}, trapping, victim, reason


def expected_outcome(n, edges, trapping, victim, reason):
    """The BEAM's rules as a breadth-first walk over the link graph."""
    neighbours = {i: set() for i in range(n)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    dead: dict[int, object] = {}
    exits: set[tuple[int, int, object]] = set()  # (receiver, sender, reason) Exit messages
    first = "killed" if reason == "kill" else reason
    if reason != "kill" and victim in trapping:
        return dead, {(victim, -1, reason)}
    if reason == "normal":
        return dead, exits
    dead[victim] = first
    queue = deque([victim])
    while queue:
        p = queue.popleft()
        for q in neighbours[p]:
            if q in dead:
                continue
            if q in trapping:
                exits.add((q, p, dead[p]))
            elif dead[p] != "normal":
                dead[q] = dead[p]
                queue.append(q)
    return dead, exits


@SETTINGS
@given(graph=link_graphs())
def test_exit_propagation_over_random_link_graphs(graph):
    n, edges, trapping, victim, reason = graph
    want_dead, want_exits = expected_outcome(n, edges, trapping, victim, reason)

    async def main():
        me = beamish.self()

        async def node(i):
            while True:
                msg = await receive()
                if type(msg) is Exit:
                    send(me, ("exit", i, msg.pid, msg.reason))
                elif msg[0] == "link":
                    beamish.link(msg[1])
                    send(me, ("linked", i))

        # trap_exit set at spawn: the exit below may come before a body's first line
        pids = [beamish.spawn_opt(node, (i,), trap_exit=i in trapping) for i in range(n)]
        index = {p: i for i, p in enumerate(pids)}
        refs = {beamish.monitor(p): i for i, p in enumerate(pids)}
        for a, b in edges:
            send(pids[a], ("link", pids[b]))
            await receive(("linked", a), timeout=2)
        beamish.exit(pids[victim], reason)
        await wait_until_idle()  # every Down is sent, every trapped Exit reported
        dead = {}
        while (down := await receive(Down, timeout=0, default=None)) is not None:
            dead[refs[down.ref]] = down.reason
        exits = set()
        while (e := await receive(("exit", beamish.ANY, beamish.ANY, beamish.ANY),
                                  timeout=0, default=None)) is not None:
            _, i, sender, why = e
            exits.add((i, index.get(sender, -1), why))
        assert dead == want_dead
        assert exits == want_exits
        for p in pids:
            beamish.exit(p, "kill")

    run(main)


@SETTINGS
@given(ops=st.lists(st.sampled_from(["spawn", "send", "kill", "monitor", "demonitor"]),
                    max_size=40))
def test_monitors_fire_exactly_once_whatever_the_interleaving(ops):
    async def main():
        async def idle():
            await receive()

        live: list = []
        refs: dict = {}
        demonitored: set = set()
        killed: set = set()
        for op in ops:
            if op == "spawn" or not live:
                live.append(spawn(idle))
            elif op == "send":
                send(live[-1], "hello")
            elif op == "kill":
                victim = live.pop(0)
                beamish.exit(victim, "kill")
                killed.add(victim)
            elif op == "monitor":
                refs[beamish.monitor(live[0])] = live[0]
            elif op == "demonitor" and refs:
                ref = next(iter(refs))
                beamish.demonitor(ref, flush=True)
                demonitored.add(ref)
        for p in live:
            beamish.exit(p, "kill")
            killed.add(p)
        expected = {r for r, p in refs.items() if r not in demonitored and p in killed}
        got = []
        while (d := await receive(Down, timeout=0.02, default=None)) is not None:
            got.append(d.ref)
        assert sorted(got, key=lambda r: r.id) == sorted(expected, key=lambda r: r.id)

    run(main)
