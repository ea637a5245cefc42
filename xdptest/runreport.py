"""Filling a ``TrafficReport`` from what a run's verifiers and sockets counted."""

from __future__ import annotations

import os
import platform
from typing import Any

from xdptest._native.gen import DIFF_CLASSES, BadFrame, Verifier, bucket_value, percentiles
from xdptest.report import LATENCY_KEYS, XDP_STAT_NAMES, TrafficReport

QUANTILES = (0.5, 0.9, 0.99, 0.999)
REPORTED_FEATURES = ("af_xdp", "need_wakeup", "busy_poll", "live_frames", "xdp_frags", "multi_buffer", "hugepages")


def environment() -> dict[str, Any]:
    """Where a run ran: libbpf, the probed features (probes are cached per process), host."""
    from xdptest import features
    from xdptest._native.bpf import libbpf_version

    return {"libbpf": libbpf_version(), "kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "features": {name: {"present": s.present, "reason": s.reason, "since": s.since, "probe": s.source}
                         for name in REPORTED_FEATURES for s in [features.probe(name)]}}


def bad_frame_entry(b: BadFrame) -> dict[str, Any]:
    """A corrupted frame for the report (JSON): where it differs, and both frames in hex."""
    from xdptest.framediff import differing_fields

    fields = differing_fields(b.actual, b.expected) if b.expected is not None else ["the stamp's check fails"]
    return {"stream": b.stream, "seq": b.seq, "where": list(b.classes), "fields": fields,
            "length": b.length, "expected_length": b.expected_length,
            "actual": b.actual.hex(), "expected": b.expected.hex() if b.expected is not None else None}


def add_stats(into: dict[str, int], stats: dict[str, int]) -> dict[str, int]:
    """Add XDP_STATISTICS counters by name."""
    for name in XDP_STAT_NAMES:
        into[name] = into.get(name, 0) + int(stats.get(name, 0))
    return into


def fill_received(r: TrafficReport, total: Verifier, sent_by_stream: dict[int, int], bad: list[BadFrame]) -> None:
    """The receiving side of ``r``: per-stream accounting, loss, corruption, rate, latency."""
    t = total.totals()
    unique = 0
    for stream, sent in sorted(sent_by_stream.items()):
        res = total.stream(stream)
        got, dup, late = (res.unique, res.duplicated, res.reordered) if res else (0, 0, 0)
        unique += got
        r.duplicated += dup
        r.reordered += late
        r.per_stream.append({"stream": stream, "sent": sent, "received": got, "duplicated": dup,
                             "reordered": late})
    r.received = unique
    r.corrupted = t.corrupted
    r.corrupted_by = {name: n for name, n in zip(DIFF_CLASSES, t.corrupted_by, strict=True) if n}
    r.bad_frames = [bad_frame_entry(b) for b in bad]
    r.lost = max(0, r.sent - unique - t.corrupted)
    r.foreign = t.foreign
    span = (t.last_ns - t.first_ns) / 1e9
    r.rx_pps = round(r.received / span, 1) if span > 0 else 0.0
    histogram = total.histogram()
    lat = percentiles(histogram, QUANTILES, t.latency_min, t.latency_max)
    r.latency_ns = dict(zip(LATENCY_KEYS, [t.latency_min, *lat, t.latency_max], strict=True))
    r.latency_histogram = [[bucket_value(i), n] for i, n in enumerate(histogram) if n]
