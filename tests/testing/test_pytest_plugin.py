"""The pytest plugin: async tests run as processes, and leftovers fail the test."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_async_test_runs_as_a_process(pytester):
    pytester.makepyfile(
        """
        import beamish

        async def test_body():
            beamish.send(beamish.self(), "hello")
            assert await beamish.receive(timeout=1) == "hello"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_leftover_processes_fail_the_test(pytester):
    pytester.makepyfile(
        """
        import beamish

        async def idle():
            await beamish.receive()

        async def test_leaks():
            beamish.spawn_opt(idle, name="leaked")

        async def test_linked_helpers_are_shut_down_with_the_test():
            beamish.spawn_link(idle)

        import pytest

        @pytest.mark.beamish(allow_leftovers=True)
        async def test_allowed():
            beamish.spawn(idle)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*the test left 1 process(es) running*", "*(leaked)*idle*"])


def test_leftover_tasks_fail_the_test(pytester):
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaks_a_task():
            asyncio.get_running_loop().create_task(asyncio.sleep(30), name="forgotten")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*left 1 asyncio task(s) pending*forgotten*"])


def test_a_test_process_killed_by_a_link_fails(pytester):
    pytester.makepyfile(
        """
        import beamish

        async def test_killed():
            async def boom():
                raise beamish.ProcessExit("bad")
            beamish.spawn_link(boom)
            await beamish.receive(timeout=1)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the test process exited with reason 'bad'*"])


def test_virtual_clock_fixture_and_marker(pytester):
    pytester.makepyfile(
        """
        import pytest
        import beamish
        from beamish.testing import VirtualClock

        async def test_fixture(virtual_clock, runtime):
            assert runtime.clock is virtual_clock
            await virtual_clock.advance(5)
            assert beamish.monotonic() == 5

        @pytest.mark.beamish(clock="virtual")
        async def test_marker(runtime):
            assert isinstance(runtime.clock, VirtualClock)

        async def test_real_by_default(runtime):
            assert not isinstance(runtime.clock, VirtualClock)

        @pytest.mark.beamish(clock="real")
        async def test_conflict(virtual_clock):
            pass

        @pytest.mark.beamish(clock="fake")
        async def test_unknown_clock(runtime):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines([
        "*test_conflict asks for virtual_clock but its beamish marker gives the runtime "
        "another clock*",
        "*test_unknown_clock: @pytest.mark.beamish(clock='fake') is not a clock; use "
        "clock='virtual', clock='real', or a Clock instance*",
    ])
