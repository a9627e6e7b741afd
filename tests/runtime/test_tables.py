"""Owned tables: found without a message, gone with their owner, one name per table."""

from __future__ import annotations

import pytest

import beamish
from beamish import NoProcessError, receive


async def holder(parent, name, data):
    beamish.new_table(name, data)
    beamish.send(parent, ("made", name))
    await receive(lambda m: m == "stop")


async def test_a_table_is_found_and_goes_with_its_owner():
    owner = beamish.spawn(holder, beamish.self(), ("t", 1), {"k": "v"})
    await receive(lambda m: m == ("made", ("t", 1)))
    table = beamish.find_table(("t", 1))
    assert table.owner == owner and table.data == {"k": "v"}
    assert ("t", 1) in beamish._runtime.tables.table_names()
    with pytest.raises(ValueError, match="exists, owned by"):
        beamish.new_table(("t", 1), {})
    exited = beamish.wait_exit(owner)
    beamish.exit(owner, "kill")
    await exited
    assert beamish.find_table(("t", 1)) is None
    # the name is free again
    beamish.new_table(("t", 1), "mine")
    assert beamish.find_table(("t", 1)).owner == beamish.self()
    beamish.delete_table(("t", 1))
    assert beamish.find_table(("t", 1)) is None


async def test_a_dead_owner_is_refused():
    dead, ref = beamish.spawn_monitor(lambda: None)
    await receive(beamish.Down)
    with pytest.raises(NoProcessError, match="not alive"):
        beamish.new_table("x", 1, owner=dead)


async def test_two_runtimes_keep_their_own_tables():
    beamish.new_table("shared-name", "a")
    async with beamish.Runtime() as other, other.as_process():
        assert beamish.find_table("shared-name") is None
        beamish.new_table("shared-name", "b")
        assert beamish.find_table("shared-name").data == "b"
    assert beamish.find_table("shared-name").data == "a"
