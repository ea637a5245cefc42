"""The C verifier's whole-frame checks: every byte against the frame expected, the parts that
differ classified, the first bad frames kept; expected frames built from ``expect``."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from xdptest import packets
from xdptest._native.gen import GenSpec, Verifier
from xdptest.errors import ConfigError
from xdptest.expect import expected_templates, parse_rule
from xdptest.framediff import differing_fields

ETH = "Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')"
IP_UDP = "IP(src='198.18.0.1', dst='198.18.0.2')/UDP(sport=1000, dport=9)"
VLAN = f"{ETH}/Dot1Q(vlan=7)/{IP_UDP}"
UDP4 = f"{ETH}/{IP_UDP}"


def _sent(expr: str = UDP4, varies: tuple[str, ...] = ("udp.sport=1000-1099",), size: int = 64):
    t = packets.from_scapy(expr, size)
    vs = [packets.parse_vary(v) for v in varies]
    return [t], vs


def _flip(frame: bytes, offset: int) -> bytes:
    return frame[:offset] + bytes([frame[offset] ^ 0x01]) + frame[offset + 1:]


def test_each_damaged_part_is_named() -> None:
    templates, varies = _sent()
    gen = GenSpec(templates, varies, stream=0)
    frames = gen.build(0, 7, seq0=0, ts=99)
    v = Verifier(expect=gen, keep_bad=4, keep_bytes=64)
    # L2 (a MAC byte), L3 (TTL), L4 (the UDP port), payload (past the stamp), one byte short
    damaged = [_flip(frames[0], 3), _flip(frames[1], 22), _flip(frames[2], 35), _flip(frames[3], 60),
               frames[4][:-1], frames[5], frames[6]]
    v.feed(damaged, now_ns=100)
    t = v.totals()
    assert (t.stamped, t.corrupted) == (2, 5)
    assert t.corrupted_by == (1, 1, 1, 1, 1, 0)
    bad = v.bad_frames()
    assert [(b.seq, b.classes) for b in bad] == [(0, ("l2",)), (1, ("l3",)), (2, ("l4",)), (3, ("payload",))]
    assert bad[1].actual == damaged[1] and bad[1].expected == frames[1]
    assert [s.unique for s in v.streams()] == [2]  # corrupted frames are not counted as received


def test_a_bad_stamp_without_expected_frames_is_a_stamp_problem() -> None:
    templates, varies = _sent()
    gen = GenSpec(templates, varies, stream=0)
    frame = gen.build(0, 1, seq0=0)[0]
    v = Verifier(keep_bad=1)
    v.feed([_flip(frame, 22), _flip(frame, 50)])  # stamp-only: a header byte passes, a payload one fails
    assert (v.totals().stamped, v.totals().corrupted_by) == (1, (0, 0, 0, 0, 0, 1))
    (bad,) = v.bad_frames()
    assert bad.expected is None and bad.classes == ("stamp",)


def test_a_program_that_pops_a_vlan_tag_is_expected_four_bytes_shorter() -> None:
    """The stamp's check covers the sent length, so an expected frame of another length still
    carries the sender's stamp; a varied size applies to the sent frame."""
    templates, varies = _sent(VLAN, ("udp.sport=1-50", "size=80-120"), size=80)

    def pop(frame: bytes) -> bytes:
        pkt = Ether(frame)
        inner = pkt[Dot1Q].payload
        return bytes(Ether(src=pkt.src, dst=pkt.dst, type=0x0800) / inner)

    expected = expected_templates(templates, varies, pop)
    assert expected[0].size == templates[0].size - 4
    sent = GenSpec(templates, varies, stream=3).build(0, 200, seq0=0, ts=5)
    want = GenSpec(expected, varies, stream=0, sent=templates)
    v = Verifier(expect=want)
    v.feed([pop(f) for f in sent])
    assert (v.totals().stamped, v.totals().corrupted) == (200, 0)
    v.feed(sent[:10])  # the tag still there: ten frames of the wrong length
    assert v.totals().corrupted_by[4] == 10


def test_rules_rewrite_fields_and_keep_checksums_right() -> None:
    templates, varies = _sent()
    (e,) = expected_templates(templates, varies, ["ip.ttl-=1", "eth.dst=02:00:00:00:00:09", "udp.dport+=1"])
    pkt = Ether(e.frame)
    assert (pkt[IP].ttl, pkt.dst, pkt[UDP].dport) == (63, "02:00:00:00:00:09", 10)
    rebuilt = pkt.copy()
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (rebuilt[IP].chksum, rebuilt[UDP].chksum) == (pkt[IP].chksum, pkt[UDP].chksum)


@pytest.mark.parametrize(("rule", "why"), [
    ("ttl-=1", "use LAYER.FIELD=VALUE"),
    ("ipx.ttl=1", "unknown layer 'ipx'"),
    ("ip.hlim=1", "IP has no field 'hlim'"),
    ("ip.ttl+=x", "'x' is not an integer"),
])
def test_bad_rules_are_refused(rule: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_rule(rule)


def test_a_varied_field_missing_from_the_expected_frame_is_refused() -> None:
    templates, varies = _sent(varies=("ip.src=10.0.0.1-10.0.0.9",))
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\x00" * 60))
    with pytest.raises(ConfigError, match=r"expected frame of template 0: --vary ip\.src: the packet has no IPv4"):
        expected_templates(templates, varies, lambda f: arp)


def test_differing_fields_names_layers_and_fields() -> None:
    a = bytes(Ether() / IP(ttl=3) / UDP(dport=9))
    b = bytes(Ether() / IP(ttl=4) / UDP(dport=9))
    assert differing_fields(a, b)[0] == "IP.ttl: 3, expected 4"
    c = bytes(Ether() / Dot1Q() / IP() / UDP())
    assert differing_fields(c, b)[-1].startswith("Dot1Q where IP was expected")


def test_verbatim_frames_are_matched_by_content() -> None:
    """Frames 0 and 2 have the same bytes: the n-th arrival of a content is its n-th occurrence."""
    frames = [bytes(Ether() / IP() / UDP(dport=d)) for d in (1, 2, 1, 3)]
    v = Verifier(keep_bad=2)
    v.expect_frames(GenSpec([packets.analyse(f) for f in frames], [], stream=0))
    similar = _flip(frames[3], 20)  # in the IP header
    unrelated = bytes(Ether() / IP() / UDP(dport=1) / b"longer")
    # two passes sent (8 frames); arrivals: 0, 1, 3, 2 (late), 0 (third copy), 1, 1 (one too many)
    v.feed([frames[0], frames[1], frames[3], frames[2], frames[0], frames[1], frames[1], similar, unrelated])
    v.frames_sent(8)
    (s,) = v.streams()
    assert (s.received, s.unique, s.duplicated, s.reordered) == (7, 6, 1, 1)
    t = v.totals()
    assert (t.corrupted, t.corrupted_by[1], t.foreign, t.latency_samples) == (1, 1, 1, 0)
    assert v.missing(8, 10) == [(0, 1), (3, 1)]
    (bad,) = v.bad_frames()
    assert (bad.seq, bad.expected) == (3, frames[3])
