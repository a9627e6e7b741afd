"""What a benchmark script needs of the processes it starts: a free port for a server, and
the CPU time a process has used (from ``/proc``). Found beside the scripts, as
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
