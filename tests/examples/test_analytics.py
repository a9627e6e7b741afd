"""The real-time dashboard example: its arithmetic, and its pipeline under crashes."""

from __future__ import annotations

import asyncio
import doctest
import random

import pytest
from examples.analytics import metrics, pipeline
from examples.analytics.channels import PUBSUB, AnalyticsSocket
from examples.analytics.metrics import EventSource, Window, bucket_of, percentile

import beamish
from beamish import Supervisor
from beamish.cluster import Codec
from beamish.cluster._nodes import NodeTable
from beamish.pubsub import PubSub
from beamish.testing import (
    assert_receive,
    channel_socket,
    local_cluster,
    start_supervised,
    subscribe_and_join,
)
from beamish.web import Broadcast


def test_the_module_examples_hold():
    assert doctest.testmod(metrics).failed == 0


def test_a_source_makes_its_rate_exactly_over_uneven_ticks():
    source = EventSource(rate=1234.5, seed=3)
    source.tick(0.0)
    made = 0
    at = 0.0
    rng = random.Random(1)
    while at < 9.9:
        at += rng.uniform(0.001, 0.05)
        made += sum(b.count for name, b in source.tick(at).items()
                    if name in ("page_views", "signups", "orders", "errors"))
    assert abs(made - 1234.5 * at) < 1  # the carried fraction: never more than one event off


def test_percentiles_are_within_a_bucket_of_the_truth():
    rng = random.Random(5)
    values = sorted(rng.lognormvariate(5, 1) for _ in range(20_000))
    histogram = [0] * 200
    for value in values:
        histogram[bucket_of(value)] += 1
    for share in (0.5, 0.9, 0.99):
        truth = values[int(share * len(values)) - 1]
        assert truth <= percentile(histogram, share) <= truth * 1.1 + 1e-9


def test_a_window_forgets_what_left_it_and_reuses_its_buckets():
    window = Window(width=60.0, size=60, histogram=True)
    window.add(0.0, 1, 5.0, (5.0,))  # minute 0
    window.add(3540.0, 2, 7.0, (3.0, 4.0))  # minute 59
    assert window.total(3540.0) == 3 and len(window.series(3540.0)) == 60
    assert window.total(3600.0) == 2  # at minute 60 the hour is minutes 1 to 60: 0 is gone
    window.add(3600.0, 4, 0.0, (9.0,))  # minute 60 takes the bucket minute 0 had
    assert window.total(3600.0) == 6 and window.series(3600.0)[-1] == 4
    assert window.percentiles(3600.0, (1.0,)) == [percentile([0] * bucket_of(9.0) + [1], 1.0)]


async def test_nothing_counted_is_lost_while_counters_are_killed_again_and_again():
    """20,000 events a second for 1.5 s while a random counter is killed every 30 ms: once
    the source stops, every event made has been counted exactly once, by every window."""
    await start_supervised((PubSub, {"name": PUBSUB}))
    await start_supervised((pipeline.Pipeline, (PUBSUB, 20_000.0, 0.1, 1_500)))
    rng = random.Random(11)
    kills = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.5
    while loop.time() < until:
        await asyncio.sleep(0.03)
        pid = beamish.whereis(pipeline.counter_name(rng.choice(pipeline.KEYS)))
        if pid is not None:
            beamish.exit(pid, "kill")
            kills += 1
    await pipeline.set_rate(0)
    data = pipeline.store()
    made = data["source"].made
    for _ in range(200):  # the restarted counters catch up
        if all(data[key].counted == made[key[0]] for key in pipeline.KEYS if key in data):
            break
        await asyncio.sleep(0.02)
    assert kills > 20
    assert sum(made.values()) > 20_000
    assert data["source"].lost == 0
    for key in pipeline.KEYS:
        assert data[key].counted == made[key[0]], (key, data[key].counted, made[key[0]])
        assert data[key].window.total(data[key].newest) <= made[key[0]]
    frame = pipeline.build_frame(1)
    assert frame["counted"] == {name: made[name] for name in metrics.BY_NAME}


async def test_a_viewer_joins_with_the_latest_frame_then_gets_one_each_interval():
    await start_supervised((PubSub, {"name": PUBSUB}))
    await start_supervised((pipeline.Pipeline, (PUBSUB, 5_000.0, 0.05, 100)))
    await asyncio.sleep(0.2)
    socket = channel_socket(AnalyticsSocket, pubsub=PUBSUB)
    reply, socket = await subscribe_and_join(socket, pipeline.TOPIC, {})
    first = reply["frame"]
    assert first["seq"] >= 1 and set(first["metrics"]) == set(metrics.BY_NAME)
    assert set(first["metrics"]["checkout_ms"]["1m"]) == {"series", "count", "p50", "p99"}
    seqs = []
    for _ in range(3):  # the frame the join answered may also be on its way as a broadcast
        later = await assert_receive(Broadcast(pipeline.TOPIC, "state", beamish.ANY), timeout=2)
        seqs.append(later.payload["seq"])
        assert later.payload["newest"] <= later.payload["at"]
    assert seqs == sorted(seqs) and seqs[-1] > first["seq"]


async def test_the_tree_restarts_a_crashed_source_and_publisher_and_goes_on_counting():
    await start_supervised((PubSub, {"name": PUBSUB}))
    sup = await start_supervised((pipeline.Pipeline, (PUBSUB, 5_000.0, 0.05, 100)))
    await asyncio.sleep(0.2)
    before = pipeline.store()["source"].made["page_views"]
    beamish.exit(beamish.whereis(pipeline.SOURCE), "kill")
    await asyncio.sleep(0.3)
    assert pipeline.store()["source"].made["page_views"] > before  # the record survived
    children = {c.id: c.pid for c in await Supervisor.which_children(sup)}
    assert all(pid is not None for pid in children.values())


async def test_only_an_operator_may_simulate_an_incident_and_errors_rise_during_it():
    from beamish.testing import assert_reply, push

    await start_supervised((PubSub, {"name": PUBSUB}))
    await start_supervised((pipeline.Pipeline, (PUBSUB, 20_000.0, 0.05, 100)))
    viewer = channel_socket(AnalyticsSocket, assigns={"operator": False}, pubsub=PUBSUB)
    _, viewer = await subscribe_and_join(viewer, pipeline.TOPIC, {})
    await assert_reply(push(viewer, "incident", {"seconds": 5}), "error",
                       {"reason": "only an operator (this machine) may do that"})
    operator = channel_socket(AnalyticsSocket, assigns={"operator": True}, pubsub=PUBSUB)
    _, operator = await subscribe_and_join(operator, pipeline.TOPIC, {})
    for bad in (0, -1, 61, True, "5", None):
        await assert_reply(push(operator, "incident", {"seconds": bad}), "error")
    data = pipeline.store()
    await asyncio.sleep(0.3)
    made = data["source"].made
    before = made["errors"] / made["page_views"]
    await assert_reply(push(operator, "incident", {"seconds": 5}), "ok")
    start = dict(made)
    await asyncio.sleep(0.4)
    during = (made["errors"] - start["errors"]) / (made["page_views"] - start["page_views"])
    assert before < 0.05 < 0.4 < during  # 2 errors to 86 views; then 32 to 56
    assert pipeline.build_frame(1)["incident"] is True


async def test_a_checkpoint_restores_every_window_and_what_is_in_flight():
    await start_supervised((PubSub, {"name": PUBSUB}))
    await start_supervised((pipeline.Pipeline, (PUBSUB, 20_000.0, 0.05, 100)))
    await asyncio.sleep(0.3)
    data = pipeline.store()
    now = 1e12  # far ahead: the frames read every bucket the same way
    saved = pipeline.checkpoint(data)  # no await between: the table cannot change
    live = pipeline.build_frame(7, now=now, data=data)
    in_flight = {key: list(q) for key, q in data["source"].unapplied.items()}
    copy: dict = {}
    pipeline.restore(copy, saved)
    assert pipeline.build_frame(7, now=now, data=copy) == live
    assert {key: list(q) for key, q in copy["source"].unapplied.items()} == in_flight
    assert pipeline.checkpoint(copy) == saved  # nothing is lost or changed in a round trip
    assert copy["source"].seq >= 1 and sum(copy["source"].made.values()) > 0
    # what crosses to every node before each frame (the docs say about 24 KB): bounded
    runtime = beamish.current_runtime()
    wire = Codec(NodeTable(runtime), runtime).encode(("checkpoint", beamish.node(), saved))
    assert len(wire) < 32_768, len(wire)


CLUSTER_RATE = 20_000.0


async def start_analytics_tree():
    from beamish.cluster import Singleton

    return await Supervisor.start([
        (PubSub, {"name": PUBSUB}),
        (pipeline.Replica, PUBSUB),
        Singleton.spec(pipeline.Pipeline, (PUBSUB, CLUSTER_RATE, 0.1, 1_500),
                       name=pipeline.PIPELINE),
    ], strategy="rest_for_one", name="analytics.tree")


@pytest.mark.beamish(node="a@test")
async def test_when_the_pipelines_node_goes_another_goes_on_from_what_viewers_saw():
    """The pipeline runs on b; a's viewers get b's frames. b goes down: a's guard starts
    the pipeline from a's checkpoint: the frames number on, the counts never go back, and
    once the source stops every event made is counted."""
    from beamish.cluster import Singleton

    async with local_cluster("b@test", tick_time=0.5) as cluster:
        await cluster.node("b@test").run(start_analytics_tree)
        await start_analytics_tree()
        holder = Singleton.whereis(pipeline.PIPELINE)
        assert holder is not None and holder.node == "b@test"
        PubSub.subscribe(PUBSUB, pipeline.TOPIC)
        seen = []
        while len(seen) < 5:
            frame = await assert_receive(Broadcast(pipeline.TOPIC, "state", beamish.ANY),
                                         timeout=2)
            seen.append(frame.payload)
        assert pipeline.latest_frame()["seq"] >= seen[-1]["seq"]  # a's replica has it
        assert (await pipeline.stats())["made"]["orders"] > 0  # asked on b
        await cluster.stop_node("b@test")
        after = []
        while len(after) < 3:
            frame = await assert_receive(Broadcast(pipeline.TOPIC, "state", beamish.ANY),
                                         timeout=5)
            after.append(frame.payload)
        now = Singleton.whereis(pipeline.PIPELINE)
        assert now is not None and now.node == "a@test"
        last = seen[-1]
        for frame in after:
            assert frame["seq"] > last["seq"]
            for name, count in last["counted"].items():
                assert frame["counted"][name] >= count, (name, frame["counted"], count)
        assert await pipeline.set_rate(0) == 0
        for _ in range(100):
            stats = await pipeline.stats()
            if stats["made"] == stats["counted"]:
                break
            await asyncio.sleep(0.05)
        assert stats["made"] == stats["counted"] and stats["lost"] == 0
        assert stats["made"]["page_views"] > last["made"]["page_views"]
        await Supervisor.stop("analytics.tree")
