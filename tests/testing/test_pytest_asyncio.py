"""The pytest plugin beside pytest-asyncio: who runs which async test, in both its modes."""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_asyncio")  # in the dev extra: `make test` installs it

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

TESTS = """
import asyncio

import pytest

import beamish


@pytest.fixture
async def answer():  # an async fixture: pytest-asyncio's
    await asyncio.sleep(0)
    return 42


async def test_plain_asyncio(answer):
    assert answer == 42
    await asyncio.sleep(0)


@pytest.mark.beamish
async def test_marked_runs_as_a_process():
    beamish.send(beamish.self(), "hello")
    assert await beamish.receive(timeout=1) == "hello"


async def test_with_the_runtime_fixture_runs_as_a_process(runtime):
    assert beamish.self() in beamish.processes()


async def test_virtual_clock_is_beamish_too(virtual_clock):
    beamish.send_after(beamish.self(), "later", 30)
    await virtual_clock.advance(30)
    assert await beamish.receive(timeout=0) == "later"
"""


def test_beside_pytest_asyncio_in_auto_mode(pytester):
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(TESTS + """

async def test_unmarked_is_pytest_asyncios():
    beamish.spawn(asyncio.sleep, 0)
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines([
        "*NoRuntimeError*",
        "*test_unmarked_is_pytest_asyncios ran under pytest-asyncio*mark it "
        "@pytest.mark.beamish*",
    ])


def test_beside_pytest_asyncio_in_auto_mode_a_module_mark_takes_the_module(pytester):
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile("""
import pytest

import beamish

pytestmark = pytest.mark.beamish


async def test_one():
    assert beamish.self() is not None


async def test_leftovers_still_fail():
    async def idle():
        await beamish.receive()

    beamish.spawn(idle)
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the test left 1 process(es) running*"])


def test_beside_pytest_asyncio_in_strict_mode(pytester):
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile("""
import asyncio

import pytest

import beamish


async def test_unmarked_is_beamish():
    assert beamish.self() is not None


@pytest.mark.asyncio
async def test_marked_asyncio_is_pytest_asyncios():
    with pytest.raises(beamish.NoRuntimeError):
        beamish.spawn(asyncio.sleep, 0)
    await asyncio.sleep(0)
""")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
