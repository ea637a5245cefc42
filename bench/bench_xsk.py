"""AF_XDP engine throughput on one veth pair, 64-byte frames, copy mode.

Rows, all measured in the same run (the machine is shared and noisy: read the ratios):
  TX  C loop          XskSocket.run_tx: the whole loop in C
  TX  Python bursts   XskSocket.tx_burst called from a Python loop (batch 64)
  TX  C loop stamped  run_tx building each frame with the stamp generator (what xdptest-gen sends)
  TX  trafgen -P1     netsniff-ng's AF_PACKET TX ring, one CPU, same pair
  RX  C loop          XskSocket.run_rx, every frame verified, poll() when the ring is empty
  RX  Python bursts   XskSocket.rx_burst from a Python loop, the same
  RX  C busy-spin     run_rx never sleeping (suffers badly on a shared 2-vCPU guest)
TX rows count what the receiver's native XDP_DROP program saw (ethtool's xdp_packets).
RX rows are fed by in-kernel live frames (BPF_PROG_TEST_RUN on the built-in ``tx`` program,
from the sending end), which outruns any receiver here.

Run as root: ``.venv/bin/python bench/bench_xsk.py [--duration 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from procs import tool  # this directory

from xdptest import packets
from xdptest._native import xsk as _libxsk
from xdptest._native.gen import GenSpec
from xdptest.bpf import XdpProgram
from xdptest.netns import Endpoint, VethPair
from xdptest.nsexec import run_in_netns
from xdptest.xsk import XskLoop, XskSocket

# Both ends run on this one machine; RX rows pin the live-frame generator (and with it the
# receiving veth's NAPI) to one CPU and the receiving loop to another.

FRAME = 64
RX_VARIANTS = [("RX  C loop (run_rx, poll() when idle, verified)", False, False),
               ("RX  Python bursts (rx_burst 64, poll() when idle, verified)", True, False),
               ("RX  C loop busy-spin (run_rx, verified)", False, True)]
_CPUS = sorted(os.sched_getaffinity(0))
GEN_CPU, RX_CPU = _CPUS[0], _CPUS[-1]  # RX rows: generator and receiver on different CPUs


@dataclass
class Row:
    name: str
    pps: float | None
    note: str = ""


def udp_frame(src: Endpoint, dst: Endpoint, seq: int) -> bytes:
    """A 64-byte Ethernet/IPv4/UDP frame; ``seq`` goes in the IP id and the payload."""
    mac = bytes.fromhex
    ip_src = bytes(int(x) for x in (src.ipv4 or "198.18.0.1").split("."))
    ip_dst = bytes(int(x) for x in (dst.ipv4 or "198.18.0.2").split("."))
    payload = seq.to_bytes(4, "big") * 4 + b"\0" * (FRAME - 42 - 16)
    ip = (b"\x45\x00" + (20 + 8 + len(payload)).to_bytes(2, "big") + (seq & 0xFFFF).to_bytes(2, "big")
          + b"\x00\x00\x40\x11\x00\x00" + ip_src + ip_dst)
    udp = b"\x03\xe8\x00\x09" + (8 + len(payload)).to_bytes(2, "big") + b"\x00\x00"
    return (mac(dst.mac.replace(":", "")) + mac(src.mac.replace(":", "")) + b"\x08\x00" + ip + udp
            + payload)


def xdp_packets(end: Endpoint) -> int:
    out = end.netns.run("ethtool", "-S", end.ifname).stdout
    return sum(int(m) for m in re.findall(r"rx_queue_\d+_xdp_packets: (\d+)", out))


def measure_rx_side(end: Endpoint, duration: float, action: Callable[[], None]) -> float:
    """pps that reached ``end``'s XDP program while ``action`` runs (after a short warm-up)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while not stop.is_set():
                action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    before, start = xdp_packets(end), time.monotonic()
    time.sleep(duration)
    after, elapsed = xdp_packets(end), time.monotonic() - start
    stop.set()
    thread.join()
    if errors:
        raise errors[0]
    return (after - before) / elapsed


@contextlib.contextmanager
def dropping_pair(queues: int = 1) -> Iterator[VethPair]:
    """A fresh pair whose far end drops every frame in native XDP. Each tool gets one, so that
    nothing another row left on a pair can reach the row measured there. A slowdown once put down
    to the kernel (a veth that AF_PACKET had sent through staying slower for every later sender)
    was trafgen's forked worker, which outlived the SIGINT sent to its parent and went on sending
    on the pair; tools now run through ``procs.tool``, which stops the whole process group and
    checks that nothing is left. After that, a later sender on the pair trafgen used runs at
    0.97-1.06x its rate on a fresh pair."""
    with VethPair(queues=queues) as pair, XdpProgram.load("drop") as drop:
        drop.attach(pair.b, mode="native")
        yield pair


def tx_rows(pair: VethPair, duration: float, rounds: int) -> list[Row]:
    templates = [udp_frame(pair.a, pair.b, i) for i in range(64)]
    expr = (f"Ether(src='{pair.a.mac}', dst='{pair.b.mac}')/IP(src='{pair.a.ipv4}', "
            f"dst='{pair.b.ipv4}')/UDP(sport=1000, dport=9)")
    stamp_gen = GenSpec([packets.from_scapy(expr, FRAME)], [], stream=0)
    samples: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    with XdpProgram.load("drop") as drop:
        drop.attach(pair.b, mode="native")
        for _ in range(rounds):  # interleaved rounds, medians: the machine is noisy
            with XskSocket(pair.a, rx_size=0, tx_size=2048, comp_size=2048) as tx:
                loop = XskLoop(templates, batch=64, duration=0.2)
                burst = XskLoop(templates, batch=64)

                def python_bursts(sock: XskSocket = tx, lp: XskLoop = burst) -> None:
                    deadline = time.monotonic() + 0.2
                    while time.monotonic() < deadline:
                        for _ in range(64):
                            sock.tx_burst(lp)

                def c_loop(sock: XskSocket = tx, lp: XskLoop = loop) -> None:
                    sock.run_tx(lp)

                stamped = XskLoop(batch=64, duration=0.2, gen=stamp_gen)

                def c_stamped(sock: XskSocket = tx, lp: XskLoop = stamped) -> None:
                    sock.run_tx(lp)

                for name, action in (("TX  C loop (run_tx)", c_loop),
                                     ("TX  Python bursts (tx_burst, 64)", python_bursts),
                                     ("TX  C loop, stamped frames (run_tx, generator)", c_stamped)):
                    samples.setdefault(name, []).append(measure_rx_side(pair.b, duration, action))
            with dropping_pair() as fresh:  # a pair of its own for each tool (see dropping_pair)
                row = trafgen_row(fresh, udp_frame(fresh.a, fresh.b, 0), duration)
            if row.pps is not None:
                samples.setdefault(row.name, []).append(row.pps)
            else:
                notes[row.name] = row.note
    rows = [Row(name, statistics.median(v)) for name, v in samples.items()]
    return rows + [Row(name, None, note) for name, note in notes.items() if name not in samples]


def trafgen_row(pair: VethPair, frame: bytes, duration: float) -> Row:
    name = "TX  trafgen -P1 (AF_PACKET)"
    if shutil.which("trafgen") is None:
        return Row(name, None, "trafgen not found: apt-get install netsniff-ng")
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")
    argv = ["ip", "netns", "exec", pair.a.netns.name, "trafgen", "-o", pair.a.ifname, "-i",
            cfg.name, "-P1", "-q"]
    if len(frame) > 2048:  # trafgen's TX ring slots hold 2048 bytes unless told otherwise
        argv.append("--jumbo-support")
    pps = None
    try:
        # A file, not a pipe, for stderr: reading a pipe would wait for every process holding it.
        with tempfile.TemporaryFile("w+") as err:
            with tool(argv, stdout=subprocess.DEVNULL, stderr=err) as proc:  # trafgen's worker goes with it
                time.sleep(0.5)
                if proc.poll() is None:
                    before, start = xdp_packets(pair.b), time.monotonic()
                    time.sleep(duration)
                    pps = (xdp_packets(pair.b) - before) / (time.monotonic() - start)
            if pps is None:
                err.seek(0)
                return Row(name, None, f"trafgen exited: {err.read().strip()[:120]}")
    finally:
        os.unlink(cfg.name)
    return Row(name, pps)


def rx_rows(pair: VethPair, duration: float, rounds: int) -> list[Row]:
    # The tx program swaps MACs; the kernel recycles live-frame pages without always
    # re-initialising them, so frames arrive swapped or swapped back: both are templates.
    arriving = udp_frame(pair.a, pair.b, 7)
    leaving = arriving[6:12] + arriving[0:6] + arriving[12:]
    samples: dict[str, list[float]] = {name: [] for name, *_ in RX_VARIANTS}
    totals = {name: [0, 0] for name in samples}  # verified, bad
    with XdpProgram.load("tx") as reflect, XskSocket(pair.b, rx_size=4096, tx_size=0,
                                                   fill_size=4096) as rx:
        stop = threading.Event()

        def generate() -> None:
            os.sched_setaffinity(0, {GEN_CPU})  # this thread; its NAPI softirqs follow it
            while not stop.is_set():
                _libxsk.live_frames(reflect.fd, leaving, pair.a.ifindex, 100_000)

        feeder = threading.Thread(target=lambda: run_in_netns(pair.a.netns.name, generate))
        feeder.start()
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {RX_CPU})  # the receiving (main) thread
        try:
            time.sleep(0.2)
            for _ in range(rounds):  # interleaved rounds, medians: the machine is noisy
                for name, python, spin in RX_VARIANTS:
                    loop = XskLoop([arriving, leaving], batch=64, verify=True, poll_ms=1,
                                   busy_spin=spin)
                    if python:
                        start = time.monotonic()
                        deadline = start + duration
                        while time.monotonic() < deadline:
                            for _ in range(64):
                                if not rx.rx_burst(loop):
                                    rx.poll(timeout=0.001)
                        elapsed = time.monotonic() - start
                        st = loop.stats()
                    else:
                        loop.set_limits(duration=duration)
                        st = rx.run_rx(loop)
                        elapsed = st["elapsed_ns"] / 1e9
                    samples[name].append(st["frames"] / elapsed)
                    totals[name][0] += st["verified"]
                    totals[name][1] += st["mismatched"] + st["bad_descs"]
        finally:
            os.sched_setaffinity(0, saved)
            stop.set()
            feeder.join()
    rows = []
    for name, (verified, bad) in totals.items():
        note = f"{verified} verified, {bad} bad" + ("" if bad == 0 else " (FAILED)")
        rows.append(Row(name, statistics.median(samples[name]), note))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per sample")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved samples per row")
    args = parser.parse_args()
    with VethPair() as pair:
        rows = tx_rows(pair, args.duration, args.rounds)
    with VethPair() as pair:
        rows += rx_rows(pair, args.duration, args.rounds)
    by = {r.name.split(" (")[0]: r for r in rows}
    print(f"{'row':<60} {'Mpps':>7}  note")
    for r in rows:
        pps = f"{r.pps / 1e6:7.3f}" if r.pps is not None else "    n/a"
        print(f"{r.name:<60} {pps}  {r.note}")
    print()

    def ratio(a: str, b: str, label: str) -> None:
        ra, rb = by.get(a), by.get(b)
        if ra and rb and ra.pps and rb.pps:
            print(f"{label:<60} {ra.pps / rb.pps:7.2f}x")
        else:
            print(f"{label:<60}     n/a  (a row could not run)")

    ratio("TX  C loop", "TX  trafgen -P1", "C TX loop / trafgen -P1")
    ratio("TX  Python bursts", "TX  C loop", "Python-driven TX / C TX loop")
    ratio("RX  Python bursts", "RX  C loop", "Python-driven RX / C RX loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
