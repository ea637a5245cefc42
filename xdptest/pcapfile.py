"""Writing captures that tcpdump and Wireshark open: classic pcap, nanosecond timestamps."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


class PcapWriter:
    """``with PcapWriter(path) as w: w.write(frame, ts_ns)``; frames are Ethernet."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._f.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self.frames = 0

    def write(self, frame: bytes, ts_ns: int | None = None) -> None:
        ts = time.time_ns() if ts_ns is None else ts_ns
        caplen = min(len(frame), SNAPLEN)
        self._f.write(struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, caplen, len(frame)))
        self._f.write(frame[:caplen])
        self.frames += 1

    def write_all(self, frames: Iterable[bytes], ts_ns: int | None = None) -> int:
        ts = time.time_ns() if ts_ns is None else ts_ns
        n = 0
        for frame in frames:
            self.write(frame, ts)
            n += 1
        return n

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_pcap(path: str | Path, frames: Iterable[bytes]) -> int:
    """Write frames to a new pcap file; return how many."""
    with PcapWriter(path) as w:
        return w.write_all(frames)
