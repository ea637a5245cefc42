"""Hypothesis strategies for packets, to check an XDP program against a Python model of it.

``frames()`` draws Ethernet frames: optional VLAN tags, IPv4 or IPv6, UDP, TCP or ICMP, with
valid headers or - with ``malformed=True`` - truncated headers, bad IHL and bad lengths, the
inputs an XDP parser must survive. Use them with ``xdp_run``::

    @given(frame=frames(malformed=True))
    def test_parser(xdp_run, frame):
        assert xdp_run("my_prog.bpf.c", frame).action == my_model(frame)
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_ARP = 0x0800, 0x86DD, 0x8100, 0x0806


def macs() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=6, max_size=6)


def ports() -> st.SearchStrategy[int]:
    return st.integers(0, 0xFFFF)


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@st.composite
def l4(draw: st.DrawFn, proto: int) -> bytes:
    payload = draw(st.binary(max_size=64))
    if proto == 17:
        return struct.pack("!HHHH", draw(ports()), draw(ports()), 8 + len(payload), 0) + payload
    if proto == 6:
        flags = draw(st.integers(0, 0x3F))
        return struct.pack("!HHIIBBHHH", draw(ports()), draw(ports()), draw(st.integers(0, 2**32 - 1)), 0,
                           5 << 4, flags, 65535, 0, 0) + payload
    icmp_type = draw(st.sampled_from([0, 3, 8, 11]))
    return struct.pack("!BBHI", icmp_type, 0, 0, 0) + payload


@st.composite
def ipv4(draw: st.DrawFn, proto: int | None = None) -> bytes:
    proto = proto if proto is not None else draw(st.sampled_from([17, 6, 1]))
    body = draw(l4(proto))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), draw(st.integers(0, 0xFFFF)), 0,
                         draw(st.integers(1, 255)), proto, 0, draw(st.binary(min_size=4, max_size=4)),
                         draw(st.binary(min_size=4, max_size=4)))
    header = header[:10] + struct.pack("!H", _csum(header)) + header[12:]
    return header + body


@st.composite
def ipv6(draw: st.DrawFn, proto: int | None = None) -> bytes:
    proto = proto if proto is not None else draw(st.sampled_from([17, 6, 58]))
    body = draw(l4(proto if proto != 58 else 1))
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, draw(st.integers(1, 255)),
                       draw(st.binary(min_size=16, max_size=16)), draw(st.binary(min_size=16, max_size=16))) + body


@st.composite
def frames(draw: st.DrawFn, malformed: bool = False, vlan: bool = True) -> bytes:
    """An Ethernet frame; with ``malformed``, sometimes truncated or with lying header fields."""
    kind = draw(st.sampled_from(["ipv4", "ipv6", "arp"]))
    tags = b""
    if vlan and draw(st.booleans()):
        tags = struct.pack("!HH", ETH_P_8021Q, draw(st.integers(0, 4095)))
    if kind == "ipv4":
        ethertype, l3 = ETH_P_IP, draw(ipv4())
    elif kind == "ipv6":
        ethertype, l3 = ETH_P_IPV6, draw(ipv6())
    else:
        ethertype, l3 = ETH_P_ARP, draw(st.binary(min_size=28, max_size=28))
    frame = draw(macs()) + draw(macs()) + tags + struct.pack("!H", ethertype) + l3
    if malformed:
        damage = draw(st.sampled_from(["none", "truncate", "ihl", "length"]))
        head = 14 + len(tags)
        if damage == "truncate":
            frame = frame[: draw(st.integers(14, max(14, len(frame) - 1)))]
        elif damage == "ihl" and ethertype == ETH_P_IP:
            frame = frame[:head] + bytes([0x40 | draw(st.integers(0, 15))]) + frame[head + 1:]
        elif damage == "length" and ethertype in (ETH_P_IP, ETH_P_IPV6):
            at = head + (2 if ethertype == ETH_P_IP else 4)
            frame = frame[:at] + struct.pack("!H", draw(st.integers(0, 0xFFFF))) + frame[at + 2:]
    return frame.ljust(14, b"\0")
