"""Assertions that explain themselves: a packet diff with scapy dissections, delivery checks.

Registered with pytest's assertion rewriting by the plugin; every helper hides its own frame
from tracebacks (``__tracebackhide__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scapy.packet import Packet

    from xdptest.report import TrafficReport


def _dissect(data: bytes) -> str:
    from scapy.layers.l2 import Ether

    try:
        return str(Ether(data).show2(dump=True))
    except Exception as exc:  # a malformed frame still gets its bytes shown
        return f"(scapy could not dissect it: {exc})"


def _hex_rows(data: bytes, marks: set[int], start: int, stop: int) -> list[str]:
    rows = []
    for off in range(start, stop, 16):
        cells = [f"{data[i]:02x}" + ("*" if i in marks else " ") if i < len(data) else "   "
                 for i in range(off, off + 16)]
        rows.append(f"  {off:04x}  {''.join(cells)}")
    return rows


def byte_diff(actual: bytes, expected: bytes, context: int = 1) -> str:
    """Hex rows of both frames around the differing bytes (marked with *)."""
    longest = max(len(actual), len(expected))
    differ = {i for i in range(longest)
              if i >= len(actual) or i >= len(expected) or actual[i] != expected[i]}
    if not differ:
        return "identical"
    first, last = min(differ) // 16 * 16, max(differ) // 16 * 16
    start, stop = max(0, first - 16 * context), min(longest, last + 16 * (context + 1))
    lines = [f"{len(differ)} byte(s) differ, first at offset {min(differ)} "
             f"(lengths: actual {len(actual)}, expected {len(expected)})", "actual:"]
    lines += _hex_rows(actual, differ, start, stop)
    lines.append("expected:")
    lines += _hex_rows(expected, differ, start, stop)
    return "\n".join(lines)


def assert_packet_equal(actual: bytes | Packet, expected: bytes | Packet, msg: str = "") -> None:
    """Fail with both dissections and a byte diff unless the frames are equal byte for byte."""
    __tracebackhide__ = True
    a, e = bytes(actual), bytes(expected)
    if a == e:
        return
    raise AssertionError(
        (f"{msg}\n" if msg else "") + "packets differ\n" + byte_diff(a, e)
        + "\n--- actual ---\n" + _dissect(a) + "\n--- expected ---\n" + _dissect(e)
    )


def assert_delivered(report: TrafficReport, *, allow_loss: float = 0.0, min_received: int | None = None,
                     max_latency_ns: int | None = None) -> None:
    """Fail unless the run delivered what it sent: loss within ``allow_loss`` percent, nothing
    corrupted or duplicated, and (optionally) a floor on received frames and a latency ceiling."""
    __tracebackhide__ = True
    problems = report.delivery_problems(allow_loss)
    if min_received is not None and report.received < min_received:
        problems.append(f"received {report.received}, expected at least {min_received}")
    if max_latency_ns is not None and report.latency_ns["max"] > max_latency_ns:
        problems.append(f"max latency {report.latency_ns['max']} ns above {max_latency_ns} ns")
    if problems:
        raise AssertionError("traffic not delivered: " + "; ".join(problems) + "\n" + report.summary())


def assert_action(result: Any, expected: Any) -> None:
    """Fail with the verdict's name and the output frame when an XDP test run chose another action."""
    __tracebackhide__ = True
    if result.action != expected:
        name = getattr(expected, "name", expected)
        got = getattr(result.action, "name", result.action)
        raise AssertionError(f"the program returned {got}, expected {name}\n" + _dissect(result.data))
