"""Per-interval rows from samples of a run's counters."""

from __future__ import annotations

import pytest

from xdptest._native.gen import HIST_BUCKETS, bucket_value
from xdptest.errors import ConfigError
from xdptest.intervals import IntervalRecorder, Sample, row_line
from xdptest.options import TrafficOptions


def _hist(**buckets: int) -> list[int]:
    h = [0] * HIST_BUCKETS
    for index, n in buckets.items():
        h[int(index[1:])] = n
    return h


def test_rows_cover_each_interval_and_the_rest() -> None:
    samples = iter([
        Sample(0.10, 100, 90, 1, _hist(b100=90)),                 # row 1
        Sample(0.21, 210, 200, 1, _hist(b100=90, b300=110)),      # row 2
        Sample(0.25, 250, 249, 1, _hist(b100=90, b300=159)),      # finish: the rest
    ])
    seen: list[dict[str, object]] = []
    rec = IntervalRecorder(0.1, lambda: next(samples), seen.append)
    rec.tick(0.05)  # too early for a row: no sample is even taken
    rec.tick(0.10)
    rec.tick(0.21)
    rec.finish()
    assert seen == rec.rows and [r["interval"] for r in rec.rows] == [1, 2, 3]
    first, second, last = rec.rows
    assert (first["sent"], first["received"], first["corrupted"], first["missing"]) == (100, 90, 1, 9)
    assert first["tx_pps"] == 1000.0 and first["latency_ns"] == {"p50": 100, "p90": 100, "p99": 100, "max": 100}
    assert second["latency_ns"]["max"] == bucket_value(300) and second["latency_ns"]["p50"] == bucket_value(300)
    assert (last["sent"], last["received"], last["missing"]) == (40, 49, 0)
    assert row_line(first).startswith("[   0.00-   0.10 s]  sent       100  received        90")


def test_interval_below_the_threads_slice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"at least 0\.05"):
        TrafficOptions(count=10, interval=0.01)
