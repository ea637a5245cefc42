"""A traffic run seen while it goes: the progress line, and per-interval rows (``--interval S``),
as iperf3 prints its intervals.

The run is sampled while it goes: frames sent, frames verified, corrupted frames and the latency
histogram, summed over the queues. Each row covers one interval: what was sent and received in
it, the rates, the frames still missing at its end (in flight or lost), and latency percentiles
from the histogram's growth over the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdptest._native.gen import HIST_BUCKETS, bucket_value, percentiles

INTERVAL_QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Progress:
    elapsed_s: float
    sent: int
    received: int

    @property
    def in_flight_or_lost(self) -> int:
        return max(0, self.sent - self.received)

    def line(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s else 0.0
        return (f"{self.elapsed_s:7.2f} s  {rate / 1e6:6.3f} Mpps  sent {self.sent}  "
                f"received {self.received}  missing {self.in_flight_or_lost}")


@dataclass(frozen=True)
class Sample:
    """A run's counters at one moment (``elapsed_s`` since it started)."""

    elapsed_s: float
    sent: int
    received: int  # verified frames (duplicates included)
    corrupted: int
    histogram: list[int]  # latency buckets, all queues


def _row(index: int, a: Sample, b: Sample) -> dict[str, object]:
    span = b.elapsed_s - a.elapsed_s
    diff = [y - x for x, y in zip(a.histogram, b.histogram, strict=True)]
    top = max((i for i, n in enumerate(diff) if n > 0), default=-1)
    worst = bucket_value(top) if top >= 0 else 0
    lat = percentiles(diff, INTERVAL_QUANTILES, 0, worst)
    sent, received = b.sent - a.sent, b.received - a.received
    return {
        "interval": index, "start_s": round(a.elapsed_s, 6), "end_s": round(b.elapsed_s, 6),
        "sent": sent, "received": received, "corrupted": b.corrupted - a.corrupted,
        "missing": max(0, b.sent - b.received - b.corrupted),
        "tx_pps": round(sent / span, 1) if span > 0 else 0.0,
        "rx_pps": round(received / span, 1) if span > 0 else 0.0,
        "latency_ns": {"p50": lat[0], "p90": lat[1], "p99": lat[2], "max": worst},
    }


def row_line(row: dict[str, object]) -> str:
    """One row as the command prints it."""
    lat = row["latency_ns"]
    assert isinstance(lat, dict)
    return (f"[{row['start_s']:7.2f}-{row['end_s']:7.2f} s]  sent {row['sent']:>9}  received {row['received']:>9}"
            f"  corrupted {row['corrupted']}  missing {row['missing']}  "
            f"{float(str(row['rx_pps'])) / 1e6:.3f} Mpps  "
            f"p50 {lat['p50'] / 1000:.1f}us p99 {lat['p99'] / 1000:.1f}us max {lat['max'] / 1000:.1f}us")


class IntervalRecorder:
    """Rows every ``every`` seconds from samples taken by ``sample``; ``on_row`` sees each row."""

    def __init__(self, every: float, sample: Callable[[], Sample],
                 on_row: Callable[[dict[str, object]], None] | None = None) -> None:
        self.every = every
        self.rows: list[dict[str, object]] = []
        self._sample = sample
        self._on_row = on_row
        self._last = Sample(0.0, 0, 0, 0, [0] * HIST_BUCKETS)

    def _emit(self, now: Sample) -> None:
        row = _row(len(self.rows) + 1, self._last, now)
        self.rows.append(row)
        self._last = now
        if self._on_row is not None:
            self._on_row(row)

    def tick(self, elapsed_s: float) -> None:
        """Record a row if an interval has ended by ``elapsed_s`` (called often: a tenth of the
        interval or more); the queues' counters and histograms are read only then."""
        if elapsed_s - self._last.elapsed_s >= self.every:
            now = self._sample()
            if now.elapsed_s - self._last.elapsed_s >= self.every:
                self._emit(now)

    def finish(self) -> None:
        """The last, shorter interval, where anything happened since the last row."""
        now = self._sample()
        if (now.sent, now.received, now.corrupted) != (self._last.sent, self._last.received, self._last.corrupted):
            self._emit(now)
