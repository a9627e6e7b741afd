"""The exception tree of beamish.

Errors are real exceptions that state the broken rule, show what was received and, where
there is one, suggest the fix. Each also derives from the builtin category a Python user
would reach for (``TypeError`` for a wrong kind of argument, ``LookupError`` for a missing
name), so ``except TypeError`` works as expected::

    BaseException
    ├── ProcessExit                 the current process ends with ``reason`` (Elixir's exit/1)
    └── Exception
        └── BeamishError
            ├── NoRuntimeError          (RuntimeError)  no runtime runs in this context
            ├── NotInProcessError       (RuntimeError)  a process-only call outside a process
            ├── SystemLimitError        (RuntimeError)  the process limit is reached
            ├── InvalidTargetError      (TypeError)     spawn() got something that cannot run
            ├── InvalidNameError        (TypeError)     a name of the wrong type
            ├── NameTakenError          (ValueError)    a name or a process already registered
            ├── NoProcessError          (LookupError)   the process is not alive
            │   └── NotRegisteredError                  no process under that name
            └── MessageCopyError        (TypeError)     a message that cannot be isolated

``ProcessExit`` derives from ``BaseException`` on purpose: like ``asyncio.CancelledError``
it is a control-flow signal, and a generic ``except Exception`` must not swallow it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BeamishError",
    "InvalidNameError",
    "InvalidTargetError",
    "MessageCopyError",
    "NameTakenError",
    "NoProcessError",
    "NoRuntimeError",
    "NotInProcessError",
    "NotRegisteredError",
    "ProcessExit",
    "SystemLimitError",
]


class ProcessExit(BaseException):
    """Ends the current process with ``reason``.

    ``raise ProcessExit("normal")`` stops the calling process normally; any other reason
    is an abnormal exit that linked processes see. The runtime also raises it inside a
    process that an exit signal has just killed, so that the process's Python frames
    unwind. Do not catch it unless you re-raise it.
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"process exited with reason {self.reason!r}"


class BeamishError(Exception):
    """Base class of the errors beamish raises for misuse and bad input."""


class NoRuntimeError(BeamishError, RuntimeError):
    """A beamish call was made where no runtime is running."""


class NotInProcessError(BeamishError, RuntimeError):
    """A call that only a process can make was made outside any process."""


class SystemLimitError(BeamishError, RuntimeError):
    """A configured system limit (such as the process limit) was reached."""


class InvalidTargetError(BeamishError, TypeError):
    """spawn() was given something that cannot be the body of a process."""


class InvalidNameError(BeamishError, TypeError):
    """A process name of the wrong type or form."""


class NameTakenError(BeamishError, ValueError):
    """The name, or the process, is already registered."""

    def __init__(self, message: str, *, name: Any = None, holder: Any = None) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder


class NoProcessError(BeamishError, LookupError):
    """The process an operation needs is not alive."""


class NotRegisteredError(NoProcessError):
    """No process is registered under the given name."""

    def __init__(self, message: str, *, name: Any = None) -> None:
        super().__init__(message)
        self.name = name


class MessageCopyError(BeamishError, TypeError):
    """A mutable message could not be copied for isolation."""
