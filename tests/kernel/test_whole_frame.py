"""Whole-frame verification over real veth pairs: a rewriting program's frames are checked byte
for byte against the frames expected, and a bad rewrite is named, dissected and diffed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from tests.conftest import ROOT
from xdptest import ConfigError
from xdptest.assertions import assert_delivered
from xdptest.traffic import run_traffic

PROGRAMS = {"fixed": ROOT / "examples" / "router" / "router.bpf.c",  # TTL - 1, checksum updated
            "forgot": ROOT / "fixtures" / "bpf" / "ttl_forgot.bpf.c"}  # TTL - 1, checksum as it was
W = 4096


def router_hop(frame: bytes) -> bytes:
    """What a router does to a frame: TTL one less, the header checksum recomputed."""
    pkt = Ether(frame)
    pkt[IP].ttl -= 1
    del pkt[IP].chksum
    return bytes(pkt)


@pytest.fixture
def rewriting(veth_pair, xdp_program):
    def make(program: str):
        pair = veth_pair()
        prog = xdp_program(str(PROGRAMS[program]))
        prog.attach(pair.b)
        return pair, prog

    return make


def test_a_rewrite_the_receiver_did_not_expect_is_corruption_named_by_field(rewriting) -> None:
    pair, prog = rewriting("forgot")
    r = run_traffic(pair.a, pair.b, count=500, rx_program=prog, window=W, vary=["udp.sport=1000-1099"])
    assert (r.sent, r.received, r.corrupted, r.lost) == (500, 0, 500, 0)
    assert r.corrupted_by == {"l3": 500}
    assert len(r.bad_frames) == 8  # keep_bad's default
    first = r.bad_frames[0]
    assert (first["stream"], first["seq"], first["where"]) == (0, 0, ["l3"])
    assert first["fields"] == ["IP.ttl: 63, expected 64"]
    with pytest.raises(AssertionError) as failure:
        assert_delivered(r)
    text = str(failure.value)
    assert "500 frame(s) arrived corrupted (l3 500)" in text
    assert "IP.ttl: 63, expected 64" in text
    assert "1 byte(s) differ, first at offset 22" in text  # 14 (Ethernet) + 8 (the TTL's offset)
    assert "--- actual ---" in text and "--- expected ---" in text and text.count("###[ IP ]###") == 2


def test_expect_describes_a_correct_rewrite_and_every_frame_passes(rewriting) -> None:
    pair, prog = rewriting("fixed")
    r = run_traffic(pair.a, pair.b, count=2000, rx_program=prog, window=W, expect=router_hop,
                    vary=["udp.sport=1000-1999", "ip.src=198.18.1.0-198.18.1.255:random", "size=64-300"])
    assert_delivered(r)
    assert (r.received, r.corrupted, r.bad_frames) == (2000, 0, [])


@pytest.mark.requires_feature("live_frames")
def test_live_frames_are_checked_whole_too(rewriting) -> None:
    pair, prog = rewriting("fixed")
    r = run_traffic(pair.a, pair.b, count=5000, rx_program=prog, engine="live", rate=100_000,
                    expect=router_hop, vary=["udp.sport=1-100", "ip.dst=198.18.2.0-198.18.2.9:random"])
    assert (r.engine, r.received, r.corrupted) == ("live", 5000, 0)
    r = run_traffic(pair.a, pair.b, count=500, rx_program=prog, engine="live", rate=100_000)
    assert (r.received, r.corrupted, r.corrupted_by) == (0, 500, {"l3": 500})


def test_expect_rules_name_the_checksum_a_program_forgot(rewriting) -> None:
    pair, prog = rewriting("forgot")
    r = run_traffic(pair.a, pair.b, count=300, rx_program=prog, window=W, expect="ip.ttl-=1")
    assert (r.received, r.corrupted, r.corrupted_by) == (0, 300, {"l3": 300})
    assert r.bad_frames[0]["fields"][0].startswith("IP.chksum: ")
    with pytest.raises(AssertionError, match=r"IP\.chksum: 0x[0-9a-f]+, expected 0x[0-9a-f]+"):
        assert_delivered(r)


def test_frames_as_sent_still_pass_where_nothing_rewrites(veth_pair) -> None:
    pair = veth_pair(ipv6=True)
    for packet in ("Ether()/IPv6(src='2001:2::1', dst='2001:2::2')/UDP(dport=9)",
                   "Ether()/Dot1Q(vlan=7)/IP()/UDP(dport=9)", "Ether()/IP()/TCP(dport=80)"):
        r = run_traffic(pair.a, pair.b, count=1000, window=W, packet=packet, vary=["size=80-200"])
        assert (r.received, r.corrupted) == (1000, 0), packet


def test_expect_that_cannot_apply_is_refused_before_traffic(veth_pair) -> None:
    pair = veth_pair()
    with pytest.raises(ConfigError, match="the packet has no TCP layer"):
        run_traffic(pair.a, pair.b, count=10, expect="tcp.dport=80")
    with pytest.raises(ConfigError, match=r"failed on template 0 \(ZeroDivisionError"):
        run_traffic(pair.a, pair.b, count=10, expect=lambda f: 1 // 0)
    with pytest.raises(ConfigError, match="needs --verify frame"):
        run_traffic(pair.a, pair.b, count=10, expect="ip.ttl-=1", verify="stamp")


def test_stamp_only_verification_ignores_header_rewrites(rewriting) -> None:
    pair, prog = rewriting("forgot")
    r = run_traffic(pair.a, pair.b, count=300, rx_program=prog, window=W, verify="stamp")
    assert (r.received, r.corrupted) == (300, 0)


def test_command_expect_rule_fails_and_shows_the_frame() -> None:
    """The built-in redirect program rewrites nothing: expecting a TTL hop fails every frame."""
    out = subprocess.run([sys.executable, "-m", "xdptest.cli", "--count", "200", "--expect", "ip.ttl-=1",
                          "--keep-bad", "2", "--json", "-"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "corrupted       200 (l3 200)" in out.stdout
    assert "IP.ttl: 64, expected 63" in out.stdout and "--- expected ---" in out.stdout
    report = json.loads(out.stdout[out.stdout.index("\n{") + 1:])
    assert report["corrupted_by"] == {"l3": 200} and len(report["bad_frames"]) == 2


def test_command_refuses_a_bad_rule_before_anything_is_built() -> None:
    out = subprocess.run([sys.executable, "-m", "xdptest.cli", "--count", "10", "--expect", "ip.bogus=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("xdptest-gen: --expect 'ip.bogus=1': IP has no field 'bogus'; its fields: ")
