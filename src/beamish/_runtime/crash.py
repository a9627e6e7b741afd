"""Crash reports: what a crashed process was, as OTP's crash reports tell it.

Every crash, a plain process's or a behaviour's, makes one ``CrashReport``: the process
(pid, registered name, the behaviour when it is one, its initial call), its ancestors (its
parent, the parent's parent... as OTP's ``$ancestors``, while they live), what it was
handling and its state when a behaviour says so (clipped to ``CLIP`` characters: a state
can be large, and a report is read by people), the exit reason, and the exception with its
traceback. The runtime logs it for a crash that escaped the process, a behaviour logs its
own (with the behaviour's words), and the ``beamish.process.crash`` telemetry event carries
it as ``metadata["report"]``.

A behaviour hands the runtime what only it knows by exiting with
``ProcessExit(reason, reported=details)``, ``details`` a dict with ``behaviour``,
``message`` and ``state``.
"""

from __future__ import annotations

import reprlib
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beamish._runtime.process import Process

__all__ = ["CLIP", "CrashReport", "ancestors_line", "ancestors_of", "clip", "crash_report"]

CLIP = 500  # characters of a message's or a state's repr in a report
_MAX_ANCESTORS = 20
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 20
_repr.maxlevel = 4


def clip(value: Any) -> str:
    """A bounded repr: nested containers cut short, then at most ``CLIP`` characters."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a repr that raises must not take the report down
        text = f"<{type(value).__qualname__}: repr failed with {type(exc).__name__}>"
    return text if len(text) <= CLIP else text[:CLIP - 3] + "..."


@dataclass(frozen=True, slots=True)
class CrashReport:
    """One crash (see the module). ``message`` and ``state`` are clipped reprs, or None
    when the process is not a behaviour that tells them."""

    pid: Any
    name: str | None
    behaviour: str | None
    initial_call: str
    ancestors: tuple[Any, ...]
    message: str | None
    state: str | None
    reason: Any
    exception: BaseException | None
    stacktrace: str

    def lines(self) -> list[str]:
        """The report's ``** key: value`` lines, as a log record's body shows them."""
        lines = [f"** process: {self.pid!r}" + (f" ({self.name})" if self.name else "")]
        if self.behaviour:
            lines.append(f"** behaviour: {self.behaviour}")
        lines.append(f"** initial call: {self.initial_call}")
        if self.ancestors:
            lines.append("** ancestors: " + ", ".join(map(repr, self.ancestors)))
        if self.message is not None:
            lines.append(f"** last message: {self.message}")
        if self.state is not None:
            lines.append(f"** state: {self.state}")
        lines.append(f"** reason: {clip(self.reason)}")
        return lines


def ancestors_of(proc: Process) -> tuple[Any, ...]:
    """The process's parent, its parent's parent..., nearest first, as far as they live
    (a registered one by name, as OTP shows them)."""
    found: list[Any] = []
    parent = proc.parent
    while parent is not None and len(found) < _MAX_ANCESTORS:
        record = getattr(parent, "_proc", None)
        if record is None:
            found.append(parent)  # gone, or on another node: its pid, and no further
            break
        found.append(record.name or parent)
        parent = record.parent
    return tuple(found)


def ancestors_line(pid: Any) -> str:
    """A behaviour's report line naming the ancestors of its process ``pid`` ("" for none)."""
    record = getattr(pid, "_proc", None)
    ancestors = ancestors_of(record) if record is not None else ()
    return "** ancestors: " + ", ".join(map(repr, ancestors)) if ancestors else ""


def crash_report(proc: Process, reason: Any, details: Any = None) -> CrashReport:
    """The report of ``proc``'s crash with ``reason`` (``details``: what a behaviour told)."""
    from beamish._runtime.introspection import describe
    from beamish._runtime.messages import Crash

    exc = reason.exception if type(reason) is Crash else None
    told = details if type(details) is dict else {}
    actor = proc.actor
    initial = describe(type(actor) if actor is not None else proc.initial)
    return CrashReport(
        pid=proc.pid, name=proc.name, behaviour=told.get("behaviour"), initial_call=initial,
        ancestors=ancestors_of(proc),
        message=clip(told["message"]) if "message" in told else None,
        state=clip(told["state"]) if "state" in told else None,
        reason=reason, exception=exc,
        stacktrace="".join(traceback.format_exception(exc)) if exc is not None else "",
    )
