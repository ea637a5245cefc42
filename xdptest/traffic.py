"""Traffic generation and verification over AF_XDP: what ``xdptest-gen`` and the ``traffic``
fixture run.

For each queue, a TX socket on the sending endpoint runs the C loop that builds stamped frames
straight into its UMEM (field variation, checksums, pacing), and an RX socket on the receiving
endpoint (behind the built-in ``redirect`` program, or the caller's) runs the C loop that checks
every frame's stamp and keeps sequence and latency accounting. Python only starts the threads,
reads counters every slice for progress, and assembles the :class:`TrafficReport`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any

from xdptest import packets, signals
from xdptest._native.gen import HIST_BUCKETS, GenSpec, Verifier, percentiles
from xdptest._version import __version__
from xdptest.errors import ConfigError, NotSupportedError, XdpTestError
from xdptest.expect import Expect, expected_templates
from xdptest.framelen import check_frame_lengths, longest_frame, needs_multi_buffer
from xdptest.intervals import IntervalRecorder, Progress, Sample
from xdptest.options import TrafficOptions
from xdptest.pcapfile import PcapngWriter
from xdptest.report import LATENCY_KEYS, TrafficReport
from xdptest.runreport import QUANTILES, add_stats, environment, fill_received
from xdptest.xsk import Umem, XskLoop, XskSocket, require_attached

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram
    from xdptest.netns import Endpoint

SLICE_S = 0.05  # C loops return to Python this often, for progress and stop requests
DRAIN_IDLE_S = 0.25  # after the senders stop, the receivers wait this long for stragglers
DEFAULT_PACKET = "Ether()/IP()/UDP(sport=1024, dport=9)"
# The receiver's rings hold at least this many frames: at 1 Mpps that is 8 ms of traffic, enough
# to ride out a receiver thread that the scheduler sets aside for a few milliseconds.
MIN_RX_RING = 8192
DEFAULT_SIZE = 64  # frames without --size: 64 bytes, or what the headers and stamp need
TX_PCAPNG_BUFFER = 4 << 20  # bytes of packet blocks a TX loop gathers before Python writes them


def build_templates(options: TrafficOptions, src: Endpoint, dst: Endpoint | None
                    ) -> tuple[list[packets.Template], list[packets.Vary]]:
    """Templates and the parsed variations of a run (all checks happen here, before any socket):
    every template must have every varied field; the generator binds each variation to each
    template's own offsets."""
    varies = [packets.parse_vary(v) for v in options.vary]
    size_vary = [v for v in varies if v.kind == packets.KIND_SIZE]
    if len(size_vary) > 1:
        raise ConfigError("--vary size may be given once")
    size = size_vary[0].lo if size_vary else options.size
    peer = dst or src.peer  # transmitting only on a veth: address its peer
    if options.verbatim:
        assert options.pcap is not None  # validated with the options
        templates = packets.verbatim_frames(options.pcap)
    elif options.pcap:
        templates = packets.from_pcap(options.pcap, size)
    else:
        templates = [packets.from_scapy(
            options.packet or DEFAULT_PACKET, size, min_size=DEFAULT_SIZE,
            src_mac=src.mac, dst_mac=peer.mac if peer else None,
            src_ip=src.ipv4, dst_ip=peer.ipv4 if peer else None,
            src_ip6=src.ipv6, dst_ip6=peer.ipv6 if peer else None,
        )]
    for v in varies:
        for t in templates:
            packets.resolve(v, t)
    check_frame_lengths(longest_frame(templates, varies), options, src, dst)
    return templates, varies


@dataclass
class _Queue:
    index: int
    tx: XskSocket | None  # None with the live engine: the kernel sends
    rx: XskSocket | None
    tx_loop: XskLoop | None
    rx_loop: XskLoop | None
    verifier: Verifier | None
    errors: list[BaseException] = field(default_factory=list)


class TrafficRun:
    """One run: sockets per queue, sender and receiver threads, and the report.

    Use :func:`run_traffic` unless you need to drive it yourself (``start``/``wait``/``report``).
    """

    def __init__(self, src: Endpoint, dst: Endpoint | None, options: TrafficOptions, *,
                 rx_program: XdpProgram | None = None, capture: int = 0, expect: Expect = None,
                 on_interval: Callable[[dict[str, Any]], None] | None = None) -> None:
        if options.count is None and options.duration is None and options.loop is None \
                and not options.replay_timing:
            raise ConfigError("give --count or --duration: an endless run cannot be verified")
        if options.queues > src.queues or (dst is not None and options.queues > dst.queues):
            raise ConfigError(f"--queues {options.queues}: the interfaces have {src.queues}"
                              f"{f'/{dst.queues}' if dst else ''} queue(s)")
        self.src, self.dst, self.options = src, dst, options
        self.templates, self.varies = build_templates(options, src, dst)
        self.longest = longest_frame(self.templates, self.varies)
        self.multi_buffer = needs_multi_buffer(self.longest, options)  # frames span UMEM frames
        # What the receiver must see, byte for byte: the frames as sent, or as ``expect`` says.
        if options.verify == "stamp" and expect:
            raise ConfigError("--expect describes whole frames: it needs --verify frame (the default)")
        if options.verbatim and expect:
            raise ConfigError("--verbatim checks that the capture's frames arrive unchanged: --expect cannot apply")
        self.expected = expected_templates(self.templates, self.varies, expect)
        self._expect = expect
        self._expect_gen = (GenSpec(self.expected, self.varies, stream=0, seed=options.seed, sent=self.templates)
                            if options.verify == "frame" else None)
        if rx_program is not None and dst is not None:
            require_attached(rx_program, dst)  # before any socket or UMEM exists
        self.count = options.count
        if options.loop is not None or (options.replay_timing and options.count is None
                                        and options.duration is None):
            self.count = (options.loop or 1) * len(self.templates)  # the capture, LOOP times
        self._schedule: tuple[list[int], int] | None = None
        if options.replay_timing:
            assert options.pcap is not None  # validated with the options
            self._schedule = packets.pcap_schedule(options.pcap, options.speedup)
        self._tx_pcap: PcapngWriter | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._senders_done = threading.Event()
        self._stack = contextlib.ExitStack()
        self._queues: list[_Queue] = []
        self._started = 0.0
        self._tx_elapsed = 0.0
        self._capture = capture
        self._intervals = (IntervalRecorder(options.interval, self.sample, on_interval)
                           if options.interval else None)
        self.interrupted_by = ""  # what stopped the run early ("" while it ran to its end)
        self.notes: list[str] = []
        self._live: Any = None
        self.engine = self._choose_engine()
        try:
            if self.engine == "live":
                self._live = self._open_live()
            elif options.write_tx_pcap:
                self._tx_pcap = self._stack.enter_context(PcapngWriter(
                    options.write_tx_pcap, [f"{src} queue {q} (AF_XDP TX)" for q in range(options.queues)],
                    application=f"xdptest {__version__}"))
            for q in range(options.queues):
                self._queues.append(self._open_queue(q, rx_program))
        except BaseException:
            self._stack.close()
            raise

    def _live_problem(self) -> str | None:
        """Why the live-frames engine cannot run this, or None."""
        from xdptest import features

        status = features.probe("live_frames")
        if not status.present:
            return f"live frames are not available ({status.reason}; Linux 5.18+)"
        if len(self.templates) != 1:
            return "the live engine sends one template, and --pcap gave several"
        if any(v.kind == packets.KIND_SIZE for v in self.varies):
            return "the live engine cannot vary the frame size"
        if self.templates[0].size > 256:
            return "the live engine rewrites at most 256 bytes of template per frame"
        if self.options.replay_timing:
            return "timed replay paces each frame from an AF_XDP socket"
        if self.options.verbatim:
            return "verbatim frames are sent from an AF_XDP socket"
        if self.options.write_tx_pcap:
            return "the kernel builds live frames, so only AF_XDP sends can be recorded (--write-tx-pcap)"
        return None

    def _choose_engine(self) -> str:
        o = self.options
        if o.engine == "afxdp":
            return "afxdp"
        problem = self._live_problem()
        if problem is None:
            self.notes.append("engine: live frames (BPF_PROG_TEST_RUN, XDP_TX from the kernel)"
                              + ("; chosen by auto" if o.engine == "auto" else ""))
            return "live"
        if o.engine == "live":
            raise NotSupportedError("--engine live", f"{problem}; use --engine afxdp or auto")
        self.notes.append(f"engine: AF_XDP, chosen by auto because {problem}")
        return "afxdp"

    def _open_live(self) -> Any:
        from xdptest.live import LiveGenerator

        o = self.options
        closed = bool(o.window and self.dst)  # closed loop needs a receiver to follow
        gen = LiveGenerator(self.src, self.templates, self.varies, threads=o.queues, rate=o.rate,
                            count=self.count, duration=o.duration, seed=o.seed,
                            window=o.window if closed else None,
                            received=self._received_total if closed else None,
                            receiver_queued=self._receiver_queued if closed else None)
        self._stack.callback(gen.close)
        return gen

    def _umem(self, frames: int | None = None) -> Umem:
        o = self.options
        umem = Umem(frame_size=o.frame_size, frames=frames or o.frames, headroom=o.headroom,
                    unaligned=o.unaligned)
        self._stack.callback(umem.close)
        return umem

    def _open_queue(self, q: int, rx_program: XdpProgram | None) -> _Queue:
        o = self.options
        rx = rx_loop = verifier = None
        if self.dst is not None:
            rx_ring = o.rx_ring_size or max(o.ring_size, MIN_RX_RING)
            rx = XskSocket(self.dst, queue=q, umem=self._umem(max(o.frames, 2 * rx_ring)), rx_size=rx_ring,
                           tx_size=0, fill_size=rx_ring, comp_size=o.ring_size, mode=o.mode,
                           need_wakeup=o.need_wakeup, busy_poll=o.busy_poll, program=rx_program,
                           attach_mode=o.attach_mode, busy_poll_budget=o.busy_poll_budget or 64,
                           multi_buffer=self.multi_buffer)
            self._stack.callback(rx.close)
            if o.verbatim:  # matched by content against the frames sent (the GenSpec's C array)
                assert self._expect_gen is not None  # --verbatim implies --verify frame
                verifier = Verifier(keep_bad=o.keep_bad, keep_bytes=self.longest)
                verifier.expect_frames(self._expect_gen)
            else:
                verifier = Verifier(expect=self._expect_gen, keep_bad=o.keep_bad, keep_bytes=self.longest)
            capture = -(-self._capture // o.queues)  # each queue's share, rounded up
            rx_loop = XskLoop(batch=min(o.batch, 256), poll_ms=1, verifier=verifier, copy_out=capture,
                              copy_out_bytes=capture * self.longest)
        if self.engine == "live":
            return _Queue(q, None, rx, None, rx_loop, verifier)
        tx = XskSocket(self.src, queue=q, umem=self._umem(), rx_size=0, tx_size=o.ring_size,
                       fill_size=o.ring_size, comp_size=o.ring_size, mode=o.mode,
                       need_wakeup=o.need_wakeup, multi_buffer=self.multi_buffer)
        self._stack.callback(tx.close)
        gen = None if o.verbatim else GenSpec(self.templates, self.varies, stream=q, seed=o.seed)
        frames = [t.frame for t in self.templates] if o.verbatim else []  # sent as they are
        per_queue = None
        if self.count is not None:
            per_queue = self.count // o.queues + (1 if q < self.count % o.queues else 0)
        rate = o.rate / o.queues if o.rate else 0.0
        schedule, period = self._schedule or ((), 0)
        tx_loop = XskLoop(frames, batch=min(o.batch, 256), count=per_queue or 0, gen=gen, rate=rate,
                          tx_pcapng_bytes=TX_PCAPNG_BUFFER if self._tx_pcap else 0, pcap_interface=q,
                          schedule_ns=schedule, period_ns=period)
        if o.window and rx is not None and rx_loop is not None:
            rx.pace(tx_loop, rx_loop, o.window)
        return _Queue(q, tx, rx, tx_loop, rx_loop, verifier)

    # --- threads -------------------------------------------------------------------------------

    def _pin(self, role: int, queue: _Queue) -> None:
        """Spread threads over CPUs: senders and receivers of a queue on different ones (the
        kernel's veth work runs on the sender's CPU, so the receiver must not share it)."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpus[(2 * queue.index + role) % len(cpus)]})

    def _send(self, queue: _Queue) -> None:
        assert queue.tx is not None and queue.tx_loop is not None
        self._pin(0, queue)
        o = self.options
        deadline = self._started + o.duration if o.duration else None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                slice_s = SLICE_S if deadline is None else min(SLICE_S, max(deadline - now, 1e-4))
                queue.tx_loop.set_limits(duration=slice_s)
                queue.tx.run_tx(queue.tx_loop)
                if self._tx_pcap is not None:
                    self._tx_pcap.write_blocks(queue.tx_loop.take_pcapng_blocks())
                if queue.tx_loop.done:
                    break
            # let the completion ring settle: every sent frame has left the UMEM
            for _ in range(20):
                queue.tx.complete()
                if queue.tx.counters()["completed"] >= queue.tx_loop.frames:
                    break
                time.sleep(0.002)
        except BaseException as exc:
            queue.errors.append(exc)
            self._stop.set()

    def _receive(self, queue: _Queue) -> None:
        assert queue.rx is not None and queue.rx_loop is not None
        self._pin(1, queue)
        loop = queue.rx_loop
        try:
            idle_since: float | None = None
            while True:
                before = loop.frames
                loop.set_limits(duration=SLICE_S)
                queue.rx.run_rx(loop)
                got = loop.frames > before
                if self._stop.is_set() and not self._senders_done.is_set():
                    break
                if self._senders_done.is_set():
                    if self._sent_total() <= self._received_total():
                        break
                    if got:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since >= DRAIN_IDLE_S:
                        break
        except BaseException as exc:
            queue.errors.append(exc)
            self._stop.set()

    def _sent_total(self) -> int:
        if self._live is not None:
            return int(self._live.stats().sent)
        return sum(q.tx_loop.frames for q in self._queues if q.tx_loop is not None)

    def _receiver_queued(self) -> bool:
        """Frames wait in a receiver's RX ring (a late receiver, not lost frames)."""
        return any(q.rx.rings()["rx"].entries for q in self._queues if q.rx is not None and not q.rx.closed)

    def _received_total(self) -> int:
        return sum(q.rx_loop.frames for q in self._queues if q.rx_loop is not None)

    def _send_live(self) -> None:
        try:
            self._live.run(self._stop)
        except BaseException as exc:
            self._queues[0].errors.append(exc)
            self._stop.set()

    def start(self) -> None:
        self._started = time.monotonic()
        for queue in self._queues:
            if queue.rx is not None:
                self._threads.append(threading.Thread(target=self._receive, args=(queue,),
                                                      name=f"xdptest-rx{queue.index}", daemon=True))
        if self._live is not None:
            senders = [threading.Thread(target=self._send_live, name="xdptest-live", daemon=True)]
        else:
            senders = [threading.Thread(target=self._send, args=(q,), name=f"xdptest-tx{q.index}", daemon=True)
                       for q in self._queues]
        for t in self._threads + senders:
            t.start()

        def senders_done() -> None:
            for t in senders:
                t.join()
            self._tx_elapsed = time.monotonic() - self._started
            self._senders_done.set()

        waiter = threading.Thread(target=senders_done, name="xdptest-tx-join", daemon=True)
        waiter.start()
        self._threads += [*senders, waiter]

    def sample(self) -> Sample:
        """The counters of every queue now (for per-interval rows)."""
        received = corrupted = 0
        histogram = [0] * HIST_BUCKETS
        for q in self._queues:
            if q.verifier is not None:
                t = q.verifier.totals()
                received, corrupted = received + t.stamped, corrupted + t.corrupted
                histogram = [a + b for a, b in zip(histogram, q.verifier.histogram(), strict=True)]
        return Sample(time.monotonic() - self._started, self._sent_total(), received, corrupted, histogram)

    def progress(self) -> Progress:
        return Progress(time.monotonic() - self._started, self._sent_total(), self._received_total())

    def wait(self, on_progress: Callable[[Progress], None] | None = None, interval: float = 0.1) -> None:
        """Wait for the run to end; Ctrl-C stops it early (the report then says so)."""
        def tick() -> None:
            signals.check()  # a stop signal whose raise was swallowed elsewhere (an at-fork hook)
            if on_progress is not None:
                on_progress(self.progress())
            if self._intervals is not None:
                self._intervals.tick(time.monotonic() - self._started)

        if self._intervals is not None:
            interval = min(interval, self._intervals.every / 10)
        try:
            wait_for_threads(self._threads, interval, tick)
        except KeyboardInterrupt as exc:
            signals.taken(exc)
            self.interrupted_by = str(exc) if isinstance(exc, signals.Terminated) else "interrupted by Ctrl-C"
            self._stop.set()
            self._senders_done.set()
            for t in self._threads:
                t.join()
        if self._intervals is not None:
            self._intervals.finish()
        for q in self._queues:
            if q.errors:
                raise q.errors[0]

    @property
    def interrupted(self) -> bool:
        return bool(self.interrupted_by)

    def stop(self) -> None:
        self._stop.set()

    # --- report --------------------------------------------------------------------------------

    def captured_records(self) -> list[tuple[int, int, bytes]]:
        """(receive time as CLOCK_REALTIME ns, queue, frame) of the first ``capture=N`` frames
        the receivers copied out, all queues merged in time order."""
        records = [(t, q.index, f) for q in self._queues if q.rx_loop is not None
                   for t, f in zip(q.rx_loop.copied_times(), q.rx_loop.copied_frames(), strict=True)]
        records.sort(key=lambda r: (r[0], r[1]))  # stable: a queue's batch keeps its order
        return records[: self._capture]

    def captured(self) -> list[bytes]:
        """The frames of :meth:`captured_records`."""
        return [f for _, _, f in self.captured_records()]

    def write_capture(self, path: str) -> int:
        """Write the captured frames as pcapng: one interface per queue, each frame with its own
        receive time. Returns how many frames were written."""
        assert self.dst is not None
        records = self.captured_records()
        names = [f"{self.dst} queue {q} (AF_XDP RX)" for q in range(self.options.queues)]
        with PcapngWriter(path, names, application=f"xdptest {__version__}") as out:
            for ts, queue, frame in records:
                out.write_packet(queue, ts, frame)
        return len(records)

    def sent_frames(self, n: int) -> list[bytes]:
        """The first ``n`` frames of stream 0 as its sender built them (stamp timestamps zeroed)."""
        sent = min(n, self._stream_sent().get(0, 0))
        if self.options.verbatim:
            return [self.templates[i % len(self.templates)].frame for i in range(sent)]
        return GenSpec(self.templates, self.varies, stream=0, seed=self.options.seed).build(0, sent, 0) \
            if sent else []

    def _stream_sent(self) -> dict[int, int]:
        """Frames sent per stream id."""
        if self._live is not None:
            return dict(self._live.stats().per_stream)
        return {q.index: q.tx_loop.frames for q in self._queues if q.tx_loop is not None}

    def report(self) -> TrafficReport:
        o = self.options
        r = TrafficReport(queues=o.queues, frame_size=o.frame_size, need_wakeup=o.need_wakeup,
                          packet_size=self.templates[0].size, engine=self.engine,
                          multi_buffer=self.multi_buffer)
        first = self._queues[0]
        sock = first.tx or first.rx
        if sock is not None:
            r.bind_mode = sock.bind_mode
            if sock.fallback_reason:
                r.notes.append(f"zero-copy unavailable, copy mode used: {sock.fallback_reason}")
        r.notes += self.notes
        sent_by_stream = self._stream_sent()
        r.sent = sum(sent_by_stream.values())
        total = Verifier()
        for q in self._queues:
            stats: dict[str, int] = {}
            entry: dict[str, Any] = {"queue": q.index}
            for s in (q.tx, q.rx):
                if s is not None:
                    add_stats(stats, s.statistics())
            if q.tx_loop is not None:
                entry["sent"] = q.tx_loop.frames
                entry["sent_bytes"] = q.tx_loop.nbytes
            if q.rx_loop is not None and q.verifier is not None:
                entry["received"] = q.rx_loop.frames
                if o.verbatim:  # duplicates and loss of each content need the count sent
                    q.verifier.frames_sent(sent_by_stream.get(q.index, 0))
                total.merge(q.verifier)
            entry["xdp_stats"] = stats
            add_stats(r.xdp_stats, stats)
            r.per_queue.append(entry)
        if self._live is not None:
            loop_s = self._live.stats().elapsed_s
            sent_bytes = r.sent * self.templates[0].size  # one template, never a varied size
        else:
            loop_s = max(q.tx_loop.elapsed_ns for q in self._queues if q.tx_loop is not None) / 1e9
            sent_bytes = sum(e["sent_bytes"] for e in r.per_queue)
        # The senders' own loop time: thread start-up and the final completion wait excluded.
        r.duration_s = round(loop_s or self._tx_elapsed or (time.monotonic() - self._started), 6)
        if r.duration_s > 0:
            r.tx_pps = round(r.sent / r.duration_s, 1)
            r.tx_gbps = round(sent_bytes * 8 / r.duration_s / 1e9, 4)
            if o.rate:
                r.rate_error = round((r.tx_pps - o.rate) / o.rate, 5)
        r.config = self._config()
        r.intervals = list(self._intervals.rows) if self._intervals is not None else []
        r.environment = environment()
        if self.dst is not None:
            bad = [b for q in self._queues if q.verifier is not None for b in q.verifier.bad_frames()]
            fill_received(r, total, sent_by_stream, bad[: self.options.keep_bad])
            if o.verbatim:
                r.notes.append("verbatim: the capture's frames were sent unchanged and matched by content "
                               "(no stamp, so no latency)")
                r.missing_frames = self._missing(sent_by_stream.get(0, 0))
        else:
            r.notes.append("transmit only: nothing was verified")
        if self._schedule is not None:
            r.replay_gap_error_ns = self._gap_errors()
        if self._tx_pcap is not None:
            r.tx_pcap = str(self._tx_pcap.path)
        if self.interrupted:
            r.notes.append(f"{self.interrupted_by}: the figures cover the run up to then")
        return r

    def _config(self) -> dict[str, Any]:
        """Every option of the run as given, the engine that ran, and what ``expect`` was."""
        config = {f.name: getattr(self.options, f.name) for f in dataclass_fields(self.options) if f.name != "extra"}
        config["vary"] = list(self.options.vary)
        config["engine_used"] = self.engine
        expect = self._expect
        config["expect"] = (None if expect is None else getattr(expect, "__qualname__", repr(expect))
                            if callable(expect) else [expect] if isinstance(expect, str) else list(expect))
        return config

    def _missing(self, sent: int) -> list[dict[str, Any]]:
        """--verbatim: which of the capture's frames did not all arrive (the first ``keep_bad``)."""
        verifier = self._queues[0].verifier
        assert verifier is not None
        from scapy.layers.l2 import Ether

        return [{"frame": i, "missing": n, "summary": Ether(self.templates[i].frame).summary()}
                for i, n in verifier.missing(sent, self.options.keep_bad)]

    def _gap_errors(self) -> dict[str, int]:
        loop = self._queues[0].tx_loop
        assert loop is not None
        samples, worst = loop.gap_samples, loop.gap_err_max_ns
        values = percentiles(loop.gap_histogram(), QUANTILES, 0, worst) if samples else [0] * len(QUANTILES)
        return {**dict(zip(LATENCY_KEYS[1:-1], values, strict=True)), "max": worst, "samples": samples}

    def close(self) -> None:
        self._stop.set()
        self._senders_done.set()
        for t in self._threads:
            t.join(timeout=5)
        self._stack.close()

    def __enter__(self) -> TrafficRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_threads(threads: list[threading.Thread], interval: float,
                     on_tick: Callable[[], None] | None = None) -> None:
    """Wait until every thread has ended, calling ``on_tick`` once per ``interval`` seconds at most
    (joining a thread that is still alive, so threads that ended early cost no spinning)."""
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            return
        alive[0].join(timeout=interval)
        if on_tick is not None:
            on_tick()


def run_traffic(src: Endpoint, dst: Endpoint | None, options: TrafficOptions | None = None, *,
                on_progress: Callable[[Progress], None] | None = None, rx_program: XdpProgram | None = None,
                capture: int = 0, expect: Expect = None, **kwargs: Any) -> TrafficReport:
    """Send from ``src`` through AF_XDP and verify at ``dst`` (None: transmit only).

    Options come as a :class:`TrafficOptions` or as keyword arguments of the same names
    (``count=``, ``rate=``, ``vary=``, ``packet=``, ``queues=``, ...). Every frame received is
    compared byte for byte with the frame sent, or with ``expect(frame)`` where a program rewrites
    frames on purpose (``expect`` may also be rules such as ``"ip.ttl-=1"``; see
    :mod:`xdptest.expect`).
    """
    if options is None:
        options = TrafficOptions.from_kwargs(**kwargs)
    elif kwargs:
        options = options.with_(**kwargs)
    with TrafficRun(src, dst, options, rx_program=rx_program, capture=capture, expect=expect) as run:
        run.start()
        run.wait(on_progress)
        report = run.report()
        report.extra_frames = run.captured() if capture else []  # type: ignore[attr-defined]
        return report


__all__ = ["Progress", "TrafficReport", "TrafficRun", "XdpTestError", "build_templates", "run_traffic"]
