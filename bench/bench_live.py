"""Live-frames engine throughput on one veth pair, 64-byte frames, next to the AF_XDP engine and
trafgen measured in the same run (the machine is shared and noisy: read the ratios).

Rows:
  live, 1 thread            LiveGenerator on one CPU; receiver: native XDP_DROP (built-in ``drop``)
  live, 2 threads, 2 queues one thread per CPU, veth with 2 queues; the same receiver
  AF_XDP C loop             XskSocket.run_tx (copy mode), the same receiver
  trafgen -P1               netsniff-ng's AF_PACKET TX ring, the same receiver
  live -> AF_XDP verified   live, 1 thread on one CPU, into the kit's AF_XDP receiver (C loop,
                            every frame checked by the verifier) on the other CPU
TX rows count what the receiver's XDP program saw (ethtool's xdp_packets). The verified row counts
frames the verifier accepted and reports what was lost on the way (the sender's counter minus
what arrived) and any corrupted frame.

Run as root: ``.venv/bin/python bench/bench_live.py [--duration 2] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from bench_xsk import FRAME, Row, dropping_pair, measure_rx_side, trafgen_row, udp_frame, xdp_packets  # this directory

from xdptest import packets
from xdptest._native.gen import Verifier
from xdptest.live import LiveGenerator
from xdptest.netns import Endpoint, VethPair
from xdptest.xsk import Umem, XskLoop, XskSocket

CPUS = sorted(os.sched_getaffinity(0))
LIVE1, LIVE2, AFXDP, TRAFGEN, VERIFIED = ("live, 1 thread", "live, 2 threads, 2 queues", "AF_XDP C loop (run_tx)",
                                          "trafgen -P1 (AF_PACKET)", "live -> AF_XDP receiver, verified")


def template(src: Endpoint, dst: Endpoint) -> packets.Template:
    return packets.from_scapy(f"Ether(src='{src.mac}', dst='{dst.mac}')/IP(src='{src.ipv4}', "
                              f"dst='{dst.ipv4}')/UDP(sport=1000, dport=9)", FRAME)


def live_pps(pair: VethPair, threads: int, duration: float) -> float:
    """pps that reached pair.b's XDP program while a LiveGenerator ran flat out."""
    with LiveGenerator(pair.a, [template(pair.a, pair.b)], threads=threads) as gen:
        gen.start()
        try:
            time.sleep(0.3)
            before, start = xdp_packets(pair.b), time.monotonic()
            time.sleep(duration)
            after, elapsed = xdp_packets(pair.b), time.monotonic() - start
        finally:
            gen.stop()
            gen.wait()
    return (after - before) / elapsed


def drop_rows(duration: float, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {LIVE1: [], LIVE2: [], AFXDP: [], TRAFGEN: []}
    notes: dict[str, str] = {}
    for _ in range(rounds):  # interleaved rounds, medians
        with dropping_pair() as one:
            samples[LIVE1].append(live_pps(one, 1, duration))
        with dropping_pair(queues=2) as two:
            samples[LIVE2].append(live_pps(two, 2, duration))
        with dropping_pair() as one, XskSocket(one.a, rx_size=0, tx_size=2048, comp_size=2048) as tx:
            loop = XskLoop([udp_frame(one.a, one.b, i) for i in range(64)], batch=64, duration=0.2)

            def c_loop(sock: XskSocket = tx, lp: XskLoop = loop) -> None:
                sock.run_tx(lp)

            samples[AFXDP].append(measure_rx_side(one.b, duration, c_loop))
        with dropping_pair() as one:
            row = trafgen_row(one, udp_frame(one.a, one.b, 0), duration)
        if row.pps is None:
            notes[TRAFGEN] = row.note
        else:
            samples[TRAFGEN].append(row.pps)
    if notes:
        print(f"note: {TRAFGEN}: {notes[TRAFGEN]}")
    return samples


def verified_rows(duration: float, rounds: int) -> tuple[list[float], str]:
    """Live frames flat out into the AF_XDP receiver; every frame through the verifier."""
    rates: list[float] = []
    sent = received = corrupted = 0
    for _ in range(rounds):
        with VethPair() as pair, XskSocket(pair.b, umem=Umem(frame_size=2048, frames=16384), rx_size=8192,
                                           fill_size=8192, tx_size=0) as rx:
            verifier = Verifier()
            loop = XskLoop(batch=64, verifier=verifier, idle=0.5)

            def receive(sock: XskSocket = rx, lp: XskLoop = loop) -> None:
                os.sched_setaffinity(0, {CPUS[-1]})
                sock.run_rx(lp)

            with LiveGenerator(pair.a, [template(pair.a, pair.b)], cpus=[CPUS[0]], duration=duration) as gen:
                thread = threading.Thread(target=receive)
                thread.start()
                stats = gen.run()
            thread.join()
            totals = verifier.totals()
            span = (totals.last_ns - totals.first_ns) / 1e9
            rates.append(totals.stamped / span if span > 0 else 0.0)
            sent += stats.sent
            received += totals.stamped
            corrupted += totals.corrupted
    lost = sent - received
    note = (f"{received} verified of {sent} sent, {lost} lost ({100 * lost / max(sent, 1):.1f} %), "
            f"{corrupted} corrupted" + (" (FAILED)" if corrupted else ""))
    return rates, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per sample")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved samples per row")
    args = parser.parse_args()
    samples = drop_rows(args.duration, args.rounds)
    verified, note = verified_rows(args.duration, args.rounds)
    rows = [Row(name, statistics.median(v) if v else None) for name, v in samples.items()]
    rows.append(Row(VERIFIED, statistics.median(verified), note))
    by = {r.name: r for r in rows}
    print(f"{'row':<40} {'Mpps':>7}  note")
    for r in rows:
        pps = f"{r.pps / 1e6:7.3f}" if r.pps is not None else "    n/a"
        print(f"{r.name:<40} {pps}  {r.note}")
    print()
    for a in (LIVE1, LIVE2):
        for b in (AFXDP, TRAFGEN):
            ra, rb = by[a].pps, by[b].pps
            label = f"{a} / {b.split(' (')[0]}"
            print(f"{label:<40} " + (f"{ra / rb:7.2f}x" if ra and rb else "    n/a"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
