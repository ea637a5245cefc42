"""Writing captures that tcpdump and Wireshark open: classic pcap with nanosecond timestamps, and
pcapng whose packet blocks the C TX loop writes itself (with the TX descriptor in a comment)."""

from __future__ import annotations

import struct
import threading
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


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("=HH", code, len(value)) + _pad4(value)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("=II", block_type, total) + body + struct.pack("=I", total)


class PcapngWriter:
    """A pcapng file: one section, one interface per name given, blocks appended as they come.

    Byte order is the host's (the section header says which), as the packet blocks the C loop
    writes are. ``write_blocks`` may be called from several threads.
    """

    SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
    BYTE_ORDER_MAGIC = 0x1A2B3C4D
    OPT_SHB_USERAPPL, OPT_IF_NAME, OPT_IF_TSRESOL = 4, 2, 9

    def __init__(self, path: str | Path, interfaces: Iterable[str], application: str = "xdptest") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        shb = struct.pack("=IHHq", self.BYTE_ORDER_MAGIC, 1, 0, -1) \
            + _option(self.OPT_SHB_USERAPPL, application.encode()) + _option(0, b"")
        self._f.write(_block(self.SHB, shb))
        for name in interfaces:
            idb = struct.pack("=HHI", LINKTYPE_ETHERNET, 0, 0) + _option(self.OPT_IF_NAME, name.encode()) \
                + _option(self.OPT_IF_TSRESOL, bytes([9])) + _option(0, b"")  # 10^-9 s: nanoseconds
            self._f.write(_block(self.IDB, idb))

    def write_packet(self, interface: int, ts_ns: int, frame: bytes) -> None:
        """One Enhanced Packet Block: ``frame`` seen on ``interface`` at ``ts_ns`` (ns since the epoch)."""
        body = struct.pack("=IIIII", interface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(frame), len(frame)) \
            + _pad4(frame) + _option(0, b"")
        self.write_blocks(_block(self.EPB, body))

    def write_blocks(self, blocks: bytes) -> None:
        if blocks:
            with self._lock:
                self._f.write(blocks)

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
