"""What a GenServer's callbacks return: ``Ok``, ``Reply``, ``NoReply``, ``Stop``, ``Continue``
and ``Ignore``, and the Elixir-style tuples (``("reply", value, state)``...) that map onto them.

Pure values and one pure function (``normalize``), kept apart from the process that acts on
them (``gen_server.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ALLOWED",
    "NOTHING",
    "RESULTS",
    "BadReturnValue",
    "Continue",
    "Ignore",
    "NoReply",
    "Ok",
    "Reply",
    "Stop",
    "after_of",
    "normalize",
]

NOTHING: Any = object()
"""Stands for an argument not given (``None`` is a valid state and a valid reply)."""


class Continue:
    """``Continue(term)``: run ``handle_continue(term, state)`` before the next message."""

    __slots__ = ("term",)
    __match_args__ = ("term",)

    def __init__(self, term: Any) -> None:
        self.term = term

    def __repr__(self) -> str:
        return f"Continue({self.term!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Continue and other.term == self.term


class Ok:
    """From ``init``: start with ``state``; ``after`` is a timeout (s) or a ``Continue``."""

    __slots__ = ("after", "state")
    __match_args__ = ("state", "after")

    def __init__(self, state: Any, after: Any = None) -> None:
        self.state = state
        self.after = after

    def __repr__(self) -> str:
        return f"Ok({self.state!r}{'' if self.after is None else f', {self.after!r}'})"


class Reply:
    """From ``handle_call``: answer ``value`` and go on with ``state``."""

    __slots__ = ("after", "state", "value")
    __match_args__ = ("value", "state", "after")

    def __init__(self, value: Any, state: Any, after: Any = None) -> None:
        self.value = value
        self.state = state
        self.after = after

    def __repr__(self) -> str:
        return f"Reply({self.value!r}, {self.state!r})"


class NoReply:
    """Go on with ``state`` (from ``handle_call``: reply later with ``GenServer.reply``)."""

    __slots__ = ("after", "state")
    __match_args__ = ("state", "after")

    def __init__(self, state: Any, after: Any = None) -> None:
        self.state = state
        self.after = after

    def __repr__(self) -> str:
        return f"NoReply({self.state!r})"


class Stop:
    """Stop with ``reason``: terminate runs, then the process exits with ``reason``.

    From ``handle_call``, ``reply=`` answers the caller once ``terminate`` has run, as in
    OTP. From ``init``, only the reason is given (``Stop(reason)``): the start fails with it.
    """

    __slots__ = ("reason", "reply", "state")
    __match_args__ = ("reason", "state")

    def __init__(self, reason: Any, state: Any = NOTHING, *, reply: Any = NOTHING) -> None:
        self.reason = reason
        self.state = state
        self.reply = reply

    def __repr__(self) -> str:
        return f"Stop({self.reason!r})"


class Ignore:
    """From ``init``: start nothing; ``start_link`` raises ``StartIgnored``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Ignore()"


# What callbacks return when they are not async: checked before inspect.isawaitable.
RESULTS = frozenset({Reply, NoReply, Stop, Ok, tuple, str})

_AS_CAST = (
    "NoReply(state[, after]) or Stop(reason, state); or the tuples ('noreply', state[, "
    "after]), ('stop', reason, state)"
)
ALLOWED = {
    "init": (
        "Ok(state[, after]), Ignore(), Stop(reason); or the tuples ('ok', state[, after]), "
        "'ignore', ('stop', reason), ('error', reason)"
    ),
    "handle_call": (
        "Reply(value, state[, after]), NoReply(state[, after]) (and answer later with "
        "GenServer.reply), Stop(reason, state[, reply=value]); or the tuples ('reply', value, "
        "state[, after]), ('noreply', state[, after]), ('stop', reason, state), ('stop', "
        "reason, value, state)"
    ),
    "handle_cast": _AS_CAST,
    "handle_info": _AS_CAST,
    "handle_continue": _AS_CAST,
    "after": "a timeout in seconds, Continue(term) or 'hibernate'",
}
"""What each callback may return, as errors and crash reports list it."""


class BadReturnValue(tuple[str, Any]):
    """The exit reason ``("bad_return_value", value)`` of a server whose callback returned
    something it may not return.

    It *is* that tuple, as in OTP: it compares equal to it and ``match`` takes it apart the
    same way. It also knows which callback returned it, so ``hint`` can say what that
    callback may return; ``CallError`` and the crash report show the hint.
    """

    callback: str
    owner: str

    def __new__(cls, value: Any, callback: str, owner: str) -> BadReturnValue:
        self = super().__new__(cls, ("bad_return_value", value))
        self.callback = callback
        self.owner = owner
        return self

    def __reduce__(self) -> Any:  # copied when isolated: rebuild it with what it knows
        return (BadReturnValue, (self[1], self.callback, self.owner))

    @property
    def hint(self) -> str:
        value = _short(self[1])
        if self.callback == "after":
            return (
                f"a callback of {self.owner} returned {value} as what comes after it; that "
                f"must be {ALLOWED['after']}"
            )
        return (
            f"{self.owner}.{self.callback} returned {value}, which it may not return: it "
            f"must return {ALLOWED[self.callback]}"
        )


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def normalize(result: Any, allowed: str) -> Any:
    """Map Elixir-style tuples onto the return classes; anything else is returned as is."""
    if type(result) is not tuple or not result:
        if result == "ignore" and "i" in allowed:
            return Ignore()
        return result
    tag, *rest = result
    after = after_of(rest[-1]) if rest else None
    if tag == "reply" and "r" in allowed and len(rest) in (2, 3):
        return Reply(rest[0], rest[1], after if len(rest) == 3 else None)
    if tag == "noreply" and "n" in allowed and len(rest) in (1, 2):
        return NoReply(rest[0], after if len(rest) == 2 else None)
    if tag == "ok" and "o" in allowed and len(rest) in (1, 2):
        return Ok(rest[0], after if len(rest) == 2 else None)
    if tag == "stop":
        if "i" in allowed and len(rest) == 1:  # init: ("stop", reason)
            return Stop(rest[0])
        if len(rest) == 2:
            return Stop(rest[0], rest[1])
        if len(rest) == 3 and "r" in allowed:
            return Stop(rest[0], rest[2], reply=rest[1])
    return result


def after_of(value: Any) -> Any:
    if type(value) is tuple and len(value) == 2 and value[0] == "continue":
        return Continue(value[1])
    return value
