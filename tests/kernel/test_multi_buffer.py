"""Multi-buffer AF_XDP (XDP_USE_SG, Linux 6.6+): frames longer than a UMEM frame leave in several
TX descriptors chained with XDP_PKT_CONTD and arrive in several RX descriptors, which the engine
puts back together. The kernel's own cases (selftests ``test_xsk``) have their equivalents here:

- SEND_RECEIVE_9K_PACKETS and SEND_RECEIVE_UNALIGNED_9K_PACKETS:
  ``test_9000_byte_frames_both_ways``.
- ALIGNED_INV_DESC_MULTI_BUFF and UNALIGNED_INV_DESC_MULTI_BUFF:
  ``test_invalid_parts_drop_their_frame_only``.
- TOO_MANY_FRAGS: ``test_too_many_parts_drop_the_frame``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.tx_rules import ETH_HLEN, MAX_DESCS_PER_FRAME, RULES, XDP_PKT_CONTD, TxModel
from tests.kernel.xsk_helpers import frames, recv_n, send_all, transfer
from xdptest import run_traffic
from xdptest.errors import ConfigError
from xdptest.netns import VethPair
from xdptest.xsk import Umem, XskSocket

pytestmark = [pytest.mark.kernel, pytest.mark.requires_feature("multi_buffer")]

JUMBO_MTU = 9000
JUMBO = 9000  # bytes of the kernel's 9K frames (MAX_ETH_JUMBO_SIZE)


NINE_K_MODES = {"drv-aligned-4k": ("native", 4096, False), "skb-aligned-4k": ("generic", 4096, False),
                "drv-unaligned-4k": ("native", 4096, True), "drv-unaligned-3001": ("native", 3001, True),
                "drv-aligned-2k": ("native", 2048, False)}


@pytest.mark.parametrize(("attach_mode", "frame_size", "unaligned"), NINE_K_MODES.values(), ids=NINE_K_MODES.keys())
def test_9000_byte_frames_both_ways(attach_mode: str, frame_size: int, unaligned: bool) -> None:
    """9000-byte frames from a to b and from b to a, every byte as sent and in order; each takes
    as many TX descriptors as UMEM frames it fills."""
    count = 300
    with VethPair(mtu=JUMBO_MTU) as pair, \
            XskSocket(pair.a, umem=Umem(frame_size, 2048, unaligned=unaligned), attach_mode=attach_mode) as a, \
            XskSocket(pair.b, umem=Umem(frame_size, 2048, unaligned=unaligned), attach_mode=attach_mode) as b:
        assert a.multi_buffer and b.multi_buffer  # on by itself: the MTU needs it
        for tx, rx, src, dst in ((a, b, pair.a, pair.b), (b, a, pair.b, pair.a)):
            data = frames(src, dst, count, JUMBO, stream=1 if tx is a else 2)
            got = transfer(tx, rx, data, timeout=10.0, window=32)
            assert len(got) == count and got == data
            assert rx.recv(8, timeout=0.05) == []
            deadline = time.monotonic() + 2
            parts = -(-JUMBO // frame_size)
            while tx.counters()["completed"] < count * parts and time.monotonic() < deadline:
                tx.complete()
            assert tx.counters()["completed"] == count * parts
            assert rx.statistics()["rx_dropped"] == 0


def test_multi_buffer_follows_the_mtu_unless_told() -> None:
    """None turns multi-buffer on only where the MTU needs it; False keeps one UMEM frame per
    frame: a long frame is refused before it is sent, and dropped (rx_dropped) when received."""
    with VethPair() as small:
        with XskSocket(small.a) as sock:
            assert sock.multi_buffer is False
        with XskSocket(small.a, multi_buffer=True) as sock:
            assert sock.multi_buffer is True
    with VethPair(mtu=JUMBO_MTU) as pair, XskSocket(pair.a, multi_buffer=False) as tx, \
            XskSocket(pair.b, multi_buffer=False) as rx, XskSocket(pair.b, queue=0, umem=rx.umem) as shared:
        assert shared.multi_buffer is False  # the kernel takes it from the UMEM's first socket
        data = frames(pair.a, pair.b, 1, JUMBO)
        with pytest.raises(ConfigError, match="multi_buffer=True"):
            tx.send(data)
    with VethPair(mtu=JUMBO_MTU) as pair, XskSocket(pair.a) as tx, XskSocket(pair.b, multi_buffer=False) as rx:
        send_all(tx, frames(pair.a, pair.b, 5, JUMBO) + frames(pair.a, pair.b, 1, 64, start=5))
        assert [len(f) for f in recv_n(rx, 1, quiet=0.1)] == [64]
        assert rx.statistics()["rx_dropped"] == 5


def test_recv_returns_whole_frames_one_by_one() -> None:
    """recv(1) returns one whole 9000-byte frame (its three descriptors) at a time; the address
    is the first descriptor's."""
    with VethPair(mtu=JUMBO_MTU) as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 4, JUMBO)
        send_all(tx, data)
        got = []
        deadline = time.monotonic() + 2
        while len(got) < 4 and time.monotonic() < deadline:
            got += rx.recv_with_addrs(1, timeout=0.2)
        assert [f for _, f in got] == data
        assert all(addr % 4096 == 256 for addr, _ in got)  # the kernel's headroom in a 4 KiB frame


def _raw_send(tx: XskSocket, rx: XskSocket, descs: list[tuple[int, int, int]]) -> tuple[int, list[bytes]]:
    """Send raw descriptors; (tx_invalid_descs counted, frames received)."""
    before = tx.statistics()["tx_invalid_descs"]
    assert tx.send_raw(descs) == len(descs)
    deadline = time.monotonic() + 3
    while tx.rings()["tx"].entries and time.monotonic() < deadline:
        tx.kick()
    tx.complete()
    got = recv_n(rx, 64, timeout=0.5)
    return tx.statistics()["tx_invalid_descs"] - before, got


@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
def test_invalid_parts_drop_their_frame_only(unaligned: bool) -> None:
    """The kernel's invalid multi-buffer descriptors - a zero length, an address beyond the UMEM in
    the second part, a length beyond the frame in the middle, an unknown option in the middle, a
    middle part that crosses a chunk - drop their frame and nothing else; a frame of two full
    4 KiB parts arrives whole (in three RX parts, put together again). Counts as the kernel's
    rules for this release say (tx_rules)."""
    fs, large, full = 4096, 3 * 1024, 4 * 1024
    with VethPair(mtu=JUMBO_MTU) as pair, \
            XskSocket(pair.a, umem=Umem(fs, 64, unaligned=unaligned), rx_size=0) as tx, \
            XskSocket(pair.b, multi_buffer=True) as rx:
        size = tx.umem.size
        sync = frames(pair.a, pair.b, 2, 64)
        big = frames(pair.a, pair.b, 1, 2 * full, start=2)[0]
        tx.umem.write(0, sync[0])
        tx.umem.write(fs, sync[1])
        tx.umem.write(2 * fs, big[:full])
        tx.umem.write(3 * fs, big[full:])
        tx.umem.write(4 * fs, bytes(range(256)) * 16)  # filler for the parts of dropped frames
        filler = 4 * fs
        descs = [
            (0, 64, 0),  # a valid frame to start with
            (filler, large, XDP_PKT_CONTD), (filler, large, XDP_PKT_CONTD), (filler, 0, 0),  # zero length
            (filler, large, XDP_PKT_CONTD), (size, large, 0),  # an address beyond the UMEM
            (filler, large, XDP_PKT_CONTD), (filler, full + 1, XDP_PKT_CONTD), (filler, large, 0),  # too long
            (filler, large, XDP_PKT_CONTD), (filler, large, 1 << 4), (filler, 64, 0),  # an unknown option
            (2 * fs, full, XDP_PKT_CONTD), (3 * fs, full, 0),  # two parts out, three in
            (filler, large, XDP_PKT_CONTD), (filler + fs - 32, 64, 0),  # crosses into the next chunk
            (fs, 64, 0),  # a valid frame so that the end is seen
        ]
        model = TxModel(tx.umem, max_delivered=JUMBO_MTU + ETH_HLEN + 4)
        invalid, expected = model.feed(descs)
        assert expected[0] == sync[0] and big in expected and expected[-1] == sync[1]
        got_invalid, got = _raw_send(tx, rx, descs)
        assert [len(f) for f in got] == [len(f) for f in expected]
        assert got == expected
        assert got_invalid == invalid


def test_too_many_parts_drop_the_frame() -> None:
    """A frame of MAX_SKB_FRAGS + 1 (18) parts leaves; one of 19 is dropped whole, every part
    counted invalid (the frame's later parts too from 6.18), and the next frame arrives."""
    with VethPair(mtu=JUMBO_MTU) as pair, XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b) as rx:
        tail = frames(pair.a, pair.b, 1, 64, start=7)[0]
        head = frames(pair.a, pair.b, 1, 64 * MAX_DESCS_PER_FRAME, start=8)[0]
        for i in range(MAX_DESCS_PER_FRAME):
            tx.umem.write(i * 4096, head[i * 64:(i + 1) * 64])
        tx.umem.write(20 * 4096, tail)
        fits = [(i * 4096, 64, XDP_PKT_CONTD) for i in range(MAX_DESCS_PER_FRAME - 1)]
        fits.append(((MAX_DESCS_PER_FRAME - 1) * 4096, 64, 0))
        invalid, got = _raw_send(tx, rx, [*fits, (20 * 4096, 64, 0)])
        assert (invalid, got) == (0, [head, tail])
        too_many = [(i % MAX_DESCS_PER_FRAME * 4096, 64, XDP_PKT_CONTD) for i in range(MAX_DESCS_PER_FRAME)]
        invalid, got = _raw_send(tx, rx, [*too_many, (0, 64, 0), (20 * 4096, 64, 0)])
        if RULES.drop_to_frame_end:
            assert (invalid, got) == (MAX_DESCS_PER_FRAME + 1, [tail])
        else:  # the part after the eighteenth starts a frame of its own (too short to arrive)
            assert invalid == MAX_DESCS_PER_FRAME and got[-1] == tail


@pytest.mark.parametrize("spec", [{"size": JUMBO}, {"vary": ["size=64-9000"]}], ids=["size-9000", "vary-size"])
def test_generator_verifies_jumbo_frames(spec: dict[str, Any]) -> None:
    """The generator sends and verifies 9000-byte and varied 64-9000-byte frames, every byte."""
    with VethPair(mtu=JUMBO_MTU) as pair:
        r = run_traffic(pair.a, pair.b, count=3000, window=192, **spec)  # below a veth ring's 256
    assert r.multi_buffer
    assert (r.sent, r.received, r.lost, r.corrupted, r.duplicated) == (3000, 3000, 0, 0, 0)


def test_generator_refuses_frames_above_the_mtu() -> None:
    """Frames longer than the interfaces' MTU allows are refused before anything is set up,
    naming the MTU to set."""
    with VethPair() as pair, pytest.raises(ConfigError, match=r"MTU 1500.*mtu 8986"):
        run_traffic(pair.a, pair.b, count=10, size=JUMBO)


@pytest.mark.parametrize("verbatim", [False, True], ids=["stamped", "verbatim"])
def test_command_replays_a_jumbo_capture(tmp_path: Path, verbatim: bool) -> None:
    """A capture with 8942-byte frames: the built-in topology takes the MTU they need, and every
    frame arrives as sent."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    wrpcap(str(tmp_path / "jumbo.pcap"), [Ether() / IP() / UDP() / Raw(bytes(n)) for n in (100, 5000, 8900)])
    argv = [sys.executable, "-m", "xdptest.cli", "--pcap", str(tmp_path / "jumbo.pcap"), "--count", "3000",
            "--json", str(tmp_path / "r.json"), *(["--verbatim"] if verbatim else [])]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "MTU 8928" in p.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["received"], report["corrupted"], report["multi_buffer"]) == (3000, 0, True)
