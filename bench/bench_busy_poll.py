"""Receive latency with AF_XDP busy polling, next to need_wakeup + poll() and to no need_wakeup,
on one veth pair, measured in the same run (the machine is shared and noisy: read the ratios).

The point of busy polling is the lowest latency. Each mode sends the same paced, verified traffic
(64-byte frames, --rate, closed loop) and reads the receiver's latency percentiles from the stamp:
  busy poll                SO_BUSY_POLL + SO_PREFER_BUSY_POLL + SO_BUSY_POLL_BUDGET on the RX
                           socket; the kit sets napi_defer_hard_irqs 2 and gro_flush_timeout
                           200 us on the device, as the kernel's AF_XDP selftest does
  need_wakeup + poll()     the default: the RX loop sleeps in poll() when the ring is empty
  no need_wakeup           the kernel is kicked on every empty read
Rounds are interleaved; the medians are printed with each mode's p50 and p99 as a ratio of busy
poll's. SO_BUSY_POLL_BUDGET cannot be read back: Linux has no getsockopt for it (ENOPROTOOPT);
the kit checks its setsockopt.

Run as root: ``.venv/bin/python bench/bench_busy_poll.py [--rate 50000] [--duration 3] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from procs import run_as_root

from xdptest import features
from xdptest.netns import VethPair
from xdptest.traffic import run_traffic

MODES: dict[str, dict[str, Any]] = {
    "busy poll (20 us, budget 64)": {"busy_poll": 20, "busy_poll_budget": 64},
    "need_wakeup + poll()": {},
    "no need_wakeup": {"need_wakeup": False},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not features.probe("busy_poll").present:
        print(f"busy poll is not available here: {features.probe('busy_poll').reason}")
        return 1
    p50: dict[str, list[int]] = {m: [] for m in MODES}
    p99: dict[str, list[int]] = {m: [] for m in MODES}
    lost: dict[str, int] = dict.fromkeys(MODES, 0)
    for _ in range(args.rounds):
        for mode, options in MODES.items():
            with VethPair() as pair:  # a fresh pair per run: the sysfs settings are the mode's own
                r = run_traffic(pair.a, pair.b, rate=args.rate, duration=args.duration, **options)
            p50[mode].append(r.latency_ns["p50"])
            p99[mode].append(r.latency_ns["p99"])
            lost[mode] += r.lost + r.corrupted
    base50, base99 = (statistics.median(p50[next(iter(MODES))]), statistics.median(p99[next(iter(MODES))]))
    print(f"{'receive mode':32} {'p50 us':>8} {'p99 us':>8} {'p50 x busy':>11} {'p99 x busy':>11} {'lost':>6}")
    for mode in MODES:
        m50, m99 = statistics.median(p50[mode]), statistics.median(p99[mode])
        print(f"{mode:32} {m50 / 1e3:8.1f} {m99 / 1e3:8.1f} {m50 / base50:11.2f} {m99 / base99:11.2f} {lost[mode]:>6}")
    return 0


if __name__ == "__main__":
    run_as_root("bench_busy_poll", main)
