"""Where a node's console listens, and the secret that opens it.

Each node's console is a Unix socket ``<dir>/<name>.sock``, mode 0600, in a directory only
its user can enter (mode 0700): ``$BEAMISH_CONSOLE_DIR``, else ``$XDG_RUNTIME_DIR/beamish``,
else ``/tmp/beamish-<uid>``. A directory that exists with looser rights, or owned by
another user, is refused rather than used.

The secret is the node's ``BEAMISH_COOKIE`` when it has one (the cluster's secret, never
written anywhere by beamish); otherwise the node makes one at start and writes it to
``<dir>/<name>.cookie``, mode 0600, for ``beamish remote`` and ``beamish upgrade`` run by
the same user. Both files go when the node stops.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

__all__ = ["ConsolePathError", "console_dir", "cookie_path", "known_consoles", "socket_path"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


class ConsolePathError(OSError):
    """The console's directory is missing rights or has too many."""


def console_dir(create: bool = False) -> Path:
    chosen = os.environ.get("BEAMISH_CONSOLE_DIR")
    if chosen:
        where = Path(chosen)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        where = Path(os.environ["XDG_RUNTIME_DIR"]) / "beamish"
    else:
        where = Path("/tmp") / f"beamish-{os.getuid()}"
    if create:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    if where.exists():
        info = where.stat()
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise ConsolePathError(
                f"the console directory {where} must belong to this user with mode 0700 "
                f"(it has owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); "
                "fix it or set BEAMISH_CONSOLE_DIR"
            )
    return where


def safe_name(name: str) -> str:
    return _UNSAFE.sub("_", name)[:80] or "node"


def socket_path(name: str, create: bool = False) -> Path:
    return console_dir(create) / f"{safe_name(name)}.sock"


def cookie_path(name: str) -> Path:
    return console_dir() / f"{safe_name(name)}.cookie"


def known_consoles() -> list[str]:
    """The names of the consoles in the directory (live or left by a killed node)."""
    try:
        where = console_dir()
    except ConsolePathError:
        return []
    if not where.exists():
        return []
    return sorted(p.stem for p in where.glob("*.sock"))
