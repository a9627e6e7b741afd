"""What the dashboard counts, and how: the events, the metrics and their windows. Pure: no
process, no clock of its own (every function takes the time it works at).

A business emits events: page views, sign-ups, orders (each with an amount and the time its
checkout took) and errors. ``EventSource`` makes a steady, seeded stream
of them at a settable rate, a tick at a time, already split by metric. Each metric is
kept over two windows, the last minute in 60 one-second buckets and the last hour in 60
one-minute buckets (a ``Window``); a distribution (the checkout time) keeps a small
histogram per bucket, for its percentiles.

    >>> window = Window(width=1.0, size=60)
    >>> window.add(100.2, 3, 30.0)
    >>> window.add(100.7, 1, 12.0)
    >>> window.add(102.5, 2, 8.0)
    >>> window.series(102.9)[-3:], window.total(102.9)
    ([4, 0, 2], 6)
    >>> window.series(161.0)[-3:], window.total(161.0)  # 100 and 101 are out of the minute
    ([0, 0, 0], 2)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "sum", "distribution"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One chart: ``count`` counts events, ``sum`` adds their values, ``distribution`` keeps
    their percentiles."""

    name: str
    label: str
    kind: Kind
    unit: str = ""


METRICS = (
    Metric("page_views", "Page views", "count", "/s"),
    Metric("signups", "Sign-ups", "count", "/s"),
    Metric("orders", "Orders", "count", "/s"),
    Metric("revenue", "Revenue", "sum", "€/s"),
    Metric("checkout_ms", "Checkout time", "distribution", "ms"),
    Metric("errors", "Errors", "count", "/s"),
)
BY_NAME = {metric.name: metric for metric in METRICS}

# (name, bucket width in seconds, buckets): the last minute by the second, the last hour by
# the minute
WINDOWS = (("1m", 1.0, 60), ("1h", 60.0, 60))

# the share of each kind of event in the stream
SHARES = {"page_view": 0.86, "signup": 0.04, "order": 0.08, "error": 0.02}
INCIDENT_ERRORS = 0.3  # taken from the page views during an incident


# -- histograms ------------------------------------------------------------------------------

# A distribution's buckets: upper bounds growing by 10% from 1 (ms), 96 of them (to ~8,000
# ms), and one for everything above. A percentile read from them is within 10% of the value.
_GROWTH = 1.1
_BOUNDS = tuple(_GROWTH**i for i in range(96))


def bucket_of(value: float) -> int:
    """The histogram bucket that ``value`` falls in."""
    if value <= 1.0:
        return 0
    return min(len(_BOUNDS), math.ceil(math.log(value) / math.log(_GROWTH)))


def percentile(histogram: list[int], share: float) -> float:
    """The value below which ``share`` (0 to 1) of the counted values fall (the upper bound
    of its bucket); 0 for an empty histogram."""
    count = sum(histogram)
    if count == 0:
        return 0.0
    rank = share * count
    seen = 0
    for index, n in enumerate(histogram):
        seen += n
        if seen >= rank and n:
            return _BOUNDS[min(index, len(_BOUNDS) - 1)]
    return _BOUNDS[-1]


# -- windows ---------------------------------------------------------------------------------


class Window:
    """A metric over the last ``size`` buckets of ``width`` seconds: per bucket, a count, a
    sum and (for a distribution) a histogram. Buckets are reused in a ring: one that is
    written in a later period starts again from zero."""

    __slots__ = ("counts", "epochs", "histograms", "size", "sums", "width")

    def __init__(self, width: float, size: int, *, histogram: bool = False) -> None:
        self.width = width
        self.size = size
        self.epochs = [-1] * size  # which period each bucket holds
        self.counts = [0] * size
        self.sums = [0.0] * size
        self.histograms: list[list[int]] | None = (
            [[0] * (len(_BOUNDS) + 1) for _ in range(size)] if histogram else None
        )

    def _bucket(self, at: float) -> int:
        epoch = int(at // self.width)
        index = epoch % self.size
        if self.epochs[index] != epoch:
            self.epochs[index] = epoch
            self.counts[index] = 0
            self.sums[index] = 0.0
            if self.histograms is not None:
                self.histograms[index] = [0] * (len(_BOUNDS) + 1)
        return index

    def add(self, at: float, count: int, total: float, values: tuple[float, ...] = ()) -> None:
        """Count ``count`` events of sum ``total`` at time ``at`` (seconds); a distribution
        also takes each value."""
        index = self._bucket(at)
        self.counts[index] += count
        self.sums[index] += total
        if self.histograms is not None:
            histogram = self.histograms[index]
            for value in values:
                histogram[bucket_of(value)] += 1

    def snapshot(self) -> tuple[object, ...]:
        """The window as immutable plain data, to keep or to send to another node.

            >>> window = Window(width=1.0, size=60, histogram=True)
            >>> window.add(100.2, 2, 300.0, (120.0, 180.0))
            >>> copy = Window.restore(window.snapshot())
            >>> copy.series(100.5)[-1], copy.percentiles(100.5) == window.percentiles(100.5)
            (2, True)
        """
        histograms = (None if self.histograms is None
                      else tuple(tuple(h) for h in self.histograms))
        return (self.width, self.size, tuple(self.epochs), tuple(self.counts),
                tuple(self.sums), histograms)

    @classmethod
    def restore(cls, snapshot: tuple[object, ...]) -> Window:
        """The window a ``snapshot()`` was taken of."""
        width, size, epochs, counts, sums, histograms = snapshot
        window = cls(float(width), int(size))  # type: ignore[arg-type]
        window.epochs = list(epochs)  # type: ignore[call-overload]
        window.counts = list(counts)  # type: ignore[call-overload]
        window.sums = list(sums)  # type: ignore[call-overload]
        if histograms is not None:
            window.histograms = [list(h) for h in histograms]  # type: ignore[attr-defined]
        return window

    def _live(self, now: float) -> list[int]:
        """The ring's indexes of the window ending at ``now``, oldest first (-1: empty)."""
        epoch = int(now // self.width)
        out = []
        for period in range(epoch - self.size + 1, epoch + 1):
            index = period % self.size
            out.append(index if self.epochs[index] == period else -1)
        return out

    def series(self, now: float, *, sums: bool = False) -> list[float]:
        """Per bucket, oldest first, up to ``now``: counts (or sums)."""
        values = self.sums if sums else self.counts
        return [values[i] if i >= 0 else 0 for i in self._live(now)]

    def total(self, now: float, *, sums: bool = False) -> float:
        return sum(self.series(now, sums=sums))

    def percentiles(self, now: float, shares: tuple[float, ...] = (0.5, 0.99)
                    ) -> list[float]:
        """The window's percentiles (a distribution only), from its buckets' histograms."""
        assert self.histograms is not None, "percentiles of a window that keeps no histogram"
        merged = [0] * (len(_BOUNDS) + 1)
        for i in self._live(now):
            if i >= 0:
                for b, n in enumerate(self.histograms[i]):
                    merged[b] += n
        return [percentile(merged, share) for share in shares]

    def percentile_series(self, now: float, share: float) -> list[float]:
        """Per bucket, oldest first: the bucket's own percentile."""
        assert self.histograms is not None
        return [percentile(self.histograms[i], share) if i >= 0 else 0.0
                for i in self._live(now)]


def window_summary(metric: Metric, window: Window, now: float) -> dict[str, object]:
    """What the page draws of one metric in one window (JSON-ready)."""
    if metric.kind == "distribution":
        p50, p99 = window.percentiles(now)
        return {
            "series": [round(v, 1) for v in window.percentile_series(now, 0.99)],
            "count": window.total(now), "p50": round(p50, 1), "p99": round(p99, 1),
        }
    sums = metric.kind == "sum"
    series = window.series(now, sums=sums)
    return {
        "series": [round(v, 2) if sums else v for v in series],
        "total": round(sum(series), 2) if sums else sum(series),
    }


# -- the events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """One tick's events of one metric: how many, their sum, and (a distribution) each
    value. ``newest`` is when the newest of them happened (seconds, wall clock). Immutable:
    sent to two counters, it is shared, not copied."""

    count: int
    total: float
    values: tuple[float, ...]
    newest: float


class EventSource:
    """A steady stream of business events at ``rate`` a second, made a tick at a time.

    ``tick(now)`` returns the events since the previous tick, already split by metric. A
    fraction of an event is carried to the next tick, so the count over a second is the
    rate. Seeded: the same seed gives the same stream.

        >>> source = EventSource(rate=1000, seed=1)
        >>> source.tick(0.0) == {}  # the first tick only starts the clock
        True
        >>> batches = source.tick(0.5)
        >>> sum(b.count for name, b in batches.items() if name in
        ...     ("page_views", "signups", "orders", "errors"))
        500
        >>> batches["orders"].count == batches["revenue"].count == batches["checkout_ms"].count
        True
    """

    def __init__(self, rate: float, seed: int | None = None) -> None:
        self.rate = rate
        self.incident = False  # during an incident a third of the events are errors
        self._random = random.Random(seed)
        self._last: float | None = None
        self._carry = 0.0

    def tick(self, now: float) -> dict[str, Batch]:
        last, self._last = self._last, now
        if last is None or now <= last:
            return {}
        due = self.rate * (now - last) + self._carry
        count = int(due)
        self._carry = due - count
        if count == 0:
            return {}
        rnd = self._random.random
        expo = self._random.expovariate
        views = signups = orders = errors = 0
        amounts: list[float] = []
        checkout: list[float] = []
        view_share = SHARES["page_view"] - (INCIDENT_ERRORS if self.incident else 0.0)
        signup_share = view_share + SHARES["signup"]
        order_share = signup_share + SHARES["order"]
        for _ in range(count):
            r = rnd()
            if r < view_share:
                views += 1
            elif r < signup_share:
                signups += 1
            elif r < order_share:
                orders += 1
                amounts.append(round(5 + expo(1 / 40), 2))  # € 5 and up, 45 on average
                checkout.append(round(80 + expo(1 / 120), 1))  # 80 ms and up, a long tail
            else:
                errors += 1
        out = {}
        for name, n in (("page_views", views), ("signups", signups), ("orders", orders),
                        ("errors", errors)):
            if n:
                out[name] = Batch(n, float(n), (), now)
        if orders:
            out["revenue"] = Batch(orders, sum(amounts), (), now)
            out["checkout_ms"] = Batch(orders, sum(checkout), tuple(checkout), now)
        return out
