"""The messages the runtime itself sends, and exit reasons.

Exit reasons follow the BEAM, with atoms written as strings:

- ``"normal"``: a clean exit; linked processes ignore it unless they trap exits.
- ``"shutdown"`` and ``("shutdown", detail)``: a requested stop; treated as abnormal by links,
  but not logged as an error and counted as a clean stop by supervisors.
- ``"kill"``: sent with ``exit(pid, "kill")`` it cannot be trapped, and the target dies with
  ``"killed"``.
- ``"noproc"``: the process did not exist (monitor or link to a dead pid).
- ``Crash(exception)``: the process raised; it carries the exception and its traceback.
- anything else given to ``exit()`` or ``ProcessExit``.
"""

from __future__ import annotations

import traceback as _traceback
from dataclasses import dataclass
from typing import Any

from beamish._runtime.pid import Pid, Ref

__all__ = ["Crash", "Down", "Exit", "NodeDown", "NodeUp", "is_clean_exit", "is_shutdown"]


@dataclass(frozen=True, slots=True)
class Exit:
    """The message a process that traps exits gets instead of dying.

    ``pid`` sent the exit signal (or was linked and exited) with ``reason``::

        match await receive():
            case Exit(pid, "normal"): ...
            case Exit(pid, reason): ...
    """

    pid: Pid | None
    reason: Any


@dataclass(frozen=True, slots=True)
class Down:
    """The message a monitor delivers once, when the monitored process exits::

        ref = monitor(pid)
        match await receive(Down):
            case Down(r, _, reason) if r == ref: ...

    ``pid`` is the monitored process (or the registered name that was monitored when no
    process held it) and ``reason`` its exit reason, ``"noproc"`` if it did not exist.
    """

    ref: Ref
    pid: Any
    reason: Any


@dataclass(frozen=True, slots=True)
class NodeUp:
    """Sent to a process that called ``monitor_nodes()`` when ``node`` connects."""

    node: str


@dataclass(frozen=True, slots=True)
class NodeDown:
    """Sent when ``node`` disconnects: to processes that called ``monitor_nodes()`` and once
    per ``monitor_node(node)``. ``reason`` says why (``"noconnection"``: its heartbeats
    stopped; ``"disconnect"``: it said goodbye; ``"restarted"``: a new incarnation came)."""

    node: str
    reason: Any = "noconnection"


class Crash:
    """The exit reason of a process that raised: the exception and its traceback.

    ``crash.exception`` is the exception object; ``crash.traceback`` the formatted traceback
    text (computed on first use). Match it with ``case Crash(ValueError()):``.
    """

    __slots__ = ("_text", "exception")
    __match_args__ = ("exception",)

    exception: BaseException
    _text: str | None

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception
        self._text = None

    @property
    def traceback(self) -> str:
        """The formatted traceback, as Python prints it."""
        if self._text is None:
            self._text = "".join(_traceback.format_exception(self.exception))
        return self._text

    def __repr__(self) -> str:
        return f"Crash({self.exception!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not Crash:
            return NotImplemented  # let a pattern (ANY, say) answer
        return other.exception is self.exception or (
            type(other.exception) is type(self.exception)
            and hasattr(self.exception, "type_name")  # a RemoteError: equal by value
            and other.exception == self.exception
        )

    def __hash__(self) -> int:
        return id(self.exception)

    def __copy__(self) -> Crash:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Crash:
        return self


def is_shutdown(reason: Any) -> bool:
    """True for ``"shutdown"`` and ``("shutdown", detail)``."""
    return reason == "shutdown" if type(reason) is str else (
        type(reason) is tuple and len(reason) == 2 and reason[0] == "shutdown"
    )


def is_clean_exit(reason: Any) -> bool:
    """True for reasons that are not errors: ``"normal"`` and the shutdown forms."""
    return (type(reason) is str and reason in ("normal", "shutdown")) or is_shutdown(reason)
