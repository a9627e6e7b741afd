"""PartitionSupervisor: N copies of a child, routed by key (the seed's load balancing)."""

from __future__ import annotations

import pytest

import beamish
from beamish import (
    DynamicSupervisor,
    GenServer,
    NotRegisteredError,
    Ok,
    PartitionSupervisor,
    Reply,
    Supervisor,
)
from beamish.testing import wait_until_idle


class Shard(GenServer):
    def init(self, arg):
        return Ok(arg)

    def handle_call(self, request, from_, state):
        match request:
            case "who":
                return Reply(state, state)
            case "crash":
                raise RuntimeError("shard crash")


async def test_partitions_start_and_route_by_key():
    await PartitionSupervisor.start_link(
        child_spec=(Shard, "shard"), name="shards", partitions=4,
        with_arguments=lambda args, index: (f"{args[0]}-{index}",),
    )
    assert PartitionSupervisor.partitions("shards") == 4
    assert (await PartitionSupervisor.count_children("shards")).active == 4
    answers = {await GenServer.call(PartitionSupervisor.via("shards", k), "who") for k in range(8)}
    assert answers == {"shard-0", "shard-1", "shard-2", "shard-3"}
    for key in ["user-1", "user-2", 17, beamish.self()]:
        first = PartitionSupervisor.whereis("shards", key)
        assert PartitionSupervisor.whereis("shards", key) == first  # stable
    assert await GenServer.call(PartitionSupervisor.via("shards", 5), "who") == "shard-1"


async def test_a_restarted_partition_is_routed_to_again():
    await PartitionSupervisor.start_link(child_spec=(Shard, "s"), name="shards", partitions=2)
    via = PartitionSupervisor.via("shards", 0)
    old = PartitionSupervisor.whereis("shards", 0)
    with pytest.raises(beamish.CallError):
        await GenServer.call(via, "crash")
    await wait_until_idle()  # restarted
    assert PartitionSupervisor.whereis("shards", 0) not in (None, old)
    assert await GenServer.call(via, "who") == "s"


async def test_dynamic_supervisors_partitioned_the_seed_way():
    await PartitionSupervisor.start_link(child_spec=DynamicSupervisor, name="sups", partitions=3)
    for room in range(9):
        await DynamicSupervisor.start_child(PartitionSupervisor.via("sups", room), (Shard, room))
    counts = [
        (await DynamicSupervisor.count_children(child.pid)).active
        for child in await PartitionSupervisor.which_children("sups")
    ]
    assert counts == [3, 3, 3]


async def test_under_a_supervisor_with_a_child_spec_dict():
    await Supervisor.start_link([
        (PartitionSupervisor, {"child_spec": (Shard, "x"), "name": "nested", "partitions": 2}),
    ])
    assert await GenServer.call(PartitionSupervisor.via("nested", "k"), "who") == "x"
    with pytest.raises(TypeError, match="at least child_spec and name"):
        PartitionSupervisor.child_spec({"name": "only"})


async def test_errors():
    with pytest.raises(NotRegisteredError, match="no PartitionSupervisor is running"):
        PartitionSupervisor.whereis("nothing", 1)
    with pytest.raises(ValueError, match="partitions must be an int >= 1"):
        await PartitionSupervisor.start_link(child_spec=Shard, name="p", partitions=0)
    with pytest.raises(beamish.InvalidNameError):
        await PartitionSupervisor.start_link(child_spec=Shard, name=None)
    await PartitionSupervisor.start_link(child_spec=(Shard, 1), name="p", partitions=1)
    with pytest.raises(beamish.StartError):
        await Shard.start_link(1, name=PartitionSupervisor.via("p", 1))
