"""What a benchmark script needs of the processes it starts: a free port for a server, the
CPU time a process and its children have used (from ``/proc``), and how long a client waits
before it reconnects. Found beside the scripts, as
``_report.py`` is."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_RECONNECT_AFTER = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0)


def reconnect_after(tries: int) -> float:
    """Seconds before a client's next reconnection, as phoenix.js waits (its
    ``reconnectAfterMs``: 10, 50, 100, 150, 200, 250, 500, 1,000, 2,000 ms, then 5 s)."""
    return _RECONNECT_AFTER[tries] if tries < len(_RECONNECT_AFTER) else 5.0


def children(pid: int) -> list[int]:
    """The pids of process ``pid``'s children (``beamish run --nodes``: its nodes)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found.extend(int(p) for p in listed.read().split())
        except OSError:
            continue
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of process ``pid`` and of each of its children, by pid."""
    out: dict[int, float] = {}
    for each in (pid, *children(pid)):
        try:
            out[each] = cpu_seconds(each)
        except OSError:
            continue
    return out
