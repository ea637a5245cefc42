"""The thin typed layer over the AF_XDP part of the compiled module (cnative/xsk.c, txrx.c).

It turns negative errno returns into typed exceptions and cffi objects into ``bytes``, ``int`` and small
dataclasses. Every call into C releases the GIL (cffi API mode), so a blocking ``recv`` or a long
loop does not stall other Python threads. The policy (which errors mean what for the user) lives
in :mod:`xdptest.xsk`.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xdptest._native import errno_error, ffi, lib
from xdptest._native.gen import HIST_BUCKETS
from xdptest.errors import ClosedError, ConfigError, UmemError

AF_XDP = 44

UMEM_UNALIGNED = int(lib.XT_UMEM_UNALIGNED)
UMEM_HUGEPAGES = int(lib.XT_UMEM_HUGEPAGES)
BIND_COPY = int(lib.XT_BIND_COPY)
BIND_ZEROCOPY = int(lib.XT_BIND_ZEROCOPY)
BIND_NEED_WAKEUP = int(lib.XT_BIND_NEED_WAKEUP)
BIND_SG = int(lib.XT_BIND_SG)
MAX_FRAME = int(lib.XT_MAX_FRAME)
RING_NAMES = {"fill": lib.XT_RING_FILL, "rx": lib.XT_RING_RX, "tx": lib.XT_RING_TX,
              "comp": lib.XT_RING_COMP}
STAT_NAMES = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
              "rx_fill_ring_empty_descs", "tx_ring_empty_descs")
COUNTER_NAMES = ("tx_frames", "tx_bytes", "tx_kicks", "tx_kick_errors", "completed", "rx_frames",
                 "rx_bytes", "rx_kicks", "bad_rx_descs", "bad_comp_addrs", "foreign_comp_addrs",
                 "fill_shortfall")
LOOP_STAT_NAMES = ("frames", "bytes", "verified", "mismatched", "resyncs", "bad_descs", "out_used",
                   "out_frames", "elapsed_ns", "next_tmpl", "gap_samples", "gap_err_max_ns", "gap_err_sum_ns",
                   "window_lost", "window_seen", "window_since_ns")

_err = errno_error


@dataclass(frozen=True)
class UmemInfo:
    size: int
    map_size: int
    frame_size: int
    frames: int
    headroom: int
    flags: int
    free_frames: int
    fd: int
    sockets: int


@dataclass(frozen=True)
class RingState:
    """One ring as both sides see it: the shared producer/consumer and our cached copies."""

    producer: int
    consumer: int
    cached_prod: int
    cached_cons: int
    size: int
    flags: int

    @property
    def present(self) -> bool:
        return self.size > 0

    @property
    def need_wakeup(self) -> bool:
        return bool(self.flags & 1)

    @property
    def entries(self) -> int:
        """Descriptors produced but not yet consumed."""
        return (self.producer - self.consumer) & 0xFFFFFFFF


class NativeUmem:
    """An ``xt_umem``: mapped memory plus its frame allocator; registered by the first socket."""

    def __init__(self, frame_size: int, frames: int, headroom: int, flags: int) -> None:
        out = ffi.new("struct xt_umem **")
        ret = lib.xt_umem_create(frame_size, frames, headroom, flags, out)
        if ret < 0:
            if ret == -errno.ENOMEM and flags & UMEM_HUGEPAGES:
                raise UmemError(errno.ENOMEM, "no 2 MB hugepages available for the UMEM "
                                "(reserve some: echo N > /proc/sys/vm/nr_hugepages)")
            raise _err(ret, f"allocating a UMEM of {frames} x {frame_size} bytes", UmemError)
        self.ptr: Any = out[0]

    def _p(self) -> Any:
        if self.ptr is None:
            raise ClosedError("the UMEM was destroyed")
        return self.ptr

    def info(self) -> UmemInfo:
        info = ffi.new("struct xt_umem_info *")
        lib.xt_umem_info(self._p(), info)
        return UmemInfo(*(int(getattr(info, f)) for f in UmemInfo.__dataclass_fields__))

    def write(self, offset: int, data: bytes) -> None:
        ret = lib.xt_umem_write(self._p(), offset, data, len(data))
        if ret < 0:
            raise ConfigError(f"UMEM write of {len(data)} bytes at {offset} lies outside the UMEM")

    def read(self, offset: int, length: int) -> bytes:
        buf = ffi.new("unsigned char[]", max(length, 1))
        ret = lib.xt_umem_read(self._p(), offset, buf, length)
        if ret < 0:
            raise ConfigError(f"UMEM read of {length} bytes at {offset} lies outside the UMEM")
        return bytes(ffi.buffer(buf, length))

    def destroy(self) -> bool:
        """Free the memory; False while sockets still use it."""
        if self.ptr is None:
            return True
        if lib.xt_umem_destroy(self.ptr) < 0:
            return False
        self.ptr = None
        return True


class XskLoop:
    """Configuration and running counters of the batched C TX/RX loops.

    ``templates`` are the frames to send (TX, in rotation) or to expect (RX verification, in the
    same rotation, resynchronising after a gap). Alternatively ``gen`` (a ``_libgen.GenSpec``)
    builds every TX frame with the stamp generator (frame number and sequence = ``next_tmpl``)
    and ``verifier`` (a ``_libgen.Verifier``) receives every valid RX frame. Counters accumulate
    across calls, so a caller can drive the loop in slices and read progress between them.
    """

    def __init__(self, templates: Sequence[bytes] = (), *, batch: int = 64, count: int = 0,
                 duration: float = 0.0, idle: float = 0.0, poll_ms: int = 1,
                 verify: bool = False, busy_spin: bool = False, copy_out: int = 0,
                 copy_out_bytes: int = 0, gen: Any = None, verifier: Any = None,
                 rate: float = 0.0, tx_pcapng_bytes: int = 0, pcap_interface: int = 0,
                 schedule_ns: Sequence[int] = (), period_ns: int = 0) -> None:
        if not 1 <= batch <= 256:
            raise ConfigError(f"batch must be from 1 to 256, got {batch}")
        self.gen = gen  # a _libgen.GenSpec (``.c``, ``.max_len``): TX builds stamped frames
        self.verifier = verifier  # a _libgen.Verifier (``.c``): RX feeds it every frame
        self.templates = [bytes(t) for t in templates]
        stride = max((len(t) for t in self.templates), default=1)
        self._tmpl = ffi.new("unsigned char[]", b"".join(t.ljust(stride, b"\0") for t in self.templates)
                             or b"\0")
        self._lens = ffi.new("unsigned int[]", [len(t) for t in self.templates] or [0])
        if tx_pcapng_bytes and copy_out:
            raise ConfigError("a loop either copies received frames out or captures sent ones, not both")
        copy_out_bytes = max(copy_out_bytes, tx_pcapng_bytes)
        self._out = ffi.new("unsigned char[]", max(copy_out_bytes, 1))
        self._out_lens = ffi.new("unsigned int[]", max(copy_out, 1))
        self._out_ts = ffi.new("unsigned long long[]", max(copy_out, 1))
        cfg = ffi.new("struct xt_loop_cfg *")
        cfg.tmpl = self._tmpl
        cfg.tmpl_lens = self._lens
        cfg.tmpl_stride = stride
        cfg.ntmpl = len(self.templates)
        cfg.batch = batch
        cfg.count = count
        cfg.duration_ns = int(duration * 1e9)
        cfg.idle_ns = int(idle * 1e9)
        cfg.poll_ms = poll_ms
        cfg.flags = ((lib.XT_LOOP_VERIFY if verify else 0) | (lib.XT_LOOP_BUSY_SPIN if busy_spin else 0)
                     | (lib.XT_LOOP_COPY_OUT if copy_out else 0)
                     | (lib.XT_LOOP_TX_PCAPNG if tx_pcapng_bytes else 0))
        cfg.pcap_if = pcap_interface
        cfg.out = self._out
        cfg.out_cap = copy_out_bytes
        cfg.out_lens = self._out_lens
        cfg.out_ts = self._out_ts
        cfg.out_max = copy_out
        if gen is not None:
            cfg.gen = gen.c
            cfg.gen_max_len = int(gen.max_len)
        if verifier is not None:
            cfg.verifier = verifier.c
        cfg.rate_pps = float(rate)
        if schedule_ns:
            if any(b < a for a, b in itertools.pairwise(schedule_ns)) or schedule_ns[0] != 0:
                raise ConfigError("a TX schedule starts at 0 and never goes back in time")
            if period_ns <= schedule_ns[-1]:
                raise ConfigError("a TX schedule's period must end after its last frame")
            self._sched = ffi.new("unsigned long long[]", list(schedule_ns))
            self._gap_hist = ffi.new("unsigned long long[]", HIST_BUCKETS)
            cfg.sched_ns = self._sched
            cfg.sched_n = len(schedule_ns)
            cfg.sched_period_ns = period_ns
            cfg.gap_hist = self._gap_hist
        self._cfg: Any = cfg
        self._st: Any = ffi.new("struct xt_loop_stats *")

    def follow(self, receiver: XskLoop, window: int, max_wait: float = 0.1,
               receiver_socket: NativeXsk | None = None) -> None:
        """Closed loop (TX): keep at most ``window`` frames ahead of ``receiver``'s count. After
        ``max_wait`` seconds without progress there, and with ``receiver_socket``'s RX ring empty
        (nothing queued for a receiver that is only late), the frames still out count as lost."""
        self._peer = receiver  # keeps the counter's memory alive
        if receiver_socket is not None:
            prod, cons = ffi.new("const unsigned int **"), ffi.new("const unsigned int **")
            lib.xt_xsk_rx_ring_words(receiver_socket._p(), prod, cons)
            self._peer_socket = receiver_socket  # keeps the ring's mapping alive
            self._cfg.peer_rx_prod, self._cfg.peer_rx_cons = prod[0], cons[0]
        self._cfg.peer_frames = ffi.addressof(receiver._st, "frames")
        self._cfg.window = window
        self._cfg.window_wait_ns = int(max_wait * 1e9)

    def set_limits(self, count: int | None = None, duration: float | None = None) -> None:
        if count is not None:
            self._cfg.count = count
        if duration is not None:
            self._cfg.duration_ns = int(duration * 1e9)

    def stats(self) -> dict[str, int]:
        return {name: int(getattr(self._st, name)) for name in LOOP_STAT_NAMES}

    # Running counters, read between slices (the C loop updates them as it goes).
    @property
    def frames(self) -> int:
        """Frames sent (TX) or received (RX) so far."""
        return int(self._st.frames)

    @property
    def nbytes(self) -> int:
        """Bytes of those frames."""
        return int(self._st.bytes)

    @property
    def elapsed_ns(self) -> int:
        """Time spent inside the loop's calls."""
        return int(self._st.elapsed_ns)

    @property
    def count(self) -> int:
        """Frames to send in all (0: no limit)."""
        return int(self._cfg.count)

    @property
    def done(self) -> bool:
        """A counted loop has sent its count."""
        return bool(self.count) and self.frames >= self.count

    @property
    def gap_samples(self) -> int:
        """Timed replay: gaps measured."""
        return int(self._st.gap_samples)

    @property
    def gap_err_max_ns(self) -> int:
        return int(self._st.gap_err_max_ns)

    def take_pcapng_blocks(self) -> bytes:
        """TX capture: the pcapng packet blocks written since the last call (the buffer is
        emptied, so the C loop can go on)."""
        used = int(self._st.out_used)
        data: bytes = ffi.buffer(self._out, used)[:]
        self._st.out_used = 0
        return data

    def gap_histogram(self) -> list[int]:
        """Timed replay: gap errors (ns) in the latency histogram's buckets."""
        return [int(x) for x in self._gap_hist[0:HIST_BUCKETS]] if self._cfg.sched_n else []

    def copied_frames(self) -> list[bytes]:
        """The frames the RX loop copied out (copy_out=N), in arrival order."""
        raw = ffi.buffer(self._out, int(self._st.out_used))[:]
        out, pos = [], 0
        for i in range(int(self._st.out_frames)):
            n = int(self._out_lens[i])
            out.append(raw[pos:pos + n])
            pos += n
        return out

    def copied_times(self) -> list[int]:
        """When each copied frame was received (CLOCK_REALTIME ns; one reading per batch)."""
        return [int(self._out_ts[i]) for i in range(int(self._st.out_frames))]


class NativeXsk:
    """An ``xt_xsk``: one AF_XDP socket with its mapped rings."""

    def __init__(self, umem: NativeUmem, fd: int, ifindex: int, queue: int, rx_size: int,
                 tx_size: int, fill_size: int, comp_size: int) -> None:
        cfg = ffi.new("struct xt_xsk_config *")
        cfg.fd = fd
        cfg.ifindex = ifindex
        cfg.queue = queue
        cfg.rx_size = rx_size
        cfg.tx_size = tx_size
        cfg.fill_size = fill_size
        cfg.comp_size = comp_size
        out = ffi.new("struct xt_xsk **")
        ret = lib.xt_xsk_open(umem._p(), cfg, out)  # takes over fd, closes it on failure
        if ret < 0:
            raise _err(ret, "setting up the AF_XDP socket's UMEM and rings", UmemError)
        self.ptr: Any = out[0]
        self.fd = fd
        self.frame_size = umem.info().frame_size
        self.max_frame = self.frame_size  # the longest frame it sends or receives; MAX_FRAME with BIND_SG
        self._rxbuf: Any = None
        self._rxlens: Any = None
        self._rxaddrs: Any = None
        self._rxcap = 0

    def _p(self) -> Any:
        if self.ptr is None:
            raise ClosedError("the AF_XDP socket was closed")
        return self.ptr

    def bind(self, flags: int) -> int:
        """0 or a negative errno (the caller explains it)."""
        return int(lib.xt_xsk_bind(self._p(), flags))

    def populate_fill(self, frames: int) -> int:
        ret = lib.xt_xsk_populate_fill(self._p(), frames)
        if ret < 0:
            raise ConfigError(f"cannot put {frames} frames in the fill ring: "
                              f"{os.strerror(-ret)} (at most fill_size frames fit)")
        return int(ret)

    def close(self) -> None:
        if self.ptr is not None:
            lib.xt_xsk_close(self.ptr)
            self.ptr = None

    def is_zerocopy(self) -> bool:
        ret = lib.xt_xsk_is_zerocopy(self._p())
        if ret < 0:
            raise _err(ret, "getsockopt(XDP_OPTIONS)")
        return bool(ret)

    def statistics(self) -> dict[str, int]:
        st = ffi.new("struct xt_xdp_stats *")
        ret = lib.xt_xsk_statistics(self._p(), st)
        if ret < 0:
            raise _err(ret, "getsockopt(XDP_STATISTICS)")
        return {name: int(getattr(st, name)) for name in STAT_NAMES[: int(st.nfields)]}

    def ring_state(self, name: str) -> RingState:
        st = ffi.new("struct xt_ring_state *")
        lib.xt_xsk_ring_state(self._p(), RING_NAMES[name], st)
        return RingState(int(st.producer), int(st.consumer), int(st.cached_prod),
                         int(st.cached_cons), int(st.size), int(st.flags))

    def counters(self) -> dict[str, int]:
        c = ffi.new("struct xt_xsk_counters *")
        lib.xt_xsk_counters(self._p(), c)
        return {name: int(getattr(c, name)) for name in COUNTER_NAMES}

    def set_busy_poll(self, usecs: int, budget: int, prefer: bool) -> int:
        """0 or a negative errno (ENOPROTOOPT: the kernel has no preferred busy polling)."""
        return int(lib.xt_xsk_set_busy_poll(self._p(), usecs, budget, int(prefer)))

    def poll(self, events: int, timeout_ms: int) -> int:
        ret = lib.xt_xsk_poll(self._p(), events, timeout_ms)
        if ret < 0:
            raise _err(ret, "poll()")
        return int(ret)

    def kick_tx(self) -> None:
        ret = lib.xt_xsk_kick_tx(self._p())
        if ret < 0:
            raise _err(ret, "sendto() kick")

    def kick_rx(self) -> None:
        ret = lib.xt_xsk_kick_rx(self._p())
        if ret < 0:
            raise _err(ret, "recvfrom() kick")

    def complete(self, max_entries: int = 0) -> int:
        return int(lib.xt_xsk_complete(self._p(), max_entries))

    def send(self, frames: Sequence[bytes]) -> int:
        if not frames:
            return 0
        lens = [len(f) for f in frames]
        ret = lib.xt_xsk_send(self._p(), b"".join(frames), lens, len(lens))
        if ret == -errno.EMSGSIZE:
            bad = next(i for i, n in enumerate(lens) if n == 0 or n > self.max_frame)
            hint = ("a shorter frame" if self.max_frame == MAX_FRAME else
                    "a larger frame_size, multi_buffer=True (Linux 6.6+) or a shorter frame")
            raise ConfigError(f"frame {bad} has {lens[bad]} bytes; this socket sends frames of 1 to "
                              f"{self.max_frame} bytes: use {hint}")
        if ret < 0:
            raise _err(ret, "sending")
        return int(ret)

    def send_raw(self, descs: Sequence[tuple[int, int] | tuple[int, int, int]], kick: bool = True) -> int:
        """Put (addr, len[, options]) descriptors in the TX ring as they are, no checks (for tests)."""
        arr = ffi.new("struct xt_desc[]", max(len(descs), 1))
        if any(len(desc) not in (2, 3) for desc in descs):
            raise ConfigError("a raw descriptor is (addr, len) or (addr, len, options)")
        for i, desc in enumerate(descs):
            arr[i].addr, arr[i].len = desc[0], desc[1]
            arr[i].options = desc[2] if len(desc) > 2 else 0
        ret = lib.xt_xsk_send_raw(self._p(), arr, len(descs), int(kick))
        if ret < 0:
            raise _err(ret, "raw send")
        return int(ret)

    def recv(self, max_frames: int, timeout_ms: int, with_addrs: bool = False, meta_len: int = 0
             ) -> tuple[list[bytes], list[int], list[bytes]]:
        """Frames, their first descriptor's address (``with_addrs``) and the ``meta_len`` bytes of
        XDP metadata in front of each (``meta_len`` > 0)."""
        cap = max_frames * self.max_frame
        if cap > self._rxcap:
            self._rxbuf = ffi.new("unsigned char[]", cap)
            self._rxlens = ffi.new("unsigned int[]", max_frames)
            self._rxaddrs = ffi.new("unsigned long long[]", max_frames)
            self._rxcap = cap
        meta = ffi.new("unsigned char[]", max_frames * meta_len) if meta_len else ffi.NULL
        while True:
            ret = lib.xt_xsk_recv(self._p(), max_frames, self._rxbuf, cap, self._rxlens,
                                  self._rxaddrs if with_addrs else ffi.NULL, meta, meta_len, timeout_ms)
            if ret != -errno.EINTR:
                break
        if ret < 0:
            raise _err(ret, "receiving")
        lens = [int(n) for n in self._rxlens[0:ret]]
        raw = ffi.buffer(self._rxbuf, sum(lens))[:]
        frames, pos = [], 0
        for n in lens:
            frames.append(raw[pos:pos + n])
            pos += n
        addrs = [int(a) for a in self._rxaddrs[0:ret]] if with_addrs else []
        metas = []
        if meta_len:
            raw_meta = ffi.buffer(meta, ret * meta_len)[:]
            metas = [raw_meta[i * meta_len:(i + 1) * meta_len] for i in range(ret)]
        return frames, addrs, metas

    def test_forge(self, ring: str, addr: int, length: int = 0) -> None:
        ret = lib.xt_xsk_test_forge(self._p(), RING_NAMES[ring], addr, length)
        if ret < 0:
            raise _err(ret, "forging a descriptor")

    def _loop_error(self, ret: int, loop: XskLoop, what: str) -> OSError | ConfigError:
        if ret == -errno.EMSGSIZE:
            return ConfigError(f"the generator builds frames of up to {loop._cfg.gen_max_len} "
                               f"bytes; the UMEM's frames have {self.frame_size}: use a larger "
                               "frame_size or smaller packets")
        return _err(ret, what)

    def tx_burst(self, loop: XskLoop) -> int:
        ret = lib.xt_tx_burst(self._p(), loop._cfg, loop._st)
        if ret < 0:
            raise self._loop_error(ret, loop, "TX burst")
        return int(ret)

    def rx_burst(self, loop: XskLoop) -> int:
        ret = lib.xt_rx_burst(self._p(), loop._cfg, loop._st)
        if ret < 0:
            raise _err(ret, "RX burst")
        return int(ret)

    def tx_loop(self, loop: XskLoop) -> None:
        ret = lib.xt_tx_loop(self._p(), loop._cfg, loop._st)
        if ret < 0:
            raise self._loop_error(ret, loop, "TX loop")

    def rx_loop(self, loop: XskLoop) -> None:
        ret = lib.xt_rx_loop(self._p(), loop._cfg, loop._st)
        if ret < 0:
            raise _err(ret, "RX loop")


def live_frames(prog_fd: int, frame: bytes, ifindex: int, repeat: int, batch: int = 64) -> None:
    """Make ``prog_fd`` (an XDP_TX/REDIRECT program) emit ``frame`` ``repeat`` times as live
    frames entering ``ifindex`` (BPF_PROG_TEST_RUN, in-kernel; blocks; call it from a thread in
    the interface's namespace)."""
    ret = lib.xt_live_frames(prog_fd, frame, len(frame), ifindex, repeat, batch)
    if ret < 0:
        raise _err(ret, "BPF_PROG_TEST_RUN with live frames")
