"""Counts and durations of requests and store calls kept in plain numbers, added to prometheus-client's
series at the end of the event loop's turn (``flush``) and before every scrape.

Each ``inc`` or ``observe`` of a prometheus-client series takes a lock, checks its argument and, with
several workers, writes its value to a shared file; a request made seven of them, more CPU than its
access line. A tally adds a number instead, and the series take the sums of every request the loop
finished in a turn at once. A scrape in the process adds what is pending first, so it sees every
request; a scrape answered by another worker sees a request once the end of the turn that finished it
has passed, microseconds later. Only the event loop's thread tallies (``Observed``, metered stores);
outside an event loop a tally adds to its series at once.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Histogram

from docpipe.turn_end import AtTurnEnd

_due: list[_Tally] = []
"""Tallies holding values their series do not have yet."""


def flush() -> None:
    """Adds every tally's pending values to its series."""
    while _due:
        _due.pop().add_to_series()


_flush_at_turn_end = AtTurnEnd(flush)


class _Tally:
    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due = False

    def _mark_due(self) -> None:
        self._due = True
        _due.append(self)
        if not _flush_at_turn_end.ask():
            flush()

    def add_to_series(self) -> None:
        self._due = False


class CountTally(_Tally):
    """Increments of a ``Counter`` series."""

    __slots__ = ("_pending", "_series")

    def __init__(self, series: Counter) -> None:
        super().__init__()
        self._series = series
        self._pending = 0.0

    def inc(self, amount: float = 1) -> None:
        self._pending += amount
        if not self._due:
            self._mark_due()

    def add_to_series(self) -> None:
        super().add_to_series()
        pending, self._pending = self._pending, 0.0
        self._series.inc(pending)


class ObservationTally(_Tally):
    """Observations of a ``Histogram`` series: their sum and their count in each bucket."""

    __slots__ = ("_bounds", "_counts", "_series", "_sum")

    def __init__(self, series: Histogram) -> None:
        super().__init__()
        self._series = series
        self._bounds = tuple(series._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        """As ``Histogram.observe``: in the first bucket whose upper bound is at least ``amount``."""
        self._sum += amount
        self._counts[bisect_left(self._bounds, amount)] += 1
        if not self._due:
            self._mark_due()

    def add_to_series(self) -> None:
        """prometheus-client adds one observation at a time; its series' values, the sum and a count
        per bucket, take many at once as ``Histogram.observe`` adds to them one by one."""
        super().add_to_series()
        self._series._sum.inc(self._sum)
        for bucket, count in enumerate(self._counts):
            if count:
                self._series._buckets[bucket].inc(count)
                self._counts[bucket] = 0
        self._sum = 0.0
