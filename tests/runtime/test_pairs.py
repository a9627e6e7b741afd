"""The one-pair-or-dict tables that hold a process's monitors and watchers."""

from __future__ import annotations

import doctest
import random

from beamish._runtime import pairs
from beamish._runtime.pairs import entries, put, take, values


def test_the_module_examples_hold():
    assert doctest.testmod(pairs).failed == 0


def test_a_table_behaves_as_a_dict_through_any_sequence_of_puts_and_takes():
    rng = random.Random(7)
    for _ in range(200):
        table = None
        model: dict[int, int] = {}
        for step in range(30):
            key = rng.randrange(4)
            if rng.random() < 0.55:
                table = put(table, key, step)
                model[key] = step
            else:
                table, value = take(table, key)
                assert value == model.pop(key, None)
            assert sorted(entries(table)) == sorted(model.items())
            assert sorted(values(table)) == sorted(model.values())
            # one entry is held as a pair, none as None: never an empty or one-entry dict
            if not model:
                assert table is None
            elif len(model) == 1 and type(table) is tuple:
                assert table == next(iter(model.items()))


def test_equal_keys_are_one_key():
    table = put(None, (1, 2), "a")
    table = put(table, (1, 2), "b")  # equal, not the same object
    assert table == ((1, 2), "b")
    assert take(table, (1, 2)) == (None, "b")
    assert take(table, (3, 4)) == (table, None)
