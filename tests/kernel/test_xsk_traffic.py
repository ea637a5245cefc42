"""Frames through AF_XDP on a veth pair, checked byte for byte and in order (xskxceiver's
SEND_RECEIVE, 2K frames, single packet, BIDIRECTIONAL, headroom, unaligned, hugepages)."""

from __future__ import annotations

import threading

import pytest

from tests.kernel.xsk_helpers import frames, pair_with_sockets, recv_n, seq_of, transfer
from xdptest.errors import NotSupportedError
from xdptest.netns import VethPair
from xdptest.xsk import Umem, XskSocket

pytestmark = pytest.mark.kernel

ZERO_STATS = {"rx_dropped": 0, "rx_invalid_descs": 0, "tx_invalid_descs": 0, "rx_ring_full": 0,
              "rx_fill_ring_empty_descs": 0}


@pytest.mark.parametrize("busy_poll", [
    pytest.param(None, id="irq"),
    pytest.param(20, id="busypoll", marks=pytest.mark.requires_feature("busy_poll")),
])
@pytest.mark.parametrize("need_wakeup", [True, False], ids=["wakeup", "nowakeup"])
@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_send_receive(attach_mode: str, need_wakeup: bool, busy_poll: int | None) -> None:
    with pair_with_sockets(attach_mode, need_wakeup=need_wakeup, busy_poll=busy_poll) as (pair, tx, rx):
        assert tx.bind_mode == rx.bind_mode == "copy"
        assert rx.need_wakeup is need_wakeup
        data = frames(pair.a, pair.b, 1000)
        got = transfer(tx, rx, data)
        assert len(got) == len(data)
        assert [seq_of(f) for f in got] == [(0, i) for i in range(1000)]
        assert got == data
        stats = rx.statistics()
        assert {k: stats[k] for k in ZERO_STATS} == ZERO_STATS
        assert tx.statistics()["tx_invalid_descs"] == 0
        tx.complete()
        assert tx.counters()["completed"] == 1000
        assert rx.counters()["rx_frames"] == 1000
        assert rx.counters()["bad_rx_descs"] == 0


def test_need_wakeup_flags_in_copy_mode() -> None:
    """MEASUREMENTS: in copy mode the TX ring always asks for a kick, the fill ring never."""
    with pair_with_sockets() as (pair, tx, rx):
        transfer(tx, rx, frames(pair.a, pair.b, 10))
        assert tx.rings()["tx"].need_wakeup
        assert not rx.rings()["fill"].need_wakeup


@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_2k_frames(attach_mode: str) -> None:
    with VethPair() as pair, \
            XskSocket(pair.a, umem=Umem(frame_size=2048, frames=1024), attach_mode=attach_mode) as tx, \
            XskSocket(pair.b, umem=Umem(frame_size=2048, frames=1024), attach_mode=attach_mode) as rx:
        # The largest frame the MTU allows still fits a 2K frame after the 256-byte headroom.
        data = [f for i in range(300) for f in frames(pair.a, pair.b, 1, (64, 1514, 777)[i % 3], start=i)]
        assert transfer(tx, rx, data) == data


def test_single_packet() -> None:
    with pair_with_sockets() as (pair, tx, rx):
        data = frames(pair.a, pair.b, 1, 60 + 14)
        assert tx.send(data) == 1
        assert recv_n(rx, 1, quiet=0.1) == data


def test_bidirectional() -> None:
    """Both ends send and receive at the same time, each from its own thread."""
    with pair_with_sockets() as (pair, sa, sb):
        a_to_b = frames(pair.a, pair.b, 2000, stream=1)
        b_to_a = frames(pair.b, pair.a, 2000, stream=2)
        results: dict[str, list[bytes]] = {}

        def side(name: str, sock: XskSocket, out: list[bytes]) -> None:
            results[name] = transfer(sock, sock, out, timeout=5.0)

        threads = [threading.Thread(target=side, args=("a", sa, a_to_b)),
                   threading.Thread(target=side, args=("b", sb, b_to_a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["b"] == a_to_b
        assert results["a"] == b_to_a


@pytest.mark.parametrize("headroom", [0, 128, 1024])
def test_umem_headroom_is_the_rx_offset(headroom: int) -> None:
    umem = Umem(frame_size=4096, frames=512, headroom=headroom)
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b, umem=umem) as rx:
        data = frames(pair.a, pair.b, 50)
        tx.send(data)
        got = []
        while len(got) < 50:
            batch = rx.recv_with_addrs(64, timeout=1.0)
            assert batch, f"only {len(got)} of 50 frames arrived"
            got += batch
        assert [f for _, f in got] == data
        assert {addr % 4096 for addr, _ in got} == {256 + headroom}
        assert umem.rx_offset == 256 + headroom
    umem.close()


@pytest.mark.parametrize("frame_size", [3000, 4001, 2048])
def test_unaligned_frames_straddle_pages(frame_size: int) -> None:
    """Unaligned chunks: frames that straddle 4K pages arrive intact."""
    with VethPair() as pair, \
            XskSocket(pair.a, umem=Umem(frame_size, 300, unaligned=True)) as tx, \
            XskSocket(pair.b, umem=Umem(frame_size, 300, unaligned=True)) as rx:
        data = frames(pair.a, pair.b, 400, size=1400)
        got: list[bytes] = []
        addrs: list[int] = []
        for start in range(0, 400, 50):
            assert tx.send(data[start:start + 50]) == 50
            tx.complete()
            while len(got) < start + 50:
                batch = rx.recv_with_addrs(64, timeout=1.0)
                assert batch, f"only {len(got)} of {start + 50} frames arrived"
                addrs += [a for a, _ in batch]
                got += [f for _, f in batch]
        assert got == data
        flat = [(a & ((1 << 48) - 1)) + (a >> 48) for a in addrs]
        if 4096 % frame_size:
            assert any(a // 4096 != (a + 1399) // 4096 for a in flat), "no frame crossed a page"


def test_hugepage_umem() -> None:
    try:
        umem = Umem(frames=1024, hugepages=True)
    except NotSupportedError as exc:
        pytest.skip(f"hugepage UMEM cannot run here: {exc}")
    with umem, VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b, umem=umem) as rx:
        data = frames(pair.a, pair.b, 200)
        assert transfer(tx, rx, data) == data
