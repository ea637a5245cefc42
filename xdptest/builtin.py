"""Readers for the counters of the built-in programs (``count``, ``drop``, ``tx``, ``redirect``).

The built-ins keep per-CPU ``{u64 packets; u64 bytes}`` records; these helpers sum them over CPUs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from xdptest.bpf import XdpAction, XdpProgram
from xdptest.maps import XdpMap


@dataclass(frozen=True)
class Counter:
    packets: int
    bytes: int


def _sum_pairs(m: XdpMap, key: int) -> tuple[int, int]:
    values = m.lookup(key) or []
    first = second = 0
    for raw in values:
        a, b = struct.unpack("=QQ", raw)
        first += a
        second += b
    return first, second


def action_counts(program: XdpProgram) -> dict[XdpAction, Counter]:
    """``count``: packets and bytes per verdict."""
    m = program.maps["counters"]
    return {action: Counter(*_sum_pairs(m, int(action))) for action in XdpAction}


def set_count_action(program: XdpProgram, action: XdpAction) -> None:
    """``count``: the verdict it returns after counting (PASS, DROP or TX)."""
    if action not in (XdpAction.PASS, XdpAction.DROP, XdpAction.TX):
        raise ValueError(f"the count program returns PASS, DROP or TX, not {action.name}")
    program.maps["config"].update(0, int(action))


def single_counter(program: XdpProgram) -> Counter:
    """``drop`` (map ``dropped``) and ``tx`` (map ``reflected``): their one counter."""
    name = "dropped" if "dropped" in program.maps else "reflected"
    return Counter(*_sum_pairs(program.maps[name], 0))


@dataclass(frozen=True)
class QueueStats:
    redirected: int
    passed: int


def queue_stats(program: XdpProgram, queue: int) -> QueueStats:
    """``redirect``: frames of one rx queue sent to its socket, and passed for want of one."""
    return QueueStats(*_sum_pairs(program.maps["queue_stats"], queue))
