"""A rewriting program proved with whole-frame verification: the receiver must see each frame
one hop older, byte for byte."""

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from xdptest.assertions import assert_delivered


def router_hop(frame: bytes) -> bytes:          # what the receiver must see: TTL - 1, checksum right
    pkt = Ether(frame)
    pkt[IP].ttl -= 1
    del pkt[IP].chksum
    return bytes(pkt)


def test_my_router_rewrites_correctly(veth_pair, xdp_program, traffic):
    pair = veth_pair()
    prog = xdp_program("router.bpf.c")          # decrements the TTL, redirects to its XSKMAP
    prog.attach(pair.b)
    report = traffic(pair.a, pair.b, count=10_000, rx_program=prog, expect=router_hop,
                     vary=["udp.sport=1000-1999"])
    assert_delivered(report)


def test_the_same_hop_as_a_rule(veth_pair, xdp_program, traffic):
    pair = veth_pair()
    prog = xdp_program("router.bpf.c")
    prog.attach(pair.b)
    report = traffic(pair.a, pair.b, count=10_000, rx_program=prog, expect="ip.ttl-=1",
                     vary=["ip.dst=198.18.0.2-198.18.0.200:random"])
    assert_delivered(report)
    assert report.received == 10_000
