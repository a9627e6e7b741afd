"""``capture_events``: the telemetry events a test caused, as a list.

    with capture_events(("beamish", "process", "crash")) as crashes:
        ...
    assert [e.metadata["pid"] for e in crashes] == [pid]

It attaches one handler under an id of its own and detaches it when the block ends (or on
``stop()``, for a capture that outlives a block). Measurements and metadata are copied as
they come, so a later change to them does not show.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any, NamedTuple

from beamish._runtime.events import EventName, attach_many, detach

__all__ = ["Captured", "EventCapture", "capture_events"]

_ids = itertools.count(1)


class Captured(NamedTuple):
    """One event as it was emitted."""

    event: EventName
    measurements: dict[str, Any]
    metadata: dict[str, Any]


class EventCapture(list[Captured]):
    """The events captured so far (a list), while attached."""

    def __init__(self, names: Iterable[Iterable[str]]) -> None:
        super().__init__()
        self.handler_id = f"beamish.testing.capture.{next(_ids)}"
        attach_many(self.handler_id, names, self._record)

    def _record(self, event: EventName, measurements: Any, metadata: Any, config: Any) -> None:
        self.append(Captured(event, dict(measurements), dict(metadata)))

    def stop(self) -> None:
        """Stop capturing (what was captured stays)."""
        detach(self.handler_id)

    def __enter__(self) -> EventCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def capture_events(*names: Iterable[str]) -> EventCapture:
    """Capture every event named in ``names`` until the block ends (see the module)."""
    return EventCapture(names)
