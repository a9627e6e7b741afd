"""assert_receive, refute_receive, assert_received, refute_received."""

from __future__ import annotations

import pytest

import beamish
from beamish import ANY, Down, receive, send
from beamish.testing import (
    assert_receive,
    assert_received,
    refute_receive,
    refute_received,
)
from beamish.testing._receive import describe_pattern

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def test_assert_receive_returns_the_match_and_leaves_the_rest_in_order():
    me = beamish.self()
    ref = beamish.make_ref()
    send(me, "noise")
    send(me, ("reply", ref, 42))
    send(me, "more noise")
    assert await assert_receive(("reply", ref, ANY)) == ("reply", ref, 42)
    assert await receive(timeout=0) == "noise"
    assert await receive(timeout=0) == "more noise"


async def test_assert_receive_with_no_pattern_takes_any_message():
    send(beamish.self(), {"any": "thing"})
    assert await assert_receive() == {"any": "thing"}


async def test_assert_receive_waits_for_a_message_sent_later():
    beamish.send_after(beamish.self(), "late", 0.02)
    assert await assert_receive("late", timeout=1) == "late"


async def test_assert_receive_takes_the_first_of_several_patterns():
    send(beamish.self(), ("b", 2))
    assert await assert_receive(("a", ANY), ("b", ANY)) == ("b", 2)


async def test_assert_receive_failure_shows_patterns_and_mailbox():
    me = beamish.self()
    ref = beamish.make_ref()
    send(me, "noise")
    send(me, ("reply", ref, 41))
    with pytest.raises(AssertionError) as failed:
        await assert_receive(("reply", ref, 42), timeout=0.01)
    assert str(failed.value) == (
        f"assert_receive() failed: no message matching ('reply', {ref!r}, 42) within 0.01s.\n"
        "Showing 2 of 2 message(s) in the mailbox:\n"
        "  'noise'\n"
        f"  ('reply', {ref!r}, 41)"
    )
    # looking did not take anything
    assert await receive(timeout=0) == "noise"
    assert await receive(timeout=0) == ("reply", ref, 41)


async def test_assert_receive_failure_with_an_empty_mailbox():
    with pytest.raises(AssertionError, match=r"no message matching 'x' in the mailbox\.\n"
                                             r"The mailbox is empty\.$"):
        await assert_receive("x", timeout=0)


async def test_assert_receive_failure_shows_at_most_ten_messages():
    for n in range(12):
        send(beamish.self(), n)
    with pytest.raises(AssertionError) as failed:
        await assert_receive("never", Down, timeout=0)
    text = str(failed.value)
    assert "no message matching any of 'never', Down in the mailbox." in text
    assert "Showing 10 of 12 message(s) in the mailbox:\n  0\n  1\n" in text
    assert text.endswith("  9")


async def test_assert_receive_failure_shortens_long_messages():
    send(beamish.self(), "x" * 1000)
    with pytest.raises(AssertionError) as failed:
        await assert_receive("y", timeout=0)
    last = str(failed.value).splitlines()[-1]
    assert last.endswith("...") and len(last) == 2 + 200


async def test_assert_received_does_not_wait():
    beamish.send_after(beamish.self(), "soon", 0.05)
    with pytest.raises(AssertionError, match=r"^assert_received\(\) failed: no message "
                                             r"matching 'soon' in the mailbox\."):
        await assert_received("soon")
    assert await assert_receive("soon", timeout=1) == "soon"
    send(beamish.self(), "here")
    assert await assert_received() == "here"


async def test_refute_receive_passes_when_nothing_matches():
    send(beamish.self(), "other")
    await refute_receive("unwanted", timeout=0.01)
    assert await receive(timeout=0) == "other"


async def test_refute_receive_failure_shows_the_message_and_takes_it():
    send(beamish.self(), ("error", "disk full"))
    with pytest.raises(AssertionError) as failed:
        await refute_receive(("error", ANY), timeout=0.01)
    assert str(failed.value) == (
        "refute_receive() failed: received ('error', 'disk full'), which matches "
        "('error', ANY), within 0.01s."
    )
    await refute_received()


async def test_refute_received_only_looks_at_the_mailbox():
    beamish.send_after(beamish.self(), "later", 0.02)
    await refute_received("later")
    send(beamish.self(), "now")
    with pytest.raises(AssertionError, match=r"refute_received\(\) failed: received 'now', "
                                             r"which matches ANY, in the mailbox\."):
        await refute_received()
    assert await assert_receive("later", timeout=1) == "later"


async def test_assert_receive_rejects_a_bad_timeout():
    with pytest.raises(ValueError, match="timeout in seconds >= 0, got -1"):
        await assert_receive("x", timeout=-1)
    with pytest.raises(ValueError, match="got None"):
        await refute_receive("x", timeout=None)


def test_describe_pattern_reads_like_source():
    def is_even(n):
        return n % 2 == 0

    assert describe_pattern(("ok", ANY, Down)) == "('ok', ANY, Down)"
    assert describe_pattern(("one",)) == "('one',)"
    assert describe_pattern({"type": "msg", "n": is_even}) == (
        "{'type': 'msg', 'n': <function test_describe_pattern_reads_like_source.<locals>."
        "is_even>}"
    )
    assert describe_pattern(None) == "None"
    assert describe_pattern(3) == "3"


# -- on a virtual clock ---------------------------------------------------------------------


async def _echo_later():
    match await receive():
        case ("echo", reply_to, value):
            send(reply_to, value)


async def test_assert_receive_on_a_virtual_clock_waits_until_idle(virtual_clock):
    pid = beamish.spawn_link(_echo_later)
    send(pid, ("echo", beamish.self(), "pong"))
    assert await assert_receive("pong", timeout=5) == "pong"
    assert virtual_clock.now() == 0


async def test_assert_receive_on_a_virtual_clock_fails_without_moving_it(virtual_clock):
    beamish.send_after(beamish.self(), "tick", 1)
    with pytest.raises(AssertionError) as failed:
        await assert_receive("tick", timeout=5)
    assert str(failed.value).startswith(
        "assert_receive() failed: no message matching 'tick' by the time every process was "
        "idle (on a virtual clock, which stays at 0.0s: the helper does not advance it; "
        "`await clock.advance(seconds)` lets timers fire).\nThe mailbox is empty."
    )
    await refute_receive("tick", timeout=5)
    await virtual_clock.advance(1)
    assert await assert_received("tick") == "tick"


# -- failures as pytest shows them ----------------------------------------------------------


def test_a_failing_assert_receive_reads_well_in_pytest(pytester):
    pytester.makepyfile(
        """
        import beamish
        from beamish.testing import assert_receive, refute_receive

        async def test_waits_for_a_reply():
            beamish.send(beamish.self(), ("progress", 50))
            beamish.send(beamish.self(), ("progress", 75))
            await assert_receive(("done", beamish.ANY), timeout=0.01)

        async def test_refutes_an_error():
            beamish.send(beamish.self(), ("error", "boom"))
            await refute_receive(("error", beamish.ANY), timeout=0.01)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*await assert_receive((\"done\", beamish.ANY), timeout=0.01)",
        "E*AssertionError: assert_receive() failed: no message matching ('done', ANY) "
        "within 0.01s.",
        "E*Showing 2 of 2 message(s) in the mailbox:",
        "E*('progress', 50)",
        "E*('progress', 75)",
    ])
    result.stdout.fnmatch_lines([
        "E*AssertionError: refute_receive() failed: received ('error', 'boom'), which "
        "matches ('error', ANY), within 0.01s.",
    ])
    assert "_receive.py" not in result.stdout.str()  # the traceback ends at the test's line
