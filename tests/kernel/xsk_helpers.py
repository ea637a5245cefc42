"""Shared helpers for the AF_XDP tests: frames with sequence numbers, draining, leak probes."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from xdptest.netns import Endpoint, VethPair
from xdptest.xsk import XskSocket

MIN_FRAME = 64
MAGIC = b"XTSK"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(src: Endpoint, dst: Endpoint, seq: int, size: int = MIN_FRAME, stream: int = 0,
          dport: int = 9) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes whose payload carries stream and sequence
    number, then a byte pattern derived from them (so any corruption shows)."""
    assert size >= 14 + 20 + 8 + 12
    payload_len = size - 14 - 20 - 8
    head = MAGIC + struct.pack("!II", stream, seq)
    pattern = bytes((seq + stream + i) & 0xFF for i in range(payload_len - len(head)))
    payload = head + pattern
    src_ip = bytes(int(x) for x in (src.ipv4 or "198.18.0.1").split("."))
    dst_ip = bytes(int(x) for x in (dst.ipv4 or "198.18.0.2").split("."))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + payload_len, seq & 0xFFFF, 0, 64, 17, 0,
                     src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", 1000 + stream, dport, 8 + payload_len, 0)
    return _mac(dst.mac) + _mac(src.mac) + b"\x08\x00" + ip + udp + payload


def frames(src: Endpoint, dst: Endpoint, count: int, size: int = MIN_FRAME, stream: int = 0,
           start: int = 0, dport: int = 9) -> list[bytes]:
    return [frame(src, dst, start + i, size, stream, dport) for i in range(count)]


def seq_of(data: bytes) -> tuple[int, int]:
    """(stream, seq) of a frame made by :func:`frame`."""
    off = 14 + 20 + 8
    assert data[off:off + 4] == MAGIC, f"not one of our frames: {data[:64].hex()}"
    stream, seq = struct.unpack("!II", data[off + 4:off + 12])
    return stream, seq


def send_all(sock: XskSocket, data: list[bytes], timeout: float = 2.0) -> None:
    """Send every frame (retrying while frames/ring slots are busy) and reap completions."""
    pos = 0
    deadline = time.monotonic() + timeout
    while pos < len(data):
        pos += sock.send(data[pos:pos + 256])
        if pos < len(data):
            sock.complete()
            assert time.monotonic() < deadline, f"only {pos} of {len(data)} frames accepted"
    while sock.rings()["tx"].entries and time.monotonic() < deadline:
        sock.complete()


def recv_n(sock: XskSocket, count: int, timeout: float = 2.0, quiet: float = 0.0) -> list[bytes]:
    """Receive until ``count`` frames arrived or ``timeout`` passed; then, if ``quiet`` > 0, keep
    listening that long to catch extra (unexpected) frames."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        got += sock.recv(256, timeout=min(left, 0.2))
    if quiet:
        got += sock.recv(256, timeout=quiet)
    return got


def transfer(tx: XskSocket, rx: XskSocket, data: list[bytes], timeout: float = 3.0,
             window: int = 128) -> list[bytes]:
    """Send ``data`` through ``tx`` while receiving on ``rx``, never more than ``window`` frames
    ahead of the receiver (a veth peer queues at most 256); returns what arrived."""
    got: list[bytes] = []
    pos = 0
    deadline = time.monotonic() + timeout
    while (pos < len(data) or len(got) < len(data)) and time.monotonic() < deadline:
        room = window - (pos - len(got))
        if pos < len(data) and room > 0:
            pos += tx.send(data[pos:pos + min(room, 64)])
        tx.complete()
        while True:  # drain: with busy polling each call drives the receiver's NAPI once
            batch = rx.recv(256, timeout=0 if pos < len(data) and room > 0 else 0.01)
            got += batch
            if not batch or len(got) >= len(data):
                break
    return got


@contextmanager
def pair_with_sockets(attach_mode: Any = "native", queues: int = 1, **opts: Any
                      ) -> Iterator[tuple[VethPair, XskSocket, XskSocket]]:
    """A veth pair, a TX socket on a and an RX socket on b (both with the redirect program)."""
    with VethPair(queues=queues) as pair, \
            XskSocket(pair.a, attach_mode=attach_mode, **opts) as tx, \
            XskSocket(pair.b, attach_mode=attach_mode, **opts) as rx:
        yield pair, tx, rx


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def ring_mappings() -> int:
    """AF_XDP ring mappings of this process (they show as socket:[inode] in /proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if "socket:[" in line)


def anon_rw_kib() -> int:
    """KiB of private anonymous writable mappings (where UMEMs live; also heap arenas, stacks)."""
    total = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) == 5 and parts[1].startswith("rw"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                total += (end - start) >> 10
    return total


def bpf_ids(kind: str) -> set[int]:
    """Ids of every BPF program or map in the system (``bpftool prog|map show``)."""
    out = subprocess.run(["bpftool", kind, "show"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    ids = set()
    for line in out.splitlines():
        if line and line[0].isdigit():
            ids.add(int(line.split(":", 1)[0]))
    return ids
