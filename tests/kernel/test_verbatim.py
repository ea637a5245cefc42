"""Verbatim replay over real veth pairs: a capture's own frames (ARP, ICMP, UDP, repeats) sent
unchanged, matched by content at the receiver, the missing ones named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from tests.conftest import ROOT
from xdptest import ConfigError
from xdptest.options import TrafficOptions
from xdptest.traffic import TrafficRun, run_traffic

A, B = "02:00:00:00:00:01", "02:00:00:00:00:02"
IPS = {"src": "198.18.0.1", "dst": "198.18.0.2"}
W = 4096


@pytest.fixture
def capture(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """ARP (42 bytes, unpadded), ICMP echo, UDP to a service port twice (the same bytes), UDP to 9."""
    frames = [Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc=IPS["src"], pdst=IPS["dst"]),
              Ether(src=A, dst=B) / IP(**IPS) / ICMP(id=7, seq=1) / b"ping",
              Ether(src=A, dst=B) / IP(**IPS) / UDP(sport=1, dport=5000) / b"hello",
              Ether(src=A, dst=B) / IP(**IPS) / UDP(sport=1, dport=9) / b"discard me",
              Ether(src=A, dst=B) / IP(**IPS) / UDP(sport=1, dport=5000) / b"hello"]
    for i, f in enumerate(frames):
        f.time = 1.0 + i / 1000
    path = tmp_path / "mixed.pcap"
    wrpcap(str(path), frames)
    return path, [bytes(f) for f in frames]


def test_a_capture_arrives_byte_for_byte(veth_pair, capture) -> None:
    path, frames = capture
    pair = veth_pair()
    r = run_traffic(pair.a, pair.b, pcap=str(path), verbatim=True, count=1000, window=W, capture=1000)
    assert (r.sent, r.received, r.lost, r.duplicated, r.corrupted) == (1000, 1000, 0, 0, 0)
    assert len(frames[0]) == 42  # sent as captured, not padded
    assert r.extra_frames == [frames[i % 5] for i in range(1000)]  # type: ignore[attr-defined]
    assert r.missing_frames == [] and any("verbatim" in n for n in r.notes)


def test_the_frames_a_program_kept_from_the_socket_are_named(veth_pair, xdp_program, capture) -> None:
    """The steering example sends UDP 5000 to its socket, drops port 9, passes the rest to the
    stack: of each pass over the capture, only the two (identical) UDP 5000 frames arrive."""
    path, _ = capture
    pair = veth_pair()
    prog = xdp_program(str(ROOT / "examples" / "steering" / "steer.bpf.c"))
    prog.attach(pair.b)
    r = run_traffic(pair.a, pair.b, pcap=str(path), verbatim=True, loop=40, rx_program=prog, window=W)
    assert (r.sent, r.received, r.lost, r.corrupted) == (200, 80, 120, 0)
    assert [(m["frame"], m["missing"]) for m in r.missing_frames] == [(0, 40), (1, 40), (3, 40)]
    assert "ARP" in r.missing_frames[0]["summary"] and "ICMP" in r.missing_frames[1]["summary"]
    assert "missing         frame 3 of the capture, 40 time(s): Ether / IP / UDP" in r.summary()


def test_a_rewritten_frame_is_corruption_against_the_frame_sent(veth_pair, xdp_program, capture) -> None:
    path, frames = capture
    pair = veth_pair()
    prog = xdp_program(str(ROOT / "fixtures" / "bpf" / "ttl_forgot.bpf.c"))
    prog.attach(pair.b)
    r = run_traffic(pair.a, pair.b, pcap=str(path), verbatim=True, count=500, rx_program=prog, window=W)
    assert (r.received, r.corrupted, r.corrupted_by) == (100, 400, {"l3": 400})  # only ARP is not IPv4
    first = r.bad_frames[0]
    assert (first["seq"], first["fields"]) == (1, ["IP.ttl: 63, expected 64"])
    assert bytes.fromhex(first["expected"]) == frames[1]


@pytest.mark.parametrize(("options", "why"), [
    ({"verbatim": True}, "give --pcap FILE"),
    ({"vary": ("udp.sport=1-2",)}, "--vary cannot apply"),
    ({"size": 128}, "--size cannot apply"),
    ({"queues": 2}, "use --queues 1"),
    ({"engine": "live"}, "use --engine afxdp"),
])
def test_what_would_change_the_frames_is_refused(capture, options, why) -> None:
    path, _ = capture
    base = {} if options == {"verbatim": True} else {"pcap": str(path), "verbatim": True}
    with pytest.raises(ConfigError, match=why):
        TrafficOptions.from_kwargs(count=10, **base, **options)


def test_expect_and_verbatim_exclude_each_other(veth_pair, capture) -> None:
    path, _ = capture
    pair = veth_pair()
    with pytest.raises(ConfigError, match="--expect cannot apply"):
        TrafficRun(pair.a, pair.b, TrafficOptions(pcap=str(path), verbatim=True, count=10), expect="ip.ttl-=1")


def test_command_replays_a_capture_verbatim(capture, tmp_path: Path) -> None:
    path, frames = capture
    out = subprocess.run([sys.executable, "-m", "xdptest.cli", "--pcap", str(path), "--verbatim", "--loop", "20",
                          "--write-pcap", str(tmp_path / "rx.pcap")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "received        100" in out.stdout and "latency         not measured" in out.stdout
    from scapy.utils import rdpcap

    got = [bytes(p) for p in rdpcap(str(tmp_path / "rx.pcap"))]
    assert [f for f in got if f in frames] == frames * 20  # the kernel's own IPv6 ND may be in it too
