"""The thin typed layer over the generator and verifier C code (``cnative/stamp.*``).

Turns :class:`xdptest.packets.Template` and :class:`xdptest.packets.Vary` into the C structures
(keeping their buffers alive), and wraps the verifier's counters in plain dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xdptest._native import ffi, lib
from xdptest.errors import ConfigError
from xdptest.packets import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    KIND_IPV6,
    KIND_SIZE,
    STAMP_SIZE,
    Template,
    Vary,
    _ones_sum,
    resolve,
)

MAX_VARY = int(lib.XT_MAX_VARY)
MAX_STREAMS = int(lib.XT_MAX_STREAMS)
HIST_BUCKETS = int(lib.XT_HIST_BUCKETS)


def monotonic_ns() -> int:
    return int(lib.xt_monotonic_ns())


class GenSpec:
    """A C ``struct xt_gen``: templates, variations and the stream id of one sender.

    ``varies`` are parsed variations (``packets.parse_vary``); each is bound to every template's
    own offsets here, so templates with different header layouts vary the same fields.

    With ``sent`` (the templates the sender uses, one per template here), the templates are the
    frames a receiver must see instead: the generator then builds, for a stream and sequence
    number, the frame expected at the receiver, with the sent frame's stamp and size.
    """

    def __init__(self, templates: list[Template], varies: list[Vary], stream: int, seed: int = 0,
                 sent: list[Template] | None = None) -> None:
        if not templates:
            raise ConfigError("no packet templates to send")
        if len(varies) > MAX_VARY:
            raise ConfigError(f"at most {MAX_VARY} --vary options, got {len(varies)}")
        if not 0 <= stream < MAX_STREAMS:
            raise ConfigError(f"stream id {stream} is outside 0-{MAX_STREAMS - 1}")
        sent = sent or templates
        if len(sent) != len(templates):
            raise ConfigError(f"{len(templates)} expected frames for {len(sent)} templates")
        deltas = [s.size - t.size for s, t in zip(sent, templates, strict=True)]
        size_vary = [v for v in varies if v.kind == KIND_SIZE]
        self.max_len = max([t.size for t in templates] + [v.hi - d for v in size_vary for d in deltas])
        self._keep: list[Any] = []
        self._tmpl = ffi.new("struct xt_gen_tmpl[]", len(templates))
        for i, (t, s) in enumerate(zip(templates, sent, strict=True)):
            if size_vary and size_vary[0].lo < s.size:
                raise ConfigError(f"--vary size: {size_vary[0].lo} is below the template's own "
                                  f"{s.size} bytes; build the template at the smallest size")
            # padded only where a varied size may read past the template (65536 captured frames
            # would otherwise each take the longest one's room)
            data = ffi.new("unsigned char[]", t.frame.ljust(self.max_len, b"\0") if size_vary else t.frame)
            self._keep.append(data)
            c = self._tmpl[i]
            c.data = data
            c.len = t.size
            c.stamp_off = t.stamp_offset
            c.l3_off = t.l3_offset
            c.l3_version = t.l3_version
            c.l4_off = t.l4_offset
            c.l4_proto = t.l4_proto
            c.l4_csum_off = (t.l4_offset + 6 if t.l4_proto == IPPROTO_UDP
                             else t.l4_offset + 16 if t.l4_proto == IPPROTO_TCP else -1)
            c.pad_sum = _ones_sum(s.frame[s.stamp_offset + STAMP_SIZE:])  # the stamp's check is the sender's
            c.check_len_delta = deltas[i]
            for j, v in enumerate(varies):  # each template has its own offsets (VLAN tags, IPv6...)
                c.vary_off[j] = -1 if v.kind == KIND_SIZE else resolve(v, t).offset
        self.c = ffi.new("struct xt_gen *")
        self.c.tmpl = self._tmpl
        self.c.ntmpl = len(templates)
        self.c.nvary = len(varies)
        self.c.stream = stream
        self.c.seed = seed or 0x9E3779B97F4A7C15
        for i, v in enumerate(varies):
            cv = self.c.vary[i]
            cv.kind = v.kind
            cv.lo = v.lo & 0xFFFFFFFFFFFFFFFF
            cv.lo_hi = v.lo >> 64 if v.kind == KIND_IPV6 else 0
            cv.count = v.count & 0xFFFFFFFFFFFFFFFF
            cv.random = int(v.random)

    def build(self, first: int, n: int, seq0: int, ts: int = 0) -> list[bytes]:
        """Frames number first..first+n-1 as the TX loop would build them (tests, pcap writing)."""
        stride = self.max_len
        out = ffi.new("unsigned char[]", stride * n)
        lens = ffi.new("unsigned int[]", n)
        lib.xt_gen_build(self.c, first, n, seq0 & 0xFFFFFFFF, ts & 0xFFFFFFFF, out, stride, lens)
        buf = ffi.buffer(out)
        return [bytes(buf[i * stride: i * stride + lens[i]]) for i in range(n)]


@dataclass(frozen=True)
class StreamResult:
    stream: int
    received: int
    unique: int
    duplicated: int
    reordered: int
    late: int
    highest: int


# Where a corrupted frame differed from the frame expected: the names of the XT_DIFF_* bits.
DIFF_CLASSES = ("l2", "l3", "l4", "payload", "length", "stamp")


def diff_class_names(classes: int) -> list[str]:
    return [name for i, name in enumerate(DIFF_CLASSES) if classes & (1 << i)]


@dataclass(frozen=True)
class BadFrame:
    """A corrupted frame as received, and the frame expected (None where its stamp was unreadable)."""

    stream: int
    seq: int
    classes: tuple[str, ...]
    actual: bytes
    expected: bytes | None
    length: int  # as received (``actual`` may hold fewer bytes: the verifier keeps a bounded prefix)
    expected_length: int


@dataclass(frozen=True)
class VerifyTotals:
    frames: int
    bytes: int
    stamped: int
    corrupted: int
    corrupted_by: tuple[int, ...]
    foreign: int
    latency_min: int
    latency_max: int
    latency_sum: int
    latency_samples: int
    first_ns: int
    last_ns: int


class Verifier:
    """A C verifier: feed received frames, read per-stream accounting and latencies.

    With ``expect`` (a :class:`GenSpec` of the frames the receiver must see, ``sent=`` the
    sender's templates, or the sender's own), every stamped frame is compared byte for byte with
    the frame expected for its stream and sequence number; without, only the stamp is checked.
    The first ``keep_bad`` corrupted frames are kept (``keep_bytes`` of each) for the report.
    """

    def __init__(self, expect: GenSpec | None = None, keep_bad: int = 0, keep_bytes: int = 9216) -> None:
        ptr = lib.xt_verifier_new()
        if ptr == ffi.NULL:
            raise MemoryError("cannot allocate a verifier")
        self.c = ffi.gc(ptr, lib.xt_verifier_free)
        self._expect = expect  # the C verifier points into it
        self._keep_bytes = keep_bytes
        if expect is not None and lib.xt_verifier_expect(self.c, expect.c, expect.max_len) < 0:
            raise MemoryError("cannot allocate the verifier's expected-frame buffer")
        if keep_bad and lib.xt_verifier_keep_bad(self.c, keep_bad, keep_bytes) < 0:
            raise MemoryError(f"cannot allocate room for {keep_bad} bad frames")

    def expect_frames(self, frames: GenSpec) -> None:
        """Verbatim mode: frames arrive as ``frames``' templates, unstamped, matched by content."""
        self._expect = frames  # the C verifier points into its templates
        rc = lib.xt_verifier_expect_frames(self.c, frames.c.tmpl, frames.c.ntmpl)
        if rc < 0:
            raise MemoryError(f"cannot index {frames.c.ntmpl} frames for verbatim verification")

    def frames_sent(self, sent: int) -> None:
        """Verbatim mode: how many frames were sent, which completes the per-content accounting."""
        lib.xt_verifier_frames_sent(self.c, sent)

    def missing(self, sent: int, limit: int) -> list[tuple[int, int]]:
        """Verbatim mode: (index of a frame sent, copies of it missing), at most ``limit``."""
        frames = ffi.new("unsigned int[]", max(limit, 1))
        counts = ffi.new("unsigned long long[]", max(limit, 1))
        n = lib.xt_verifier_missing(self.c, sent, frames, counts, limit)
        return [(int(frames[i]), int(counts[i])) for i in range(n)]

    def bad_frames(self) -> list[BadFrame]:
        """The corrupted frames kept, in the order they arrived."""
        out: list[BadFrame] = []
        b = ffi.new("struct xt_bad_frame *")
        for i in range(lib.xt_verifier_bad_count(self.c)):
            lib.xt_verifier_bad(self.c, i, b)
            out.append(BadFrame(
                stream=int(b.stream), seq=int(b.seq), classes=tuple(diff_class_names(int(b.classes))),
                actual=bytes(ffi.buffer(b.actual, min(int(b.len), self._keep_bytes))),
                expected=(bytes(ffi.buffer(b.expected, min(int(b.expected_len), self._keep_bytes)))
                          if b.expected != ffi.NULL else None),
                length=int(b.len), expected_length=int(b.expected_len)))
        return out

    def feed(self, frames: list[bytes], now_ns: int = 0) -> None:
        """Check frames handed over from Python (tests; the RX loops feed in C)."""
        if not frames:
            return
        stride = max(len(f) for f in frames)
        buf = ffi.new("unsigned char[]", b"".join(f.ljust(stride, b"\0") for f in frames))
        lens = ffi.new("unsigned int[]", [len(f) for f in frames])
        lib.xt_verifier_feed(self.c, buf, stride, lens, len(frames), now_ns)

    def time_feed(self, frames: list[bytes], rounds: int = 5) -> float:
        """Seconds the C check of ``frames`` (one length) takes at best over ``rounds``, counters reset
        before each: the buffer is laid out once, outside the timing (benchmarks)."""
        import time

        size = len(frames[0])
        buf = ffi.new("unsigned char[]", b"".join(frames))
        lens = ffi.new("unsigned int[]", [size] * len(frames))
        best = float("inf")
        for _ in range(rounds):
            self.reset()
            start = time.perf_counter()
            lib.xt_verifier_feed(self.c, buf, size, lens, len(frames), 1)
            best = min(best, time.perf_counter() - start)
        return best

    def totals(self) -> VerifyTotals:
        t = ffi.new("struct xt_verify_totals *")
        lib.xt_verifier_totals(self.c, t)
        counts: dict[str, Any] = {f: int(getattr(t, f)) for f in VerifyTotals.__dataclass_fields__
                                  if f != "corrupted_by"}
        return VerifyTotals(corrupted_by=tuple(int(x) for x in t.corrupted_by), **counts)

    def stream(self, stream: int) -> StreamResult | None:
        r = ffi.new("struct xt_stream_result *")
        if lib.xt_verifier_stream(self.c, stream, r) <= 0:
            return None
        return StreamResult(stream, *(int(getattr(r, f)) for f in list(StreamResult.__dataclass_fields__)[1:]))

    def streams(self) -> list[StreamResult]:
        return [s for s in (self.stream(i) for i in range(MAX_STREAMS)) if s is not None]

    def histogram(self) -> list[int]:
        buckets = ffi.new("unsigned long long[]", HIST_BUCKETS)
        lib.xt_verifier_histogram(self.c, buckets)
        return list(buckets)

    def merge(self, other: Verifier) -> None:
        lib.xt_verifier_merge(self.c, other.c)

    def reset(self) -> None:
        lib.xt_verifier_reset(self.c)


_BUCKET_VALUES = [int(lib.xt_hist_bucket_value(i)) for i in range(HIST_BUCKETS)]


def bucket_value(index: int) -> int:
    """The lowest value (ns) that falls into latency histogram bucket ``index``."""
    return _BUCKET_VALUES[index]


def percentiles(histogram: list[int], quantiles: tuple[float, ...], lo: int, hi: int) -> list[int]:
    """Values at the given quantiles (0..1) from histogram buckets, clamped to the exact min/max."""
    total = sum(histogram)
    out: list[int] = []
    if total == 0:
        return [0 for _ in quantiles]
    for q in quantiles:
        rank = max(1, int(q * total + 0.999999))
        seen = 0
        for i, count in enumerate(histogram):
            seen += count
            if seen >= rank:
                out.append(min(max(_BUCKET_VALUES[i], lo), hi))
                break
    return out
