"""Captures the kit writes open in scapy and tcpdump."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from xdptest.pcapfile import write_pcap

FRAMES = [bytes(Ether() / IP(dst="198.18.0.2") / UDP(dport=p)) for p in (1, 2, 3)]


def test_scapy_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    assert write_pcap(path, FRAMES) == 3
    assert [bytes(p) for p in rdpcap(str(path))] == FRAMES


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed (apt-get install tcpdump)")
def test_tcpdump_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    write_pcap(path, FRAMES)
    out = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True, check=True).stdout
    assert out.count("> 198.18.0.2.") == 3


def test_pcap_schedule_takes_the_gaps_and_holds_time_that_goes_back(tmp_path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    from xdptest.packets import pcap_schedule

    frames = [Ether() for _ in range(4)]
    for f, t in zip(frames, (10.0, 10.001, 10.0005, 10.003), strict=True):
        f.time = t
    path = tmp_path / "t.pcap"
    wrpcap(str(path), frames)
    offsets, period = pcap_schedule(path)
    assert offsets == [0, 1_000_000, 1_000_000, 3_000_000]
    assert period == 4_000_000  # the last offset and the mean gap
    assert pcap_schedule(path, speedup=2)[0] == [0, 500_000, 500_000, 1_500_000]


def test_pcapng_writer_sections_read_back(tmp_path) -> None:
    from scapy.utils import rdpcap

    from xdptest.pcapfile import PcapngWriter

    path = tmp_path / "empty.pcapng"
    with PcapngWriter(path, ["if0", "if1"]) as w:
        w.write_blocks(b"")
    assert rdpcap(str(path)) is not None and len(rdpcap(str(path))) == 0
