"""Registered names: one name per process, one process per name.

A name is a ``str``. Registering a taken name, or naming a process that already has a
name, is an error that names the holder. A process's name is released the moment it exits,
before its exit signals and down messages go out, so whoever learns of the exit can
register the name again at once.
"""

from __future__ import annotations

from beamish._errors import InvalidNameError, NameTakenError, NotRegisteredError, not_awaited
from beamish._runtime.pid import Pid
from beamish._runtime.process import Process

__all__ = ["Names", "check_name"]


def check_name(name: object) -> str:
    """Validate a process name; return it."""
    if type(name) is not str:
        raise InvalidNameError(
            f"a process name must be a str, got {name!r} ({type(name).__name__}); "
            "use a string such as 'cache' or 'MyApp.Repo'"
        )
    if not name:
        raise InvalidNameError("a process name must not be the empty string")
    return name


class Names:
    """The name table of the Runtime (a mixin)."""

    _names: dict[str, Process]

    def _register(self, name: str, proc: Process) -> None:
        check_name(name)
        holder = self._names.get(name)
        if holder is not None:
            raise NameTakenError(
                f"cannot register {name!r} for {proc.pid!r}: the name is already registered "
                f"to {holder.pid!r}",
                name=name, holder=holder.pid,
            )
        if proc.name is not None:
            raise NameTakenError(
                f"cannot register {name!r} for {proc.pid!r}: that process is already "
                f"registered as {proc.name!r}, and a process has at most one name",
                name=name, holder=proc.pid,
            )
        self._names[name] = proc
        proc.name = name

    def _unregister(self, name: str) -> None:
        check_name(name)
        proc = self._names.pop(name, None)
        if proc is None:
            raise NotRegisteredError(
                f"cannot unregister {name!r}: no process is registered under that name",
                name=name,
            )
        proc.name = None

    def whereis(self, name: str) -> Pid | None:
        """The pid registered under ``name``, or None."""
        proc = self._names.get(check_name(name))
        return None if proc is None else proc.pid

    def registered(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._names)

    def _resolve_name(self, name: object) -> Process:
        """The live process registered as ``name``; raises NotRegisteredError."""
        proc = self._names.get(name) if type(name) is str else None
        if proc is None:
            if type(name) is not str:
                raise InvalidNameError(
                    not_awaited(name, "send()", "a Pid or a registered name")
                    or f"cannot send to {name!r} ({type(name).__name__}): a destination is a "
                    "Pid or a registered name (str)"
                )
            raise NotRegisteredError(
                f"cannot send to {name!r}: no process is registered under that name "
                "(sending to a name that nobody holds is an error; sending to a dead pid "
                "is silently dropped)",
                name=name,
            )
        return proc
