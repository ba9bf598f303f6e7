import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neurontools._proto import neurond_pb2 as pb
from neurontools.latency_histogram import (BUCKETS, LatencyHistogram, bucket_of, difference, filled_difference,
                                           percentiles)

QUANTILES = [0.01, 0.25, 0.5, 0.75, 0.99]


def test_percentiles_within_two_percent_of_exact():
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=np.log(2e6), sigma=1.0, size=20000).astype(np.int64)
    hist = LatencyHistogram()
    for v in values:
        hist.record(int(v))
    message = pb.Histogram()
    hist.fill(message)
    got = percentiles(difference(message, None), QUANTILES)
    exact = np.percentile(values, [q * 100 for q in QUANTILES], method="inverted_cdf")
    for g, e in zip(got, exact):
        assert abs(g - e) / e < 0.02


def test_difference_gives_the_period_only():
    hist = LatencyHistogram()
    for _ in range(100):
        hist.record(1_000)
    before = pb.Histogram()
    hist.fill(before)
    for _ in range(10):
        hist.record(5_000_000)
    after = pb.Histogram()
    hist.fill(after)
    period = difference(after, before)
    assert sum(period) == 10
    assert abs(percentiles(period, [0.0, 1.0])[0] - 5e6) / 5e6 < 0.01


def test_empty_histogram_has_no_percentiles():
    assert percentiles([0, 0, 0], [0.5]) is None


def _message(first: int, counts: list[int]) -> pb.Histogram:
    return pb.Histogram(count=sum(counts), first_bucket=first if counts else 0, bucket_counts=counts)


_RUNS = st.tuples(st.integers(0, BUCKETS - 40), st.lists(st.integers(0, 50), max_size=40))


@settings(max_examples=300)
@given(newer=_RUNS, older=st.none() | _RUNS)
def test_the_filled_range_gives_the_full_differences_percentiles(newer, older):
    # Any two messages, even an "older" that does not lie inside the newer (counters that restarted).
    newer_message = _message(*newer)
    older_message = None if older is None else _message(*older)
    dense = difference(newer_message, older_message)
    first, filled = filled_difference(newer_message, older_message)

    assert dense[first:first + len(filled)] == filled
    assert not any(dense[:first]) and not any(dense[first + len(filled):])
    quantiles = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]
    assert percentiles(filled, quantiles, first) == percentiles(dense, quantiles)


def test_a_period_differences_only_the_buckets_it_filled():
    hist = LatencyHistogram()
    for value in (1_000, 1_050, 2_000):
        hist.record(value)
    before = pb.Histogram()
    hist.fill(before)
    for value in (1_500, 1_600, 3_000_000):
        hist.record(value)
    after = pb.Histogram()
    hist.fill(after)

    first, counts = filled_difference(after, before)
    assert first == bucket_of(1_000) and first + len(counts) - 1 == bucket_of(3_000_000)
    assert sum(counts) == 3 and counts[bucket_of(1_500) - first] == 1
