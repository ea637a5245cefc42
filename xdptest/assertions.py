"""Assertions that explain themselves: a packet diff with scapy dissections, delivery checks.

Registered with pytest's assertion rewriting by the plugin; every helper hides its own frame
from tracebacks (``__tracebackhide__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xdptest.framediff import dissect, explain

if TYPE_CHECKING:
    from scapy.packet import Packet

    from xdptest.report import TrafficReport


def assert_packet_equal(actual: bytes | Packet, expected: bytes | Packet, msg: str = "") -> None:
    """Fail with both dissections and a byte diff unless the frames are equal byte for byte."""
    __tracebackhide__ = True
    a, e = bytes(actual), bytes(expected)
    if a == e:
        return
    raise AssertionError((f"{msg}\n" if msg else "") + "packets differ\n" + explain(a, e))


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
        bad = report.first_bad_frame()
        raise AssertionError("traffic not delivered: " + "; ".join(problems) + "\n" + report.summary()
                             + (f"\n{bad}" if bad else ""))


def assert_action(result: Any, expected: Any) -> None:
    """Fail with the verdict's name and the output frame when an XDP test run chose another action."""
    __tracebackhide__ = True
    if result.action != expected:
        name = getattr(expected, "name", expected)
        got = getattr(result.action, "name", result.action)
        raise AssertionError(f"the program returned {got}, expected {name}\n" + dissect(result.data))
