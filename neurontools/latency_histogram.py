"""Log-linear latency histograms: cumulative in the daemon, differenced at the edge.

Bucket i holds values v (ns) with BASE * GROWTH^(i-1) < v <= BASE * GROWTH^i; bucket 0 holds
v <= BASE. With GROWTH = 1.02 a percentile read at the bucket's geometric midpoint is within 1%
of the true value, which keeps p1...p99 within the 2% the monitoring tools need. The range runs
from 100 ns to about 10^4 s; larger values land in the last bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BASE_NS = 100.0
GROWTH = 1.02
BUCKETS = 1300
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(value_ns: float) -> int:
    if value_ns <= BASE_NS:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log(value_ns / BASE_NS) / _LOG_GROWTH - 1e-9))


def bucket_value_ns(index: int) -> float:
    """Representative value of a bucket: the geometric midpoint of its bounds."""
    if index == 0:
        return BASE_NS
    return BASE_NS * GROWTH ** (index - 0.5)


class LatencyHistogram:
    """Cumulative counts; not thread-safe (the owner holds its lock)."""

    __slots__ = ("counts", "count", "sum_ns", "lowest", "highest")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.sum_ns = 0
        self.lowest = BUCKETS  # range of non-empty buckets, to send only that run
        self.highest = -1

    def record(self, value_ns: int, times: int = 1) -> None:
        """`times` executions of the same latency at once (bulk accounting of in-daemon load)."""
        index = bucket_of(value_ns)
        self.counts[index] += times
        self.count += times
        self.sum_ns += int(value_ns) * times
        if index < self.lowest:
            self.lowest = index
        if index > self.highest:
            self.highest = index

    def fill(self, message) -> None:
        """Write into a pb.Histogram."""
        message.count = self.count
        message.sum_ns = self.sum_ns
        if self.count:
            message.first_bucket = self.lowest
            message.bucket_counts.extend(self.counts[self.lowest:self.highest + 1])


def filled_difference(newer, older) -> tuple[int, list[int]]:
    """Per-bucket counts recorded between two cumulative pb.Histogram snapshots (older may be
    None), over the buckets either one has filled: (index of the first, counts from it on).

    A period's executions fill a few dozen buckets of the 1,300, so this is what the monitoring
    tools difference every tick; `difference` is the same counts at full length.
    """
    first, end = newer.first_bucket, newer.first_bucket + len(newer.bucket_counts)
    if older is not None and older.bucket_counts:  # a counter that went backwards may lie outside
        first = min(first, older.first_bucket)
        end = max(end, older.first_bucket + len(older.bucket_counts))
    if end <= first:
        return 0, []
    counts = [0] * (end - first)
    counts[newer.first_bucket - first:newer.first_bucket - first + len(newer.bucket_counts)] = newer.bucket_counts
    if older is not None:
        for offset, value in enumerate(older.bucket_counts, older.first_bucket - first):
            counts[offset] -= value
    return first, counts


def difference(newer, older) -> list[int]:
    """Per-bucket counts recorded between two cumulative pb.Histogram snapshots (older may be None),
    one per bucket of the whole range."""
    first, filled = filled_difference(newer, older)
    counts = [0] * BUCKETS
    counts[first:first + len(filled)] = filled
    return counts


def percentiles(counts: Sequence[int], quantiles: Sequence[float], first_bucket: int = 0) -> list[float] | None:
    """Values (ns) at the given quantiles (0..1) of bucket counts, the first of which is bucket
    `first_bucket`; None when empty.

    Uses the nearest-rank rule; quantile 0 is the lowest non-empty bucket and 1 the highest.
    """
    total = sum(counts)
    if total <= 0:
        return None
    targets = sorted((max(1, math.ceil(q * total)), i) for i, q in enumerate(quantiles))
    out = [0.0] * len(quantiles)
    running = 0
    t = 0
    for index, value in enumerate(counts, first_bucket):
        if value <= 0:
            continue
        running += value
        while t < len(targets) and targets[t][0] <= running:
            out[targets[t][1]] = bucket_value_ns(index)
            t += 1
        if t == len(targets):
            break
    return out
