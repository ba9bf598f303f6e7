import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.latency_histogram import LatencyHistogram, difference, percentiles

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
