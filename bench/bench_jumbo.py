"""9000-byte frames on one veth pair (MTU 9000): xdptest-gen's multi-buffer AF_XDP sender against
trafgen with the same frame, measured in the same run, in Gbit/s of Ethernet frames (no FCS).

Rows (interleaved rounds, medians; the machine is shared and noisy: read the ratios):
  xdptest-gen TX            TrafficRun transmit-only, stamped 9000-byte frames, 3 descriptors each
  trafgen -P1               netsniff-ng's AF_PACKET TX ring, the same 9000-byte frame
  xdptest-gen verified      TrafficRun with its multi-buffer AF_XDP receiver checking every byte
TX rows count what the receiver's native XDP_DROP program (frags-aware) saw.

Target: xdptest-gen TX >= 1.0x trafgen at 9000 bytes.

Run as root: ``.venv/bin/python bench/bench_jumbo.py [--duration 3] [--rounds 3] [--size 9000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gen import gen_tx_pps
from bench_xsk import Row, trafgen_row, udp_frame
from procs import run_as_root

from xdptest.bpf import XdpProgram
from xdptest.netns import VethPair
from xdptest.traffic import run_traffic

MTU = 9000


def jumbo_frame(pair: VethPair, size: int) -> bytes:
    """The 64-byte UDP frame of the other benchmarks, its payload grown to ``size`` bytes."""
    small = udp_frame(pair.a, pair.b, 1)
    grow = size - len(small)
    ip_len = int.from_bytes(small[16:18], "big") + grow
    udp_len = int.from_bytes(small[38:40], "big") + grow
    return small[:16] + ip_len.to_bytes(2, "big") + small[18:38] + udp_len.to_bytes(2, "big") + small[40:] + bytes(grow)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=9000)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    gen_name = f"TX  xdptest-gen (AF_XDP copy, multi-buffer, {args.size} B)"
    verified_name = f"RX  xdptest-gen verified ({args.size} B, every byte checked)"
    for _ in range(args.rounds):
        # A fresh pair per tool: nothing one sender leaves on a pair can reach the next row.
        with VethPair(mtu=MTU) as pair, XdpProgram.load("drop") as drop:
            drop.attach(pair.b, mode="native")
            samples.setdefault(gen_name, []).append(gen_tx_pps(pair, args.duration, args.size))
        with VethPair(mtu=MTU) as pair, XdpProgram.load("drop") as drop:
            drop.attach(pair.b, mode="native")
            row = trafgen_row(pair, jumbo_frame(pair, args.size), args.duration)
            if row.pps is None:
                notes[row.name] = row.note
            else:
                samples.setdefault(f"{row.name[:-1]}, {args.size} B)", []).append(row.pps)
        with VethPair(mtu=MTU) as pair:
            report = run_traffic(pair.a, pair.b, duration=args.duration, size=args.size)
            samples.setdefault(verified_name, []).append(report.received / report.duration_s)
            if report.lost or report.corrupted or not report.multi_buffer:
                notes[verified_name] = (f"lost {report.lost}, corrupted {report.corrupted}, "
                                        f"multi_buffer {report.multi_buffer}")
    rows = [Row(name, statistics.median(v)) for name, v in samples.items()]
    trafgen = next((r.pps for r in rows if "trafgen" in r.name and r.pps), None)
    print(f"{'row':58} {'pps':>10} {'Gbit/s':>8} {'x trafgen':>10}")
    for r in rows:
        assert r.pps is not None
        ratio = f"{r.pps / trafgen:.2f}" if trafgen else "-"
        print(f"{r.name:58} {r.pps:10,.0f} {r.pps * args.size * 8 / 1e9:8.2f} {ratio:>10}")
    for name, note in notes.items():
        print(f"{name:58} {note}")
    return 0


if __name__ == "__main__":
    run_as_root("bench_jumbo", main)
