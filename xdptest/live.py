"""The live-frames TX engine: frames generated in the kernel, stamped in BPF, sent with XDP_TX.

BPF_PROG_TEST_RUN in live-frames mode (``BPF_F_TEST_XDP_LIVE_FRAMES``, Linux 5.18) runs an XDP
program on copies of one input frame, ``repeat`` times, and sends every frame the program returns
``XDP_TX`` for out of the ingress interface. The program (``bpf/gen_live.bpf.c``) rewrites each
copy into the frame the C generator would build for that frame number: the same ``--vary``
values, the same stamp (stream, sequence, CLOCK_MONOTONIC timestamp, check), the same checksums,
so the receiver verifies them exactly as it verifies the AF_XDP engine's frames.

One thread per CPU, each pinned to its CPU and running in the endpoint's namespace (the kernel
resolves the ingress ifindex in the calling thread's namespace). Each CPU has its own sequence
counter and stream id (``stream_base + thread index``). Threads call the kernel in slices (a few
milliseconds of frames each) so that count, duration, rate and ``stop()`` take effect between
slices; the frame counters are read back from the program, so ``count=`` is exact even when a
call is interrupted.

Frames only arrive where the receiving device runs NAPI: on veth, the peer needs an XDP program
or GRO (``VethPair`` turns GRO on; ``start()`` checks the peer when it knows it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from xdptest import features
from xdptest._native import bpf as _libbpf
from xdptest._native import xsk as _libxsk
from xdptest._native.gen import MAX_STREAMS
from xdptest.bpf import XdpProgram, attached_programs, builtin_program_path
from xdptest.errors import (
    BpfObjectError,
    ConfigError,
    NotSupportedError,
    PermissionDeniedError,
    ToolchainError,
    XdpTestError,
)
from xdptest.netns import Endpoint, Netns
from xdptest.nsexec import get_gro, run_in_netns
from xdptest.packets import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    KIND_IPV4,
    KIND_IPV6,
    KIND_MAC,
    KIND_SIZE,
    KIND_U8,
    KIND_U16,
    STAMP_SIZE,
    Template,
    Vary,
    _ones_sum,
    resolve,
)

TMPL_MAX = 256  # XT_LIVE_TMPL_MAX: template bytes the program rewrites per frame
MAX_VARY = 16
MAX_BATCH = 256  # the kernel's limit for batch_size in live-frames mode
WINDOW_WAIT_S = 0.1  # closed loop: send anyway after this long without the receiver moving
WINDOW_POLL_S = 50e-6  # closed loop: how often a full window looks at the receiver again
MAX_CPUS = 1024  # XT_LIVE_MAX_CPUS
DEFAULT_SEED = 0x9E3779B97F4A7C15  # GenSpec's default, so random fields match the C generator
CSUM_IP, CSUM_L4 = 1, 2
_M64 = (1 << 64) - 1

# struct xt_live_vary, struct xt_live_config and struct xt_live_cpu (bpf/gen_live.bpf.c).
_VARY = struct.Struct("<QQQIIIHBB")
_CONFIG_HEAD = struct.Struct("<IIIIiiIIIIIIQ")
_CPU = struct.Struct("<QQQIIQII")
CONFIG_SIZE = _CONFIG_HEAD.size + MAX_VARY * _VARY.size + TMPL_MAX

ProbeFunc = Callable[[str], features.FeatureStatus]


def program_path() -> str:
    """The compiled generator program shipped in the package."""
    return str(builtin_program_path("pass").with_name("gen_live.bpf.o"))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _inv_words(frame: bytes, offset: int, length: int) -> int:
    """Sum of the ones' complements of the 16-bit words in frame[offset:offset+length]."""
    return sum(0xFFFF - int.from_bytes(frame[i:i + 2], "big") for i in range(offset, offset + length, 2))


def pack_config(template: Template, varies: Sequence[Vary], seed: int = 0, ts_every: int = 64) -> bytes:
    """The program's ``config[0]`` for one template and its variations (bound to its offsets here);
    ``ts_every`` frames share one clock reading (each kernel call starts a new one)."""
    frame = template.frame
    copy_len = min(len(frame), TMPL_MAX)
    if template.stamp_offset + STAMP_SIZE > copy_len:
        raise ConfigError(f"the live engine stamps within the first {TMPL_MAX} bytes; this template's "
                          f"stamp starts at byte {template.stamp_offset}: use the AF_XDP engine")
    if len(varies) > MAX_VARY:
        raise ConfigError(f"at most {MAX_VARY} --vary options, got {len(varies)}")
    ip_csum = template.l3_offset + 10 if template.l3_version == 4 else -1
    l4_csum = (template.l4_offset + 6 if template.l4_proto == IPPROTO_UDP
               else template.l4_offset + 16 if template.l4_proto == IPPROTO_TCP else -1)
    if (template.l4_proto == IPPROTO_UDP and template.l3_version == 4
            and frame[l4_csum:l4_csum + 2] == b"\0\0"):
        l4_csum = -1  # UDP over IPv4 without a checksum stays without one
    ip_acc = l4_acc = 0
    ip_used = False
    packed_varies = []
    for v in (resolve(v, template) for v in varies):
        if v.kind == KIND_SIZE:
            raise ConfigError("--vary size is not available with the live engine (live frames keep the "
                              "input frame's length): use the AF_XDP engine")
        width = {KIND_MAC: 6, KIND_IPV4: 4, KIND_IPV6: 16, KIND_U16: 2, KIND_U8: 2}[v.kind]
        if v.offset > copy_len - width:
            raise ConfigError(f"--vary {v.field}: the field lies beyond the first {TMPL_MAX} bytes the "
                              "live engine rewrites: use the AF_XDP engine")
        csums = {KIND_MAC: 0, KIND_IPV4: CSUM_IP | CSUM_L4, KIND_IPV6: CSUM_L4, KIND_U16: CSUM_L4,
                 KIND_U8: CSUM_IP}[v.kind]
        if csums:
            old = _inv_words(frame, v.offset, width)
            if csums & CSUM_IP:
                ip_acc += old
                ip_used = True
            if csums & CSUM_L4:
                l4_acc += old
        low_byte = frame[v.offset + 1] if v.kind == KIND_U8 else 0
        packed_varies.append(_VARY.pack(v.lo & _M64, v.lo >> 64 if v.kind == KIND_IPV6 else 0,
                                        v.count & _M64, v.kind, v.offset, int(v.random), low_byte,
                                        csums, 0))
    l4_acc += _inv_words(frame, template.stamp_offset, STAMP_SIZE)
    if not ip_used:
        ip_csum = -1  # as the C generator: the IPv4 checksum changes only with an IPv4 field
    ip_base = _fold(0xFFFF - int.from_bytes(frame[ip_csum:ip_csum + 2], "big") + ip_acc) if ip_csum >= 0 else 0
    l4_base = _fold(0xFFFF - int.from_bytes(frame[l4_csum:l4_csum + 2], "big") + l4_acc) if l4_csum >= 0 else 0
    head = _CONFIG_HEAD.pack(len(frame), copy_len, template.stamp_offset,
                             _ones_sum(frame[template.stamp_offset + STAMP_SIZE:]), ip_csum, l4_csum,
                             ip_base, l4_base, int(template.l4_proto == IPPROTO_UDP), len(varies),
                             ts_every, 0, (seed or DEFAULT_SEED) & _M64)
    body = b"".join(packed_varies).ljust(MAX_VARY * _VARY.size, b"\0")
    return head + body + frame[:copy_len].ljust(TMPL_MAX, b"\0")


@dataclass(frozen=True)
class LiveStats:
    """What a run generated: frames per stream (one stream per thread) and the time it took."""

    sent: int
    per_stream: dict[int, int]
    elapsed_s: float
    cpus: tuple[int, ...]
    batch_size: int
    bad_len: int = 0  # runs the program refused (input frame of the wrong length): always 0

    @property
    def pps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class _Worker:
    index: int
    cpu: int
    stream: int
    quota: int | None
    rate: float
    done: int = 0
    thread: threading.Thread | None = None
    error: BaseException | None = field(default=None, repr=False)


class LiveGenerator:
    """Send stamped frames from ``endpoint`` with in-kernel live frames.

    ``templates``: one :class:`~xdptest.packets.Template` (the live engine sends one frame shape);
    ``varies``: parsed variations (``packets.parse_vary``; not ``size``), bound to its offsets here.
    ``threads``: how many CPUs send (default: every CPU this process may use), one pinned thread
    each; ``cpus`` picks them. ``batch_size``: frames per kernel batch (1-256).
    ``rate`` (frames/s, all threads together), ``count`` (exact total) and ``duration`` (seconds)
    limit the run; with none of them it runs until :meth:`stop`. ``stream_base``: stream id of the
    first thread. ``seed``: as ``GenSpec``'s, for random fields. ``probe``: the feature probe
    (``features.probe``; replaceable to exercise the unsupported path). ``anchor``: keep the
    program in the XDP dispatcher through a private namespace (see ``_make_anchor``); without it
    every kernel call costs tens of milliseconds, and slices grow to hide that.
    ``window`` with ``received`` (a function returning the receiver's frame count): closed loop,
    at most ``window`` frames sent and not yet received, as the AF_XDP engine's ``--window``;
    ``receiver_queued`` (frames wait in the receiver's rings) tells a late receiver from lost
    frames when the receiver stops moving.
    """

    def __init__(self, endpoint: Endpoint, templates: Sequence[Template], varies: Sequence[Vary] = (), *,
                 threads: int | None = None, cpus: Sequence[int] | None = None, batch_size: int = 64,
                 rate: float | None = None, count: int | None = None, duration: float | None = None,
                 stream_base: int = 0, seed: int = 0, anchor: bool = True,
                 window: int | None = None, received: Callable[[], int] | None = None,
                 receiver_queued: Callable[[], bool] | None = None,
                 probe: ProbeFunc = features.probe) -> None:
        status = probe("live_frames")
        if not status.present:
            raise NotSupportedError("live frames (BPF_F_TEST_XDP_LIVE_FRAMES)",
                                    f"{status.reason}; use the AF_XDP engine", status.since)
        if len(templates) != 1:
            raise ConfigError(f"the live engine sends one template, got {len(templates)}: "
                              "use the AF_XDP engine to rotate several")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ConfigError(f"batch_size must be from 1 to {MAX_BATCH}, got {batch_size}")
        if rate is not None and not rate > 0:
            raise ConfigError(f"rate must be a positive number of frames per second, got {rate!r}")
        if count is not None and count < 0:
            raise ConfigError(f"count must be >= 0, got {count}")
        if duration is not None and not duration > 0:
            raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
        if (window is None) != (received is None) or (window is not None and window < 1):
            raise ConfigError("a closed loop needs both window= (frames, >= 1) and received= (a counter)")
        allowed = sorted(os.sched_getaffinity(0))
        if cpus is None:
            n = len(allowed) if threads is None else threads
            if not 1 <= n <= len(allowed):
                raise ConfigError(f"threads={n}: this process may run on {len(allowed)} CPU(s) "
                                  f"({allowed}); use 1 to {len(allowed)}")
            chosen = allowed[:n]
        else:
            chosen = list(dict.fromkeys(cpus))
            if not chosen or any(c not in allowed for c in chosen) or (threads is not None and threads != len(chosen)):
                raise ConfigError(f"cpus={list(cpus)}: give distinct CPUs among {allowed} (threads, if "
                                  "given, must match their number)")
        if not 0 <= stream_base <= MAX_STREAMS - len(chosen):
            raise ConfigError(f"stream_base={stream_base}: streams {stream_base}.. must stay below {MAX_STREAMS}")
        self.endpoint = endpoint
        self.template = templates[0]
        self.frame = self.template.frame
        self.batch_size = batch_size
        self.rate, self.count, self.duration = rate, count, duration
        self.window, self._received = window, received
        self._window_lost = 0  # closed loop: frames given up on after the receiver stopped moving
        self._receiver_queued = receiver_queued
        if any(c >= MAX_CPUS for c in chosen):
            raise ConfigError(f"cpus {chosen}: the live engine runs on CPUs below {MAX_CPUS}")
        self._config = pack_config(self.template, varies, seed, ts_every=batch_size)
        self._workers = []
        for i, cpu in enumerate(chosen):
            quota = None if count is None else count // len(chosen) + (1 if i < count % len(chosen) else 0)
            per_rate = 0.0 if rate is None else rate / len(chosen)
            self._workers.append(_Worker(i, cpu, stream_base + i, quota, per_rate))
        self._stop = threading.Event()
        self._external_stop: threading.Event | None = None
        self._started = self._finished = 0.0
        self._closed = True
        self._anchor: Netns | None = None
        with contextlib.ExitStack() as undo:
            try:
                self.program = XdpProgram.load(program_path())
            except (PermissionDeniedError, ToolchainError, BpfObjectError):
                raise
            except XdpTestError as exc:
                raise NotSupportedError("the live-frames generator program", f"it does not load here: {exc}") from exc
            undo.callback(self.program.close)
            self.program.maps["config"].update(0, self._config)
            self._cpu_map = self.program.maps["cpu_state"]
            self._call_map = self.program.maps["call_id"]
            self._reset_counters()
            if anchor:
                self._anchor = self._make_anchor()
                undo.callback(self._anchor.close)
            self._closed = False
            undo.pop_all()

    def _make_anchor(self) -> Netns:
        """Keep the program in the kernel's XDP dispatcher for the generator's life.

        Each BPF_PROG_TEST_RUN of an XDP program that is attached nowhere swaps it into the XDP
        dispatcher and out again, each time waiting for an RCU grace period: 20-40 ms per call
        here. Attached (generic mode) to ``lo`` of a private namespace whose ``lo`` is down, where
        no frame ever reaches it, the program stays in the dispatcher and a call costs ~20 us.
        """
        ns = Netns()
        try:
            with ns.iproute() as ipr:
                ipr.link("set", index=1, state="down")
            self.program.attach("lo", mode="generic", netns=ns)
        except BaseException:
            ns.close()
            raise
        return ns

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(w.cpu for w in self._workers)

    @property
    def streams(self) -> tuple[int, ...]:
        return tuple(w.stream for w in self._workers)

    def _reset_counters(self) -> None:
        ncpus = _libbpf.possible_cpus()
        streams = {w.cpu: w.stream for w in self._workers}
        self._cpu_map.update(0, [_CPU.pack(0, 0, 0, streams.get(c, 0xFFFF), 0, 0, 0, 0) for c in range(ncpus)])

    def _counters(self) -> list[tuple[int, ...]]:
        return [_CPU.unpack(raw) for raw in self._cpu_map.lookup(0)]

    def peer_problem(self) -> str | None:
        """Why frames would vanish at the peer (no XDP program and GRO off), or None."""
        peer = self.endpoint.peer
        if peer is None:
            return None
        if attached_programs(peer) or get_gro(peer.netns.name, peer.ifname):
            return None
        return (f"{peer.ifname} in {peer.netns.name} runs neither XDP nor GRO, so live frames sent to it "
                f"are dropped silently: attach an XDP program to it or turn GRO on "
                f"(ip netns exec {peer.netns.name} ethtool -K {peer.ifname} gro on)")

    # --- running ------------------------------------------------------------------------------

    def start(self, stop_event: threading.Event | None = None) -> None:
        """Start the sending threads and return; setting ``stop_event`` stops them like :meth:`stop`."""
        if self._closed:
            raise ConfigError("this LiveGenerator was closed")
        if self._started:
            raise ConfigError("a LiveGenerator runs once; create another for a second run")
        problem = self.peer_problem()
        if problem:
            raise ConfigError(problem)
        self._external_stop = stop_event
        self._started = time.monotonic()
        for w in self._workers:
            w.thread = threading.Thread(target=self._thread_main, args=(w,), name=f"xdptest-live-{w.cpu}",
                                        daemon=True)
            w.thread.start()

    def _thread_main(self, w: _Worker) -> None:
        try:
            run_in_netns(self.endpoint.netns.name, lambda: self._send(w))
        except BaseException as exc:  # re-raised by wait() in the caller's thread
            w.error = exc
            self._stop.set()

    def _send(self, w: _Worker) -> None:
        os.sched_setaffinity(0, {w.cpu})  # this thread only
        fd, ifindex, frame = self.program.fd, self.endpoint.ifindex, self.frame
        # Seconds of frames per kernel call: short with the anchor (a call costs ~20 us), long
        # without it (a call costs tens of milliseconds). Paced runs send shorter bursts.
        per_call = 0.005 if self._anchor is not None else 0.25
        paced_call = 0.001 if self._anchor is not None else 0.25
        start = time.monotonic()
        deadline = start + self.duration if self.duration else None
        slice_n = max(1, int(w.rate * paced_call)) if w.rate else 1024
        speed = 0.0  # frames/s of the previous call
        call = 0
        while not self._stopping():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            n = slice_n
            if w.quota is not None:
                n = min(n, w.quota - w.done)
                if n <= 0:
                    break
            if w.rate:
                due = int(w.rate * (now - start)) + 1  # frames that should have left by now
                if due <= w.done:
                    time.sleep(min((w.done + 1 - due) / w.rate, paced_call))
                    continue
                n = min(n, due - w.done)
            elif deadline is not None and speed:
                n = max(1, min(n, int(speed * (deadline - now)) + 1))
            if self.window is not None:
                n = self._window_allows(n)
                if n <= 0:
                    continue
            call += 1
            self._call_map.update(w.cpu, call)  # the call's first frame reads the clock afresh
            t0 = time.monotonic()
            try:
                _libxsk.live_frames(fd, frame, ifindex, n, self.batch_size)
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise self._run_error(exc) from None
            elapsed = time.monotonic() - t0
            w.done = self._counters()[w.cpu][1]
            if not w.rate and elapsed > 0:
                speed = n / elapsed
                slice_n = max(256, min(1 << 22, int(speed * per_call)))

    def _window_allows(self, want: int) -> int:
        """Closed loop: how many of ``want`` frames may go with the receiver where it is. Waits
        while the window is full; after WINDOW_WAIT_S without progress there, the frames still out
        are given up as lost, so frames the kernel dropped do not hold every later call back.
        0: stopping."""
        assert self.window is not None and self._received is not None
        share = max(1, self.window // len(self._workers))
        seen, since = -1, time.monotonic()
        while not self._stopping():
            got = self._received()
            sent = self.stats().sent
            room = self.window - (sent - got - self._window_lost)
            if room >= min(want, share):
                return min(want, room)
            now = time.monotonic()
            if got != seen:
                seen, since = got, now
            elif now - since >= WINDOW_WAIT_S:
                since = now
                if self._receiver_queued is None or not self._receiver_queued():
                    self._window_lost = sent - got  # nothing queued for it: those are lost
                    return min(want, share)
            time.sleep(WINDOW_POLL_S)
        return 0

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._external_stop is not None and self._external_stop.is_set())

    def _run_error(self, exc: OSError) -> Exception:
        if exc.errno == errno.EPERM:
            return PermissionDeniedError("BPF_PROG_TEST_RUN needs CAP_BPF and CAP_NET_ADMIN: run as root")
        if exc.errno == errno.ENODEV:
            return ConfigError(f"{self.endpoint.ifname} (index {self.endpoint.ifindex}) is not in "
                               f"namespace {self.endpoint.netns.name} any more")
        return NotSupportedError("live frames (BPF_F_TEST_XDP_LIVE_FRAMES)",
                                 f"the kernel refused the run: {exc.strerror}", "5.18")

    def stop(self) -> None:
        """Ask the threads to stop after their current slice (a few milliseconds)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads to finish; True when they have. Re-raises a thread's error."""
        end = None if timeout is None else time.monotonic() + timeout
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(None if end is None else max(0.0, end - time.monotonic()))
        for w in self._workers:
            if w.error is not None:
                error, w.error = w.error, None
                raise error
        alive = any(w.thread is not None and w.thread.is_alive() for w in self._workers)
        if not alive and self._started and not self._finished:
            self._finished = time.monotonic()
        return not alive

    def run(self, stop_event: threading.Event | None = None) -> LiveStats:
        """Start, wait for the count/duration limit or ``stop_event`` (or :meth:`stop` from another
        thread), and report."""
        if self.count is None and self.duration is None and stop_event is None:
            raise ConfigError("run() needs count=, duration= or a stop_event (or call start() and stop())")
        self.start(stop_event)
        try:
            self.wait()
        finally:
            self.stop()
            self.wait()
        return self.stats()

    def stats(self) -> LiveStats:
        """Frames generated so far (exact: read from the program's per-CPU counters)."""
        counters = self._counters()
        per_stream = {w.stream: counters[w.cpu][1] for w in self._workers}
        end = self._finished or time.monotonic()
        elapsed = end - self._started if self._started else 0.0
        return LiveStats(sum(per_stream.values()), per_stream, elapsed, self.cpus, self.batch_size,
                         sum(c[2] for c in counters))

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        for w in self._workers:  # errors not collected by wait() were the caller's to collect
            if w.thread is not None:
                w.thread.join(5)
        self._closed = True
        try:
            self.program.close()
        finally:
            if self._anchor is not None:
                self._anchor.close()

    def __enter__(self) -> LiveGenerator:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

