"""Tallies (``docpipe.metric_tallies``): a request's counts and durations kept in plain numbers, added
to prometheus-client's series at the end of the event loop's turn and before every scrape, and then
exactly what the series' own ``inc`` and ``observe`` would have made of them."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from docpipe import metric_tallies
from docpipe.metric_tallies import CountTally, ObservationTally

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
durations = st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=20)


def _histograms() -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    tallied = Histogram("tallied", "", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    observed = Histogram("observed", "", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    return registry, tallied, observed


def _samples(registry: CollectorRegistry, name: str) -> dict[str, float]:
    """The histogram's buckets and count by their ``le`` label, and its sum."""
    return {
        sample.labels.get("le", sample.name.removeprefix(name)): sample.value
        for family in registry.collect()
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


@settings(max_examples=100)
@given(durations, durations)
def test_a_tallied_histogram_shows_what_its_observations_would(
    first: list[float], second: list[float]
) -> None:
    registry, tallied, observed = _histograms()
    tally, series = ObservationTally(tallied.labels("/documents")), observed.labels("/documents")
    for batch in (first, second):
        for seconds in batch:
            tally.observe(seconds)
            series.observe(seconds)
        metric_tallies.flush()
        shown, expected = _samples(registry, "tallied"), _samples(registry, "observed")
        assert shown.pop("_sum") == pytest.approx(expected.pop("_sum"))  # added in another order
        assert shown == expected


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=50))
def test_a_tallied_counter_shows_the_sum_of_its_increments(amounts: list[int]) -> None:
    registry = CollectorRegistry()
    counter = Counter("bytes", "", ["route"], registry=registry)
    tally = CountTally(counter.labels("/documents"))
    for amount in amounts:
        tally.inc(amount)
    metric_tallies.flush()
    assert registry.get_sample_value("bytes_total", {"route": "/documents"}) == sum(amounts)


async def test_tallies_reach_their_series_by_the_end_of_the_event_loops_turn() -> None:
    """Without a scrape in this process: another worker's scrape reads the series' shared values."""
    registry, tallied, _ = _histograms()
    counter = Counter("requests", "", registry=registry)
    count, observations = CountTally(counter), ObservationTally(tallied.labels("/documents"))
    count.inc()
    observations.observe(0.02)
    assert registry.get_sample_value("requests_total") == 0
    for _ in range(3):
        await asyncio.sleep(0)
    assert registry.get_sample_value("requests_total") == 1
    assert registry.get_sample_value("tallied_bucket", {"route": "/documents", "le": "0.025"}) == 1
    assert registry.get_sample_value("tallied_sum", {"route": "/documents"}) == 0.02


def test_outside_an_event_loop_a_tally_adds_to_its_series_at_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("requests", "", registry=registry)
    CountTally(counter).inc(2)
    assert registry.get_sample_value("requests_total") == 2
