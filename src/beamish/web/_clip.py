"""Clipping what a client sent before it reaches a log line.

A topic, an event, a payload, a ref, a header or a close reason comes from the network, and
a client chooses its size up to ``max_frame_size``: logged whole, twenty frames with a
500 KB topic would write 10 MB of log. Every log line of the web layer that shows such a
value shows ``clip(value)`` instead: at most ``LOG_TEXT_LIMIT`` (200) characters of it,
then how big the whole was, ``…(524288 bytes)``. Short values are shown as ``repr`` shows
them, so a log reads the same as before for every normal client.

Only the value's first ``LOG_TEXT_LIMIT`` characters are ever formatted for a string or
bytes, so clipping a large one costs no more than measuring it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOG_TEXT_LIMIT", "clip", "clip_text"]

LOG_TEXT_LIMIT = 200
"""Characters of a client-controlled value that a log line shows."""


def clip(value: Any, limit: int = LOG_TEXT_LIMIT) -> str:
    """``repr(value)``, clipped to ``limit`` characters of the value, with its full size."""
    kind = type(value)
    if kind is str:
        if len(value) <= limit:
            return repr(value)
        size = len(value.encode("utf-8", "surrogatepass"))
        return f"{value[:limit]!r}…({size} bytes)"
    if kind is bytes or kind is bytearray:
        if len(value) <= limit:
            return repr(value)
        return f"{bytes(value[:limit])!r}…({len(value)} bytes)"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"


def clip_text(text: Any, limit: int = LOG_TEXT_LIMIT) -> str:
    """``str(text)`` (an exception's message, say), clipped as ``clip`` does, unquoted."""
    value = text if type(text) is str else str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…({len(value.encode('utf-8', 'surrogatepass'))} bytes)"
