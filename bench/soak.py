"""Soak: verified AF_XDP traffic, closed loop, for ten minutes, watching the process for leaks.

One kit ``VethPair`` lives for the whole soak. Traffic runs in consecutive ``TrafficRun``s of
``--run-seconds`` (default 10 s) each, 64-byte frames, the AF_XDP engine, closed loop
(``window=4096``): every run opens and closes its own sockets, UMEMs and redirect program, so a
leak in set-up or teardown shows up as growth, not only a leak in the steady state. The C loops
do all per-frame work (building, stamping, verifying); Python only samples between runs.

Every ``--sample-every`` seconds (default 10; taken at the first gap between runs after that)
the soak records, for this process: RSS (VmRSS), the C heap in use (glibc's ``mallinfo2``:
allocated bytes, mmapped chunks included; it tells memory still held from a heap that does not
shrink), open fds, threads; for the system: BPF programs and maps, and ``xt*`` network namespaces
(the kit's, those of this process apart). Samples are taken between runs, so no run's own
sockets, programs or maps are counted. The collector is left alone during the soak: memory that
only a full ``gc.collect()`` gives back grows like a leak in a long-lived process, so it counts.
At the end one collection is made and what it gave back is printed, for the diagnosis only.

The machine is shared, so other processes (test suites) load BPF objects of their own while the
soak runs. The ``progs`` and ``maps`` columns therefore count every program and map on the
system (``bpftool prog/map show``) except those another process holds an fd to (read from
``/proc/PID/fdinfo``), and the maps such programs use. An object this process leaks still
counts, with an fd or without one (a program left attached, a map a leaked program keeps). A
sample that differs from the previous one is retaken up to three times, 0.2 s apart, and the
smallest count kept: another process creating or closing an object between the two listings
can make a count wrong for a moment; a leak stays. ``sys`` shows the raw system-wide counts.

Targets (the hardening issue): 10 minutes of verified traffic with zero loss (every run:
lost, duplicated and corrupted all 0); after the warm-up (``--warmup``, default 60 s), no growth:
the first sample after the warm-up and the last must have equal fds, programs, maps, threads and
namespaces of this process, and RSS may grow by at most ``--rss-tolerance-mib`` (default 2 MiB,
an absolute bound rather than a percentage, so that it does not scale with what the imports
cost: with about 55 runs after the warm-up, 40 KiB kept per run fails it). After the pair is
removed, none of the soak's namespaces may remain. Exit status 1 if any check fails, 130 if
interrupted (Ctrl-C, SIGTERM or SIGHUP: the pair is removed on the way out).

Run as root: ``.venv/bin/python bench/soak.py [--duration 600] [--run-seconds 10]
[--sample-every 10] [--warmup 60]``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xdptest import registry
from xdptest.netns import VethPair
from xdptest.nsexec import NETNS_RUN_DIR
from xdptest.options import DEFAULT_WINDOW, TrafficOptions
from xdptest.report import TrafficReport
from xdptest.signals import terminate_like_interrupt
from xdptest.traffic import TrafficRun

WINDOW = DEFAULT_WINDOW  # closed loop: the sender stays at most this many frames ahead of the receiver
RESAMPLES = 3  # a BPF count that changed is retaken this many times (see the module doc)
RESAMPLE_GAP_S = 0.2
MIB = 1 << 20


@dataclass
class Totals:
    """Accumulated over every run."""

    runs: int = 0
    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    foreign: int = 0
    runs_with_loss: int = 0
    loop_s: float = 0.0  # the senders' own loop time, set-up and teardown excluded

    def add(self, r: TrafficReport) -> None:
        self.runs += 1
        self.sent += r.sent
        self.received += r.received
        self.lost += r.lost
        self.duplicated += r.duplicated
        self.corrupted += r.corrupted
        self.reordered += r.reordered
        self.foreign += r.foreign
        self.loop_s += r.duration_s
        if r.lost or r.duplicated or r.corrupted or r.sent == 0:
            self.runs_with_loss += 1


@dataclass(frozen=True)
class BpfCounts:
    progs: int  # on the system, less what other processes hold
    maps: int
    sys_progs: int  # on the system
    sys_maps: int


@dataclass(frozen=True)
class Sample:
    t: float
    runs: int
    sent: int
    lost: int
    loop_s: float
    rss: int  # bytes
    heap: int | None  # bytes of C heap in use (None: not glibc)
    fds: int
    threads: int
    bpf: BpfCounts
    netns_ours: int
    netns_xt: int


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    started: float = 0.0


# --- what a sample reads ------------------------------------------------------------------------

def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        func = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc before 2.33
        return None
    func.restype = _MallInfo2
    return func


MALLINFO2 = _mallinfo2()


def heap_bytes() -> int | None:
    """Bytes the C allocator has handed out and not had back (mmapped chunks included)."""
    if MALLINFO2 is None:
        return None
    info = MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def xt_namespaces() -> tuple[int, int]:
    """(this process's namespaces, every ``xt*`` namespace) under /run/netns."""
    try:
        names = {n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(registry.PREFIX)}
    except FileNotFoundError:
        names = set()
    return len(names & set(registry.owned())), len(names)


def bpftool_list(kind: str) -> list[dict[str, object]]:
    out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")  # type: ignore[no-any-return]


def _held_ids(pid: str) -> tuple[set[int], set[int]]:
    """Program and map ids that process ``pid`` holds fds to (links count as their program)."""
    progs: set[int] = set()
    maps: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or a kernel thread
        return progs, maps
    for fd in fds:
        with contextlib.suppress(OSError):
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("anon_inode:bpf"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key == "prog_id":
                        progs.add(int(value))
                    elif key == "map_id":
                        maps.add(int(value))
    return progs, maps


def held_by_others() -> tuple[set[int], set[int]]:
    """Program and map ids that processes other than this one hold fds to."""
    me = str(os.getpid())
    progs: set[int] = set()
    maps: set[int] = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid != me:
            p, m = _held_ids(pid)
            progs |= p
            maps |= m
    return progs, maps


def bpf_counts_once() -> BpfCounts:
    progs, maps = bpftool_list("prog"), bpftool_list("map")
    other_progs, other_maps = held_by_others()
    for prog in progs:  # a map that another process's program uses is that process's too
        if prog["id"] in other_progs:
            other_maps.update(prog.get("map_ids", []))  # type: ignore[arg-type]
    return BpfCounts(progs=sum(1 for p in progs if p["id"] not in other_progs),
                     maps=sum(1 for m in maps if m["id"] not in other_maps),
                     sys_progs=len(progs), sys_maps=len(maps))


def bpf_counts(previous: BpfCounts | None) -> BpfCounts:
    """Counts, retaken while they differ from ``previous`` and the smallest kept (module doc)."""
    best = bpf_counts_once()
    for _ in range(RESAMPLES):
        if previous is None or (best.progs, best.maps) == (previous.progs, previous.maps):
            break
        time.sleep(RESAMPLE_GAP_S)
        again = bpf_counts_once()
        best = BpfCounts(min(best.progs, again.progs), min(best.maps, again.maps), again.sys_progs,
                         again.sys_maps)
    return best


def take_sample(soak: Soak) -> Sample:
    tot = soak.totals
    previous = soak.samples[-1].bpf if soak.samples else None
    ours, xt = xt_namespaces()
    sample = Sample(t=time.monotonic() - soak.started, runs=tot.runs, sent=tot.sent, lost=tot.lost,
                    loop_s=tot.loop_s, rss=rss_bytes(), heap=heap_bytes(), fds=open_fds(), threads=thread_count(),
                    bpf=bpf_counts(previous), netns_ours=ours, netns_xt=xt)
    soak.samples.append(sample)
    return sample


# --- the table ----------------------------------------------------------------------------------

HEADER = (f"{'t s':>6} {'runs':>5} {'sent':>13} {'lost':>5} {'Mpps':>6} {'RSS MiB':>8} {'heap MiB':>8} {'fds':>4} "
          f"{'progs':>5} {'maps':>5} {'sys p/m':>9} {'threads':>7} {'netns':>6}")


def row(s: Sample, before: Sample | None, warmup: float) -> str:
    loop_s = s.loop_s - (before.loop_s if before else 0.0)
    mpps = (s.sent - (before.sent if before else 0)) / loop_s / 1e6 if loop_s > 0 else 0.0
    sys_pm = f"{s.bpf.sys_progs}/{s.bpf.sys_maps}"
    netns = f"{s.netns_ours}/{s.netns_xt}"
    heap = f"{s.heap / MIB:8.2f}" if s.heap is not None else f"{'-':>8}"
    note = "  warm-up" if s.t < warmup else ""
    return (f"{s.t:6.1f} {s.runs:5d} {s.sent:13,d} {s.lost:5d} {mpps:6.3f} {s.rss / MIB:8.2f} {heap} {s.fds:4d} "
            f"{s.bpf.progs:5d} {s.bpf.maps:5d} {sys_pm:>9} {s.threads:7d} {netns:>6}{note}")


def print_row(soak: Soak, warmup: float) -> None:
    s = soak.samples[-1]
    before = soak.samples[-2] if len(soak.samples) > 1 else None
    print(row(s, before, warmup), flush=True)


# --- running ------------------------------------------------------------------------------------

def one_run(pair: VethPair, seconds: float, queues: int) -> TrafficReport:
    """One closed-loop verified run; Ctrl-C/SIGTERM during it ends the soak."""
    options = TrafficOptions(duration=seconds, window=WINDOW, queues=queues, engine="afxdp")
    with TrafficRun(pair.a, pair.b, options) as run:
        run.start()
        run.wait()
        if run.interrupted:  # wait() swallows the KeyboardInterrupt to stop the threads cleanly
            raise KeyboardInterrupt
        return run.report()


def check_run(r: TrafficReport, index: int) -> None:
    if r.lost or r.duplicated or r.corrupted or r.sent == 0:
        print(f"  run {index}: sent {r.sent} received {r.received} lost {r.lost} duplicated {r.duplicated} "
              f"corrupted {r.corrupted} reordered {r.reordered} foreign {r.foreign}; "
              f"xdp_stats {r.xdp_stats}", flush=True)


def soak_loop(pair: VethPair, args: argparse.Namespace, soak: Soak) -> None:
    soak.started = time.monotonic()
    take_sample(soak)
    print_row(soak, args.warmup)
    next_sample = args.sample_every
    while (left := args.duration - (time.monotonic() - soak.started)) >= 1.0:
        report = one_run(pair, min(args.run_seconds, left), args.queues)
        soak.totals.add(report)
        check_run(report, soak.totals.runs)
        now = time.monotonic() - soak.started
        if now >= next_sample:
            take_sample(soak)
            print_row(soak, args.warmup)
            while next_sample <= now:
                next_sample += args.sample_every
    if soak.samples[-1].runs != soak.totals.runs:
        take_sample(soak)
        print_row(soak, args.warmup)


# --- the verdict --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    text: str


def growth_checks(samples: list[Sample], warmup: float, rss_tolerance: int) -> list[Check]:
    after = [s for s in samples if s.t >= warmup]
    if len(after) < 2:
        return [Check("growth", False, f"fewer than two samples after the {warmup:.0f} s warm-up: "
                                       "nothing to compare (lengthen --duration)")]
    first, last = after[0], after[-1]
    runs = max(1, last.runs - first.runs)
    rss = last.rss - first.rss
    heap = "" if first.heap is None or last.heap is None else \
        f", C heap in use {(last.heap - first.heap) / MIB:+.2f} MiB"
    checks = [Check("rss", rss <= rss_tolerance,
                    f"RSS {rss / MIB:+.2f} MiB ({rss / runs / 1024:+.1f} KiB/run, limit "
                    f"{rss_tolerance / MIB:.0f} MiB{heap})")]
    for name, a, b in (("fds", first.fds, last.fds), ("progs", first.bpf.progs, last.bpf.progs),
                       ("maps", first.bpf.maps, last.bpf.maps), ("threads", first.threads, last.threads),
                       ("netns", first.netns_ours, last.netns_ours)):
        checks.append(Check(name, a == b, f"{name} {b - a:+d}" + ("" if a == b else f" ({a} -> {b})")))
    return checks


def after_collection() -> str:
    """What one full collection gives back (diagnosis: memory held by reference cycles)."""
    rss, heap = rss_bytes(), heap_bytes()
    found = gc.collect()
    line = f"after gc.collect() ({found} objects): RSS {rss / MIB:.2f} -> {rss_bytes() / MIB:.2f} MiB"
    if heap is not None:
        line += f", C heap in use {heap / MIB:.2f} -> {(heap_bytes() or 0) / MIB:.2f} MiB"
    return line


def loss_check(t: Totals) -> Check:
    ok = t.runs > 0 and t.runs_with_loss == 0 and t.lost == t.duplicated == t.corrupted == 0
    return Check("loss", ok, f"lost {t.lost}, duplicated {t.duplicated}, corrupted {t.corrupted}, "
                             f"runs with loss {t.runs_with_loss}/{t.runs}")


def leftover_check(names: list[str]) -> Check:
    left = [n for n in names if os.path.exists(os.path.join(NETNS_RUN_DIR, n))]
    return Check("leftovers", not left, f"namespaces left: {', '.join(left) or 'none'}")


def verdict(soak: Soak, checks: list[Check], warmup: float, interrupted: bool) -> bool:
    t = soak.totals
    wall = soak.samples[-1].t if soak.samples else 0.0
    mpps = t.sent / t.loop_s / 1e6 if t.loop_s else 0.0
    after = [s for s in soak.samples if s.t >= warmup]
    span = f"t={after[0].t:.0f} -> {after[-1].t:.0f} s" if len(after) > 1 else "none"
    ok = not interrupted and all(c.ok for c in checks)
    for c in checks:
        if not c.ok:
            print(f"FAILED {c.name}: {c.text}")
    word = "INTERRUPTED" if interrupted else ("PASS" if ok else "FAIL")
    print(f"{word}: {t.runs} runs in {wall:.1f} s, sent {t.sent:,} received {t.received:,}, "
          f"{mpps:.3f} Mpps average (senders' loop time {t.loop_s:.1f} s), reordered {t.reordered}, "
          f"foreign {t.foreign}; " + "; ".join(c.text for c in checks) + f"; growth over {span}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic in all")
    parser.add_argument("--run-seconds", type=float, default=10.0, help="seconds per traffic run")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of samples not compared")
    parser.add_argument("--rss-tolerance-mib", type=float, default=2.0, help="RSS growth allowed after warm-up")
    parser.add_argument("--queues", type=int, default=1, help="queues of the veth pair and of each run")
    args = parser.parse_args()
    soak = Soak()
    interrupted = False
    names: list[str] = []
    print(f"soak: {args.duration:.0f} s of closed-loop verified AF_XDP traffic (window {WINDOW}) in runs of "
          f"{args.run_seconds:.0f} s; warm-up {args.warmup:.0f} s; progs/maps: system-wide less other "
          "processes' (sys: system-wide); netns: this process's/all xt*", flush=True)
    print(HEADER, flush=True)
    try:
        with terminate_like_interrupt(), VethPair(queues=args.queues) as pair:
            names = [pair.a.netns.name, pair.b.netns.name]
            soak_loop(pair, args, soak)
            print(after_collection(), flush=True)
    except KeyboardInterrupt:
        interrupted = True
    checks = [loss_check(soak.totals), *growth_checks(soak.samples, args.warmup,
                                                      int(args.rss_tolerance_mib * MIB)),
              leftover_check(names)]
    ok = verdict(soak, checks, args.warmup, interrupted)
    return 130 if interrupted else (0 if ok else 1)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("soak: run as root")
    sys.exit(main())
