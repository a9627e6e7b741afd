"""``assert_receive`` and friends: ExUnit's mailbox assertions, for the test process.

How it works. Each is one ``receive`` with the given patterns and a timeout. When it fails,
the error shows the patterns and the mailbox, read without taking anything from it: a
receive with timeout 0 whose only pattern is a function that records every message it is
shown and matches none (a receive scans the whole mailbox, in order, before it gives up).

On a virtual clock a timeout would wait for virtual time that only the test can move, so
the timed helpers wait until the node is idle instead (every message already sent has been
handled, see ``wait_until_idle``) and then look; they never move the clock.
"""

from __future__ import annotations

from typing import Any

from beamish._runtime.context import current_runtime
from beamish._runtime.patterns import ANY
from beamish._runtime.receive import receive
from beamish.testing._clock import VirtualClock
from beamish.testing._idle import wait_until_idle

__all__ = [
    "MISSING",
    "assert_receive",
    "assert_received",
    "check_timeout",
    "describe_pattern",
    "peek",
    "receive_or_missing",
    "refute_receive",
    "refute_received",
    "short",
    "waited",
]

MISSING: Any = object()
"""What ``receive_or_missing`` returns when nothing matched."""
_MISSING = MISSING
_SHOWN = 10  # messages listed in a failure, as ExUnit does
_WIDTH = 200  # characters of one message's repr


async def assert_receive(pattern: Any = ANY, *patterns: Any, timeout: float = 0.1) -> Any:
    """Wait up to ``timeout`` seconds for a message matching a pattern; return it.

    The message is taken from the mailbox; the others stay, in order. The patterns are
    ``receive``'s (``ANY``, a class, a tuple or dict of patterns, a predicate, a value);
    with none, any message will do::

        ref = beamish.make_ref()
        beamish.send(server, ("ping", ref, beamish.self()))
        ("pong", _, count) = await assert_receive(("pong", ref, ANY))

    Raises ``AssertionError`` showing the patterns and the mailbox if none arrives. On a
    virtual clock it waits until every process is idle rather than for virtual time.
    """
    __tracebackhide__ = True
    wanted = (pattern, *patterns)
    clock = check_timeout("assert_receive", timeout)
    message = await receive_or_missing(wanted, timeout, clock)
    if message is _MISSING:
        raise AssertionError(await _not_received("assert_receive", wanted, timeout, clock))
    return message


async def assert_received(pattern: Any = ANY, *patterns: Any) -> Any:
    """Take a matching message that is already in the mailbox, without waiting; return it.

    Raises ``AssertionError`` showing the patterns and the mailbox if there is none.
    """
    __tracebackhide__ = True
    wanted = (pattern, *patterns)
    message = await receive(*wanted, timeout=0, default=_MISSING)
    if message is _MISSING:
        raise AssertionError(await _not_received("assert_received", wanted, 0, None))
    return message


async def refute_receive(pattern: Any = ANY, *patterns: Any, timeout: float = 0.1) -> None:
    """Assert that no message matching a pattern arrives within ``timeout`` seconds.

    A matching message that does arrive is taken from the mailbox and shown in the
    ``AssertionError``. With no pattern, no message at all may arrive. On a virtual clock
    it waits until every process is idle rather than for virtual time.
    """
    __tracebackhide__ = True
    wanted = (pattern, *patterns)
    clock = check_timeout("refute_receive", timeout)
    message = await receive_or_missing(wanted, timeout, clock)
    if message is not _MISSING:
        raise AssertionError(_received("refute_receive", wanted, message, timeout, clock))


async def refute_received(pattern: Any = ANY, *patterns: Any) -> None:
    """Assert that no matching message is in the mailbox now, without waiting."""
    __tracebackhide__ = True
    wanted = (pattern, *patterns)
    message = await receive(*wanted, timeout=0, default=_MISSING)
    if message is not _MISSING:
        raise AssertionError(_received("refute_received", wanted, message, 0, None))


def describe_pattern(pattern: Any) -> str:
    """A receive pattern as it reads in source: ``('reply', Ref<...>, ANY)``, ``Down``."""
    if pattern is ANY or pattern is None or pattern is True or pattern is False:
        return repr(pattern)
    if isinstance(pattern, type):
        return pattern.__qualname__
    if type(pattern) is tuple:
        items = ", ".join(describe_pattern(p) for p in pattern)
        return f"({items},)" if len(pattern) == 1 else f"({items})"
    if type(pattern) is dict:
        return "{" + ", ".join(f"{k!r}: {describe_pattern(v)}" for k, v in pattern.items()) + "}"
    if callable(pattern):
        return f"<function {getattr(pattern, '__qualname__', repr(pattern))}>"
    return short(pattern)


# -- inside (the channel helpers build on these too) -----------------------------------------


def check_timeout(what: str, timeout: Any) -> VirtualClock | None:
    """Refuse a bad ``timeout`` for ``what()``; the runtime's clock if it is virtual."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(f"{what}() needs a timeout in seconds >= 0, got {timeout!r}")
    clock = current_runtime().clock
    return clock if isinstance(clock, VirtualClock) else None


async def receive_or_missing(
    wanted: tuple[Any, ...], timeout: float, clock: VirtualClock | None
) -> Any:
    """The first message matching ``wanted`` within ``timeout`` (idleness, on a virtual
    clock), taken from the mailbox; ``MISSING`` if none."""
    __tracebackhide__ = True
    if clock is None:
        return await receive(*wanted, timeout=timeout, default=_MISSING)
    message = await receive(*wanted, timeout=0, default=_MISSING)
    if message is _MISSING and timeout > 0:
        await wait_until_idle()
        message = await receive(*wanted, timeout=0, default=_MISSING)
    return message


async def peek() -> list[Any]:
    """The calling process's mailbox, in order, leaving it as it is."""
    seen: list[Any] = []

    def look(message: Any) -> bool:
        seen.append(message)
        return False

    await receive(look, timeout=0, default=None)
    return seen


def _patterns(wanted: tuple[Any, ...]) -> str:
    if len(wanted) == 1:
        return describe_pattern(wanted[0])
    return "any of " + ", ".join(describe_pattern(p) for p in wanted)


def waited(timeout: float, clock: VirtualClock | None) -> str:
    """How long a helper looked: ``within 0.1s``, ``in the mailbox``..."""
    if clock is not None and timeout > 0:
        return (
            f"by the time every process was idle (on a virtual clock, which stays at "
            f"{clock.now()}s: the helper does not advance it; `await clock.advance(seconds)` "
            "lets timers fire)"
        )
    return f"within {timeout}s" if timeout else "in the mailbox"


async def _not_received(
    what: str, wanted: tuple[Any, ...], timeout: float, clock: VirtualClock | None
) -> str:
    mailbox = await peek()
    lines = [f"{what}() failed: no message matching {_patterns(wanted)} {waited(timeout, clock)}."]
    if not mailbox:
        lines.append("The mailbox is empty.")
    else:
        lines.append(
            f"Showing {min(len(mailbox), _SHOWN)} of {len(mailbox)} message(s) in the mailbox:"
        )
        lines.extend(f"  {short(m)}" for m in mailbox[:_SHOWN])
    return "\n".join(lines)


def _received(
    what: str, wanted: tuple[Any, ...], message: Any, timeout: float, clock: VirtualClock | None
) -> str:
    return (
        f"{what}() failed: received {short(message)}, which matches {_patterns(wanted)}, "
        f"{waited(timeout, clock)}."
    )


def short(value: Any) -> str:
    """``repr(value)``, cut to 200 characters."""
    text = repr(value)
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."
