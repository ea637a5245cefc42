"""How two frames differ, for people: the header fields by name, scapy dissections, a byte diff.

Used by the assertions and by the traffic report's corrupted frames. scapy is imported only
when a frame is dissected.
"""

from __future__ import annotations

from typing import Any


def dissect(data: bytes) -> str:
    """scapy's ``show2`` of an Ethernet frame (or why it could not be dissected)."""
    from scapy.layers.l2 import Ether

    try:
        return str(Ether(data).show2(dump=True))
    except Exception as exc:  # a malformed frame still gets its bytes shown
        return f"(scapy could not dissect it: {exc})"


def _layers(data: bytes) -> list[Any]:
    from scapy.layers.l2 import Ether

    layers = []
    layer: Any = Ether(data)
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        layers.append(layer)
        layer = layer.payload if layer.payload else None
    return layers


def _shown(layer: Any, name: str) -> str:
    value = layer.getfieldval(name)
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 16 else f"{len(value)} bytes"
    try:
        return str(layer.get_field(name).i2repr(layer, value))
    except Exception:
        return repr(value)


def differing_fields(actual: bytes, expected: bytes) -> list[str]:
    """The header fields in which ``actual`` differs from ``expected``, e.g.
    ``IP.ttl: 63, expected 64``; a different stack of layers is named as such. Payload bytes
    (scapy's ``Raw``) count as one field, ``Raw.load``."""
    try:
        got, want = _layers(actual), _layers(expected)
    except Exception as exc:
        return [f"(scapy could not dissect the frames: {exc})"]
    out: list[str] = []
    for a, e in zip(got, want, strict=False):
        if type(a) is not type(e):
            out.append(f"{a.__class__.__name__} where {e.__class__.__name__} was expected")
            return out
        for f in e.fields_desc:
            if a.getfieldval(f.name) != e.getfieldval(f.name):
                out.append(f"{e.__class__.__name__}.{f.name}: {_shown(a, f.name)}, "
                           f"expected {_shown(e, f.name)}")
    if len(got) != len(want):
        longer = got if len(got) > len(want) else want
        names = "/".join(x.__class__.__name__ for x in longer[min(len(got), len(want)):])
        out.append(f"{'extra' if len(got) > len(want) else 'missing'} layer(s): {names}")
    if not out and actual != expected:
        out.append(f"length: {len(actual)}, expected {len(expected)}")
    return out


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


def explain(actual: bytes, expected: bytes) -> str:
    """The fields that differ, the byte diff and both dissections."""
    fields = differing_fields(actual, expected)
    return ("fields that differ: " + ("; ".join(fields) if fields else "none (same headers)") + "\n"
            + byte_diff(actual, expected)
            + "\n--- actual ---\n" + dissect(actual) + "\n--- expected ---\n" + dissect(expected))
