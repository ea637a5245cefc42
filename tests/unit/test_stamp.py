"""Frames built by the C generator: checksums right, stamps verifiable, accounting exact."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from xdptest import packets
from xdptest._native.gen import GenSpec, Verifier, percentiles

ETH = "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')"


def _checksums_ok(frame: bytes) -> None:
    """scapy recomputes every checksum; the generator's must equal them."""
    pkt = Ether(frame)
    clone = pkt.copy()
    for layer in (IP, UDP, TCP):
        if layer in clone and "chksum" in clone[layer].fields:
            del clone[layer].chksum
    rebuilt = Ether(bytes(clone))
    for layer in (IP, UDP, TCP):
        if layer in pkt:
            assert pkt[layer].chksum == rebuilt[layer].chksum, f"{layer.__name__} checksum of {frame.hex()}"


def _spec(expr: str, size: int | None = None, varies: tuple[str, ...] = (), stream: int = 0) -> GenSpec:
    t = packets.from_scapy(expr, size)
    vs = [packets.resolve(packets.parse_vary(v), t) for v in varies]
    size_v = [v for v in vs if v.field == "size"]
    if size_v:
        t = t.resized(size_v[0].lo)
    return GenSpec([t], vs, stream)


UDP4 = f"{ETH}/IP(src='198.18.0.1', dst='198.18.0.2')/UDP(sport=1000, dport=9)"
TCP4 = f"{ETH}/IP(src='198.18.0.1', dst='198.18.0.2')/TCP(sport=1000, dport=80)"
UDP6 = f"{ETH}/IPv6(src='2001:2::1', dst='2001:2::2')/UDP(sport=1000, dport=9)"


ANY = ((), ("size=80-1500",), ("eth.src=02:00:00:00:00:00-02:00:00:00:ff:ff", "size=100-200:random"))
IP4 = (("ip.src=10.0.0.1-10.0.0.200", "ip.dst=10.1.0.0-10.1.255.255:random", "ip.ttl=1-255"),)
CASES = (
    [(UDP4, v) for v in (*ANY, *IP4, ("udp.sport=1000-1999", "udp.dport=1-65535:random"))]
    + [(TCP4, v) for v in (*ANY, *IP4, ("tcp.sport=1000-1999", "tcp.dport=1-9:random"))]
    + [(UDP6, v) for v in (*ANY, ("ipv6.dst=2001:2::1-2001:2::ff:ffff:random", "udp.sport=1-2"))]
)


@pytest.mark.parametrize(("expr", "varies"), CASES)
def test_generated_frames_have_correct_checksums(expr: str, varies: tuple[str, ...]) -> None:
    spec = _spec(expr, varies=varies)
    frames = spec.build(0, 300, seq0=0, ts=12345)
    for f in frames:
        _checksums_ok(f)
    v = Verifier()
    v.feed(frames)
    t = v.totals()
    assert (t.frames, t.stamped, t.corrupted, t.foreign) == (300, 300, 0, 0)
    assert v.stream(0).unique == 300


def test_ipv6_addresses_vary_with_carry() -> None:
    spec = _spec(UDP6, varies=("ipv6.src=2001:2::ffff:ffff:ffff:fffe-2001:2:0:1::1",))
    frames = spec.build(0, 4, seq0=0)
    srcs = [Ether(f)[IPv6].src for f in frames]
    assert srcs == ["2001:2::ffff:ffff:ffff:fffe", "2001:2::ffff:ffff:ffff:ffff", "2001:2:0:1::", "2001:2:0:1::1"]
    for f in frames:
        _checksums_ok(f)


def test_fields_the_packet_lacks_are_refused() -> None:
    from xdptest import ConfigError

    with pytest.raises(ConfigError, match="no IPv4 header"):
        _spec(UDP6, varies=("ip.src=10.0.0.1-10.0.0.2",))
    with pytest.raises(ConfigError, match="no UDP header"):
        _spec(TCP4, varies=("udp.sport=1-2",))


def test_sequential_variation_wraps_over_the_range() -> None:
    spec = _spec(UDP4, varies=("udp.sport=5-7",))
    assert [Ether(f)[UDP].sport for f in spec.build(0, 7, 0)] == [5, 6, 7, 5, 6, 7, 5]


def test_size_variation_fixes_lengths() -> None:
    spec = _spec(UDP4, varies=("size=64-66",))
    frames = spec.build(0, 3, 0)
    assert [len(f) for f in frames] == [64, 65, 66]
    assert [Ether(f)[IP].len for f in frames] == [50, 51, 52]
    assert [Ether(f)[UDP].len for f in frames] == [30, 31, 32]


def test_loss_duplicates_reordering_and_corruption_are_counted() -> None:
    spec = _spec(UDP4)
    frames = spec.build(0, 10, seq0=0)
    corrupt = bytearray(frames[8])
    corrupt[-1] ^= 0x40
    order = [frames[i] for i in (0, 1, 3, 2, 4, 4, 6, 7)] + [bytes(corrupt)]
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28))
    v = Verifier()
    v.feed([*order, arp])
    s = v.stream(0)
    assert (s.received, s.unique, s.duplicated, s.reordered, s.highest) == (8, 7, 1, 1, 8)
    t = v.totals()
    assert (t.corrupted, t.foreign, t.stamped) == (1, 1, 8)
    # 10 sent: 7 unique arrived, seq 5 and 9 never did, seq 8 arrived corrupted
    assert 10 - s.unique - t.corrupted == 2


def test_sequence_numbers_extend_past_32_bits() -> None:
    spec = _spec(UDP4)
    frames = spec.build(0, 4, seq0=0xFFFFFFFE)
    v = Verifier()
    v.feed(frames)
    s = v.stream(0)
    assert (s.unique, s.reordered, s.duplicated, s.highest) == (4, 0, 0, 0xFFFFFFFE + 4)


def test_streams_are_kept_apart() -> None:
    v = Verifier()
    v.feed(_spec(UDP4, stream=3).build(0, 5, 0) + _spec(UDP4, stream=7).build(0, 2, 0))
    assert [(s.stream, s.unique) for s in v.streams()] == [(3, 5), (7, 2)]


def test_latency_comes_from_the_stamp() -> None:
    spec = _spec(UDP4)
    frames = spec.build(0, 100, 0, ts=1_000)
    v = Verifier()
    v.feed(frames, now_ns=1_000 + 50_000)
    t = v.totals()
    assert t.latency_min == t.latency_max == 50_000
    p50, p99 = percentiles(v.histogram(), (0.5, 0.99), t.latency_min, t.latency_max)
    assert p50 == p99 == 50_000


def test_percentiles_are_within_two_percent() -> None:
    spec = _spec(UDP4)
    v = Verifier()
    for lat in range(1000, 101000, 1000):
        v.feed(spec.build(lat, 1, lat, ts=0), now_ns=lat)
    t = v.totals()
    p50, p90 = percentiles(v.histogram(), (0.5, 0.9), t.latency_min, t.latency_max)
    assert abs(p50 - 50_000) / 50_000 < 0.02
    assert abs(p90 - 90_000) / 90_000 < 0.02


def test_random_variation_differs_per_frame_and_ignores_batching() -> None:
    spec = _spec(UDP4, varies=("udp.sport=1-65535:random",))
    batch = spec.build(0, 50, 0)
    assert [spec.build(k, 1, k)[0] for k in range(50)] == batch
    assert len({Ether(f)[UDP].sport for f in batch}) > 40
