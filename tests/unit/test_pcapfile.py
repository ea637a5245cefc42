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
