"""Timed pcap replay (the capture's gaps, with the gap error measured) and the pcapng record of
every frame an AF_XDP socket sent, over real veth pairs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from xdptest import ConfigError, NotSupportedError, features
from xdptest.traffic import run_traffic

W = 4096


def _capture(path: Path, pair, n: int, gap_s: float) -> Path:
    frames = []
    for i in range(n):
        f = Ether(src=pair.a.mac, dst=pair.b.mac) / IP(src=pair.a.ipv4, dst=pair.b.ipv4) / UDP(dport=100 + i) \
            / (b"r" * 30)
        f.time = 1_700_000_000 + i * gap_s
        frames.append(f)
    wrpcap(str(path), frames)
    return path


def test_tx_pcap_holds_every_frame_sent_as_the_receiver_got_it(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    out = tmp_path / "tx.pcapng"
    r = run_traffic(pair.a, pair.b, count=3000, window=W, write_tx_pcap=str(out), capture=3000,
                    vary=["udp.sport=1000-1999"])
    assert (r.sent, r.received, r.tx_pcap) == (3000, 3000, str(out))
    sent = rdpcap(str(out))
    assert len(sent) == 3000
    assert [bytes(p) for p in sent] == r.extra_frames  # byte for byte, in order
    comment = sent[5].comment.decode()
    m = re.fullmatch(r"AF_XDP TX desc addr=0x([0-9a-f]+) len=(\d+) options=0x0", comment)
    assert m, comment
    assert int(m.group(2)) == len(sent[5]) and int(m.group(1), 16) % 4096 == 0
    dump = subprocess.run(["tcpdump", "-nn", "-r", str(out)], capture_output=True, text=True, check=True)
    assert len(dump.stdout.splitlines()) == 3000


def test_tx_pcap_names_one_interface_per_queue(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair(queues=2)
    out = tmp_path / "tx2.pcapng"
    r = run_traffic(pair.a, pair.b, count=4000, queues=2, window=W, write_tx_pcap=str(out))
    # what was sent is recorded, whatever arrived: two senders and two receivers on an emulated
    # 2-CPU guest may overflow veth's 256-frame ring now and then (6.1: 43 of 4000 once)
    assert r.sent == 4000 and r.received + r.lost == 4000 and r.corrupted == 0
    assert len(rdpcap(str(out))) == 4000
    dump = subprocess.run(["tcpdump", "-nn", "-r", str(out), "-c", "1"], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    raw = out.read_bytes()
    assert f"{pair.a} queue 0 (AF_XDP TX)".encode() in raw and f"{pair.a} queue 1 (AF_XDP TX)".encode() in raw


def test_replay_keeps_the_captures_gaps(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    pcap = _capture(tmp_path / "gaps.pcap", pair, 100, gap_s=0.001)  # 1 kpps
    r = run_traffic(pair.a, pair.b, pcap=str(pcap), replay_timing=True, loop=3, window=W)
    assert (r.sent, r.received, r.lost) == (300, 300, 0)
    # 299 gaps of 1 ms: the run lasts about 0.3 s whatever the machine does
    assert 0.29 < r.duration_s < 0.6, r.duration_s
    gaps = r.replay_gap_error_ns
    assert gaps["samples"] == 299
    assert gaps["p50"] < 200_000 and gaps["p50"] <= gaps["p99"] <= gaps["max"]  # the bench holds it to 20 us


def test_speedup_divides_the_gaps(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    pcap = _capture(tmp_path / "slow.pcap", pair, 50, gap_s=0.01)  # 100 pps: 0.49 s as captured
    r = run_traffic(pair.a, pair.b, pcap=str(pcap), replay_timing=True, speedup=10, window=W)
    assert (r.sent, r.received) == (50, 50)
    assert 0.045 < r.duration_s < 0.2, r.duration_s


def test_loop_sends_the_capture_n_times_in_order(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    pcap = _capture(tmp_path / "loop.pcap", pair, 7, gap_s=0.0)
    r = run_traffic(pair.a, pair.b, pcap=str(pcap), loop=4, window=W, capture=28)
    assert (r.sent, r.received) == (28, 28)
    assert [Ether(f)[UDP].dport for f in r.extra_frames] == list(range(100, 107)) * 4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"replay_timing": True, "count": 10}, "--replay-timing replays a capture's gaps: give --pcap"),
    ({"loop": 2, "count": 10}, "--loop repeats a capture"),
    ({"speedup": 2.0, "count": 10}, "--speedup scales the capture's gaps: add --replay-timing"),
])
def test_timing_options_that_make_no_sense_are_refused(veth_pair, kwargs, message) -> None:
    pair = veth_pair()
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_traffic(pair.a, pair.b, **kwargs)


def test_live_engine_refuses_tx_capture_and_auto_falls_back(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    out = tmp_path / "live.pcapng"
    # Where the kernel has no live frames, that is the reason given first.
    live = features.probe("live_frames").present
    why = "the kernel builds live frames" if live else "live frames are not available"
    with pytest.raises(NotSupportedError, match="only AF_XDP sends can be recorded" if live else why):
        run_traffic(pair.a, pair.b, count=10, engine="live", write_tx_pcap=str(out))
    r = run_traffic(pair.a, pair.b, count=500, engine="auto", write_tx_pcap=str(out), window=W)
    assert r.engine == "afxdp" and r.received == 500 and len(rdpcap(str(out))) == 500
    assert any(f"chosen by auto because {why}" in n for n in r.notes), r.notes


def test_tx_pcap_keeps_up_when_its_buffer_fills_many_times(veth_pair, tmp_path: Path) -> None:
    pair = veth_pair()
    out = tmp_path / "big.pcapng"
    # 40,000 frames of 400 bytes: about 20 MB of blocks, five times the loop's 4 MiB buffer
    r = run_traffic(pair.a, pair.b, count=40_000, size=400, window=W, write_tx_pcap=str(out))
    assert r.received == 40_000
    dump = subprocess.run(["tcpdump", "-nn", "-q", "-r", str(out)], capture_output=True, text=True, check=True)
    lines = dump.stdout.splitlines()
    assert len(lines) == 40_000 and all("UDP, length 358" in line for line in lines[:: 997]), lines[:2]
