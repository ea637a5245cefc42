"""``TrafficReport``: the result of a traffic run, with the JSON fields of the contract."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from xdptest._version import __version__

XDP_STAT_NAMES = (
    "rx_dropped",
    "rx_invalid_descs",
    "tx_invalid_descs",
    "rx_ring_full",
    "rx_fill_ring_empty_descs",
    "tx_ring_empty_descs",
)
LATENCY_KEYS = ("min", "p50", "p90", "p99", "p999", "max")


def _empty_latency() -> dict[str, int]:
    return dict.fromkeys(LATENCY_KEYS, 0)


def _empty_stats() -> dict[str, int]:
    return dict.fromkeys(XDP_STAT_NAMES, 0)


@dataclass
class TrafficReport:
    """What a traffic run sent, received and verified. Every field is in ``to_dict()``."""

    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    # Where corrupted frames differed from the frames expected: l2, l3, l4, payload, length,
    # stamp (frames counted in each part they differ in); and the first few, dissected.
    corrupted_by: dict[str, int] = field(default_factory=dict)
    bad_frames: list[dict[str, Any]] = field(default_factory=list)
    # --verbatim: the capture's frames that did not all arrive (frame index, copies missing, summary)
    missing_frames: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    tx_pps: float = 0.0
    rx_pps: float = 0.0
    tx_gbps: float = 0.0
    latency_ns: dict[str, int] = field(default_factory=_empty_latency)
    xdp_stats: dict[str, int] = field(default_factory=_empty_stats)
    bind_mode: str = "copy"
    need_wakeup: bool = True
    queues: int = 1
    frame_size: int = 4096
    multi_buffer: bool = False  # frames span several UMEM frames (XDP_USE_SG, XDP_PKT_CONTD)
    packet_size: int = 64
    kernel: str = field(default_factory=platform.release)
    xdptest_version: str = __version__
    foreign: int = 0
    engine: str = "afxdp"  # "afxdp" (AF_XDP sockets send) or "live" (live frames from the kernel)
    per_queue: list[dict[str, Any]] = field(default_factory=list)
    per_stream: list[dict[str, Any]] = field(default_factory=list)
    # Timed replay only: how far each gap between consecutive frames was from the capture's
    # (ns; p50 ... max, and the number of gaps measured). Empty otherwise.
    replay_gap_error_ns: dict[str, int] = field(default_factory=dict)
    tx_pcap: str | None = None  # --write-tx-pcap: where every sent frame was recorded
    # --rate: how far the achieved TX rate was from it ((achieved - asked) / asked), else None
    rate_error: float | None = None
    config: dict[str, Any] = field(default_factory=dict)  # every option of the run, and expect
    # --interval: one row per interval (sent, received, corrupted, missing, rates, latency)
    intervals: list[dict[str, Any]] = field(default_factory=list)
    # [lowest ns of the bucket, frames] for each non-empty bucket of the latency histogram
    latency_histogram: list[list[int]] = field(default_factory=list)
    # where it ran: libbpf version, probed features (present or why not), host kernel, CPUs
    environment: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def delivery_problems(self, allow_loss: float = 0.0) -> list[str]:
        """Why the run did not deliver what it sent (empty when it did): nothing sent, loss above
        ``allow_loss`` percent, frames corrupted or duplicated. The one definition of "delivered"
        (``delivered``, ``assert_delivered`` and ``xdptest-gen``'s exit status use it)."""
        problems: list[str] = []
        if self.sent == 0:
            problems.append("nothing was sent")
        if self.loss_ratio * 100 > allow_loss:
            problems.append(f"lost {self.lost} of {self.sent} ({100 * self.loss_ratio:.3f} %, "
                            f"allowed {allow_loss} %)")
        if self.corrupted:
            problems.append(f"{self.corrupted} frame(s) arrived corrupted ({self._corrupted_where()})")
        if self.duplicated:
            problems.append(f"{self.duplicated} frame(s) arrived twice")
        return problems

    def _corrupted_where(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.corrupted_by.items()) or "where: unknown"

    def first_bad_frame(self) -> str:
        """The first corrupted frame kept: the fields that differ, a byte diff, both dissections."""
        if not self.bad_frames:
            return ""
        from xdptest.framediff import byte_diff, dissect

        b = self.bad_frames[0]
        actual = bytes.fromhex(b["actual"])
        head = (f"first corrupted frame (stream {b['stream']}, sequence {b['seq']}, differs in "
                f"{', '.join(b['where'])}): " + "; ".join(b["fields"]))
        if b["expected"] is None:
            return head + "\n--- actual ---\n" + dissect(actual)
        expected = bytes.fromhex(b["expected"])
        return (head + "\n" + byte_diff(actual, expected) + "\n--- actual ---\n" + dissect(actual)
                + "\n--- expected ---\n" + dissect(expected))

    @property
    def delivered(self) -> bool:
        """Every frame sent arrived once, intact (duplicates and corruption count against it)."""
        return not self.delivery_problems()

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """The table printed at the end of a run."""
        lat = self.latency_ns
        rows = [
            ("sent", f"{self.sent}"),
            ("received", f"{self.received}"),
            ("lost", f"{self.lost} ({100 * self.loss_ratio:.3f} %)"),
            ("duplicated", f"{self.duplicated}"),
            ("reordered", f"{self.reordered}"),
            ("corrupted", f"{self.corrupted}" + (f" ({self._corrupted_where()})" if self.corrupted else "")),
            ("duration", f"{self.duration_s:.3f} s"),
            ("TX rate", f"{self.tx_pps / 1e6:.3f} Mpps, {self.tx_gbps:.3f} Gbit/s"
                        + (f" ({100 * self.rate_error:+.2f} % from --rate)" if self.rate_error is not None else "")),
            ("RX rate", f"{self.rx_pps / 1e6:.3f} Mpps"),
            ("latency", " ".join(f"{k}={lat.get(k, 0) / 1000:.1f}us" for k in LATENCY_KEYS)
             if any(lat.values()) else "not measured (no stamped frame arrived)"),
            ("AF_XDP", f"{self.bind_mode} mode, need_wakeup {'on' if self.need_wakeup else 'off'}, "
                       f"{self.queues} queue(s), {self.frame_size}-byte frames"
                       + (", multi-buffer (a frame spans several)" if self.multi_buffer else "")),
            ("engine", "live frames (kernel)" if self.engine == "live" else "AF_XDP sockets"),
        ]
        if self.replay_gap_error_ns:
            gaps = self.replay_gap_error_ns
            rows.append(("replay gaps", "error " + " ".join(f"{k}={gaps[k] / 1000:.1f}us" for k in LATENCY_KEYS[1:])
                         + f" over {gaps['samples']} gaps"))
        if self.tx_pcap:
            rows.append(("sent frames", f"recorded in {self.tx_pcap} (pcapng, TX descriptors in comments)"))
        nonzero = {k: v for k, v in self.xdp_stats.items() if v}
        if nonzero:
            rows.append(("XDP_STATISTICS", ", ".join(f"{k}={v}" for k, v in nonzero.items())))
        if self.foreign:
            rows.append(("not ours", f"{self.foreign} frames (ARP, ND, ...), not counted"))
        rows += [("missing", f"frame {m['frame']} of the capture, {m['missing']} time(s): {m['summary']}")
                 for m in self.missing_frames]
        rows += [("note", n) for n in self.notes]
        return "\n".join(f"  {name:<15} {value}" for name, value in rows)
