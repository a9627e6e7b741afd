"""The Registry's tables (registry_table.py), without processes or a scheduler."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamish._otp.registry.table import RegistryTable, new_table, parse_kind
from beamish._runtime.pid import NodeId, Pid

NODE = NodeId("table-test", 1)
PIDS = [Pid(NODE, i) for i in range(1, 7)]
KINDS = ["unique", "duplicate", ("duplicate", "key")]


def entries(table, key):
    if table.unique:
        found = table.holder(key)
        return [] if found is None else [found]
    return table.lookup(key)


@pytest.mark.parametrize("partitions", [1, 8])
@pytest.mark.parametrize("keys", KINDS)
def test_insert_lookup_and_remove_owner(keys, partitions):
    table = RegistryTable("t", keys, partitions)
    a, b = PIDS[:2]
    assert table.insert("x", a, 1) is True  # a's first registration: link it
    assert table.insert("y", a, 2) is False
    table.insert("z", b, 3)
    assert entries(table, "x") == [(a, 1)]
    assert [r[0] for r in table.registrations(a)] == ["x", "y"]
    assert table.count() == 3
    assert table.remove_owner(a) == 2
    assert entries(table, "x") == [] and table.registrations(a) == []
    assert table.count() == 1
    assert table.remove_owner(a) == 0


@pytest.mark.parametrize("partitions", [1, 8])
def test_unique_takeover_drops_the_dead_holders_registration(partitions):
    table = RegistryTable("t", "unique", partitions)
    dead, alive = PIDS[:2]
    table.insert("k", dead, "old")
    table.insert("k", alive, "new")  # the caller checked that `dead` is dead
    assert table.holder("k") == (alive, "new")
    assert table.registrations(dead) == []
    assert table.remove_owner(dead) == 0  # the late cleanup spares the new holder
    assert table.holder("k") == (alive, "new")
    assert table.count() == 1


@pytest.mark.parametrize("keys", KINDS[1:])
def test_remove_reports_what_is_left(keys):
    table = RegistryTable("t", keys, 4)
    me = PIDS[0]
    for value in (1, 2, 3):
        table.insert("k", me, value)
    table.insert("other", me, 0)
    assert table.remove("k", me, lambda v: v > 1) == (2, 1, False)
    assert table.lookup("k") == [(me, 1)]
    assert table.remove("k", me) == (1, 0, False)
    assert table.remove("other", me) == (1, 0, True)  # nothing left: unlink
    assert table.remove("other", me) == (0, 0, True)


@pytest.mark.parametrize("keys", KINDS)
def test_mutable_values_are_copied_in_and_out(keys):
    table = RegistryTable("t", keys, 2)
    value = {"a": [1]}
    table.insert("k", PIDS[0], value)
    value["a"].append(2)
    [(_, stored)] = entries(table, "k") if table.unique else table.lookup("k")
    assert stored == {"a": [1]}
    if not table.unique:
        stored["a"].append(3)
        assert table.lookup("k") == [(PIDS[0], {"a": [1]})]
    table.remove_owner(PIDS[0])
    assert all(not t.mutable and t.size == 0 for t in table.keys)


def test_options_are_checked():
    assert parse_kind("duplicate") == parse_kind(("duplicate", "pid")) == (False, False)
    with pytest.raises(ValueError, match='"unique", "duplicate"'):
        parse_kind("dupes")
    with pytest.raises(ValueError, match="partitions"):
        new_table("unique", "t", partitions=True)
    with pytest.raises(TypeError, match="meta"):
        new_table("unique", "t", meta=[("a", 1)])


operations = st.lists(
    st.tuples(
        st.sampled_from(["insert", "remove", "remove_owner"]),
        st.sampled_from(PIDS),
        st.sampled_from(["a", "b", "c", ("t", 1)]),
        st.integers(0, 3),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(keys=st.sampled_from(KINDS[1:]), partitions=st.sampled_from([1, 3, 8]), ops=operations)
def test_duplicate_tables_agree_with_a_list_of_entries(keys, partitions, ops):
    table = RegistryTable("t", keys, partitions)
    model: list[tuple[object, Pid, int]] = []  # (key, pid, value) in registration order
    for op, pid, key, value in ops:
        if op == "insert":
            table.insert(key, pid, value)
            model.append((key, pid, value))
        elif op == "remove":
            table.remove(key, pid)
            model = [e for e in model if not (e[0] == key and e[1] == pid)]
        else:
            table.remove_owner(pid)
            model = [e for e in model if e[1] != pid]
        assert table.count() == len(model)
    for key in ["a", "b", "c", ("t", 1)]:
        expected = sorted((p.id, v) for k, p, v in model if k == key)
        assert sorted((p.id, v) for p, v in table.lookup(key)) == expected
    for pid in PIDS:
        assert [r[0] for r in table.registrations(pid)] == [k for k, p, _ in model if p == pid]
    assert sorted(
        ((k, p.id, v) for k, p, v in table.all_entries()), key=repr
    ) == sorted(((k, p.id, v) for k, p, v in model), key=repr)
