"""What every benchmark script prints: a few lines about the run, then the table.

Shared by the scripts in this directory (run as scripts, so this
module is found beside them).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """The rows under their column names: Markdown, or plain text in aligned columns."""
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    every = [tuple(columns), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in every) for i in range(len(columns))]
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in every
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def report(
    header: Sequence[str], columns: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool
) -> str:
    """The header lines (a Markdown list, or plain lines), a blank line, then the table."""
    lines = [f"- {line}" for line in header] if markdown else list(header)
    return "\n".join(lines) + "\n\n" + table(columns, rows, markdown)


def pct(values: list[float], share: float) -> float:
    """The ``share`` (0 to 1) percentile of ``values``: NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(value: float) -> str:
    """Milliseconds for a table cell ("-" for NaN)."""
    return "-" if value != value else (f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms")
