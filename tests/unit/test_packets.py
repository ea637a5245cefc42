"""Templates from scapy expressions and pcaps; --vary parsing and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import wrpcap

from xdptest import ConfigError
from xdptest import packets as P


def test_scapy_expression_fills_unset_addresses() -> None:
    t = P.from_scapy("Ether()/IP()/UDP(dport=9)", 64, src_mac="02:00:00:00:00:01",
                     dst_mac="02:00:00:00:00:02", src_ip="198.18.0.1", dst_ip="198.18.0.2")
    pkt = Ether(t.frame)
    assert (pkt.src, pkt.dst, pkt[IP].src, pkt[IP].dst) == (
        "02:00:00:00:00:01", "02:00:00:00:00:02", "198.18.0.1", "198.18.0.2")
    assert (t.size, t.l3_offset, t.l4_offset, t.stamp_offset) == (64, 14, 34, 42)


def test_vlan_tags_shift_the_offsets() -> None:
    t = P.from_scapy(Ether(dst="02:00:00:00:00:02") / Dot1Q(vlan=5) / IP(dst="198.18.0.2") / UDP(), 80)
    assert (t.l3_offset, t.l4_offset, t.stamp_offset) == (18, 38, 46)


@pytest.mark.parametrize(("expr", "message"), [
    ("Ether()/IP(", "not a scapy expression"),
    ("42", "not a scapy packet"),
    ("IP()/UDP()", "must start with Ether"),
    ("__import__('os')", "not a scapy expression"),
])
def test_bad_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        P.from_scapy(expr, 64, dst_mac="02:00:00:00:00:02")


def test_too_small_a_size_names_the_minimum() -> None:
    with pytest.raises(ConfigError, match="at least 58"):
        P.from_scapy("Ether()/IP()/UDP()", 50, dst_mac="02:00:00:00:00:02")


def test_pcap_frames_become_templates(tmp_path: Path) -> None:
    path = tmp_path / "t.pcap"
    wrpcap(str(path), [Ether(dst="02:00:00:00:00:02") / IP(dst="198.18.0.2") / UDP(dport=p) / (b"x" * 30)
                       for p in (1, 2, 3)])
    ts = P.from_pcap(path)
    assert [Ether(t.frame)[UDP].dport for t in ts] == [1, 2, 3]
    assert all(t.stamp_offset == 42 for t in ts)


def test_unreadable_or_empty_pcap(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    with pytest.raises(ConfigError, match="cannot read it"):
        P.from_pcap(bad)
    with pytest.raises(ConfigError, match="cannot read it"):
        P.from_pcap(tmp_path / "missing.pcap")
    empty = tmp_path / "empty.pcap"
    wrpcap(str(empty), [])
    with pytest.raises(ConfigError, match="no frames"):
        P.from_pcap(empty)


@pytest.mark.parametrize(("spec", "expected"), [
    ("udp.sport=1000-1999", ("udp.sport", 1000, 1000, False)),
    ("ip.src=10.0.0.1-10.0.0.200:random", ("ip.src", 0x0A000001, 200, True)),
    ("ipv6.dst=2001:2::1-2001:2::10", ("ipv6.dst", 0x20010002000000000000000000000001, 16, False)),
    ("eth.dst=02:00:00:00:00:01-02:00:00:00:01:00", ("eth.dst", 0x020000000001, 256, False)),
    ("size=64-1500", ("size", 64, 1437, False)),
    ("ip.ttl=64", ("ip.ttl", 64, 1, False)),
])
def test_vary_specs(spec: str, expected: tuple[str, int, int, bool]) -> None:
    v = P.parse_vary(spec)
    assert (v.field, v.lo, v.count, v.random) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("udp.sport", "use FIELD=LO-HI"),
    ("foo.bar=1-2", "unknown field"),
    ("udp.sport=2000-1000", "inverted"),
    ("udp.sport=1-70000", "outside 0-65535"),
    ("ip.src=10.0.0.1-10.0.0.300", "not a valid value"),
    ("eth.src=zz:00:00:00:00:01-02:00:00:00:00:02", "not a valid value"),
    ("udp.sport=-5", "LO-HI"),
])
def test_bad_vary_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        P.parse_vary(spec)
