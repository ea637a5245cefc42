"""The kernel's XDP_STATISTICS and descriptor validation (xskxceiver's STAT_RX_DROPPED,
STAT_TX_INVALID, STAT_RX_FULL, STAT_FILL_EMPTY, the invalid TX descriptor tables and
TX_QUEUE_CONSUMER), plus our own check of descriptors coming back from the kernel."""

from __future__ import annotations

import time

import pytest

from tests.kernel.tx_rules import ETH_HLEN, RULES, descriptor_valid
from tests.kernel.xsk_helpers import frames, recv_n, send_all, seq_of, transfer
from xdptest.netns import VethPair
from xdptest.xsk import Umem, XskSocket

pytestmark = pytest.mark.kernel

KERNEL_TX_BUDGET = RULES.tx_budget  # descriptors one copy-mode sendto() consumes (TX_BATCH_SIZE)


def _wait_stat(sock: XskSocket, name: str, value: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = sock.statistics()[name]
        if got >= value or time.monotonic() > deadline:
            return got
        time.sleep(0.005)


def _drain_tx(sock: XskSocket, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while sock.rings()["tx"].entries and time.monotonic() < deadline:
        sock.kick()


def test_stat_rx_dropped_frames_too_large_for_the_headroom() -> None:
    """Without multi-buffer, frames that do not fit after the UMEM headroom are dropped and
    counted as rx_dropped."""
    frame_size, headroom = 2048, 2048 - 704  # the most the kernel allows: 448 bytes of room
    with VethPair() as pair, XskSocket(pair.a) as tx, \
            XskSocket(pair.b, umem=Umem(frame_size, 1024, headroom=headroom), multi_buffer=False) as rx:
        data = [f for i in range(100) for f in frames(pair.a, pair.b, 1, (64, 600)[i % 2], start=i)]
        send_all(tx, data)
        got = recv_n(rx, 50, quiet=0.1)
        assert got == data[0::2]
        assert _wait_stat(rx, "rx_dropped", 50) == 50
        assert rx.statistics()["rx_ring_full"] == 0


def test_stat_tx_invalid() -> None:
    """Descriptors longer than a frame are skipped by the kernel and counted as tx_invalid_descs."""
    with VethPair() as pair, XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 20)
        descs = []
        for i, f in enumerate(data):
            tx.umem.write(i * 4096, f)
            descs.append((i * 4096, len(f) if i % 4 else 4096 + 1))
        assert tx.send_raw(descs) == 20
        _drain_tx(tx)
        got = recv_n(rx, 15, quiet=0.1)
        assert got == [f for i, f in enumerate(data) if i % 4]
        assert tx.statistics()["tx_invalid_descs"] == 5


def test_stat_rx_full() -> None:
    """With a small RX ring nobody reads, the frames beyond it are counted as rx_ring_full."""
    with VethPair() as pair, XskSocket(pair.a) as tx, \
            XskSocket(pair.b, rx_size=64, tx_size=0, fill_size=1024) as rx:
        data = frames(pair.a, pair.b, 200)
        for start in range(0, 200, 50):  # below the veth's 256-frame queue
            send_all(tx, data[start:start + 50])
            time.sleep(0.01)
        assert _wait_stat(rx, "rx_ring_full", 136) == 136
        assert rx.rings()["rx"].entries == 64
        assert recv_n(rx, 64, quiet=0.1) == data[:64]


def test_stat_fill_empty() -> None:
    """An empty fill ring: every frame is counted in rx_fill_ring_empty_descs, none arrives."""
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b, fill_frames=0) as rx:
        assert rx.rings()["fill"].entries == 0
        send_all(tx, frames(pair.a, pair.b, 40))
        assert _wait_stat(rx, "rx_fill_ring_empty_descs", 40) == 40
        assert rx.recv(64, timeout=0.05) == []


def _desc_table(umem_size: int, frame_size: int, unaligned: bool) -> list[tuple[str, int, int, bool]]:
    """(name, addr, len, valid) after xskxceiver's table; validity by the running kernel's rules
    for copy mode (``tx_rules``): aligned descriptors stay inside one chunk, unaligned ones inside
    the UMEM with len <= the chunk size; a zero-length one is valid (and dropped by the veth)
    before 6.12."""
    m = 64
    table = [
        ("zero address", 0, m),
        ("allowed", frame_size, m),
        ("straddles the UMEM start", (1 << 64) - 2, m),
        ("too large", 0, frame_size + 1),
        ("up to the UMEM end", umem_size - m, m),
        ("after the UMEM end", umem_size, m),
        ("straddles the UMEM end", umem_size - m // 2, m),
        ("straddles a 4K boundary", 0x1000 - m // 2, m),
        ("straddles a 2K boundary", 0x800 - m // 2, m),
        ("zero length", 2 * frame_size, 0),
        ("synchronisation", 0, m),
    ]
    return [(name, addr, length, descriptor_valid(addr, length, 0, umem_size, frame_size, unaligned))
            for name, addr, length in table]


@pytest.mark.parametrize(("frame_size", "unaligned"), [(4096, False), (2048, False), (4096, True),
                                                       (4001, True)],
                         ids=["aligned-4k", "aligned-2k", "unaligned-4k", "unaligned-4001"])
def test_invalid_tx_descriptors(frame_size: int, unaligned: bool) -> None:
    """The kernel sends exactly the valid descriptors, in order, and counts the others."""
    umem = Umem(frame_size, 16, unaligned=unaligned)
    with VethPair() as pair, XskSocket(pair.a, umem=umem, rx_size=0) as tx, XskSocket(pair.b) as rx:
        table = _desc_table(umem.size, frame_size, unaligned)
        if unaligned:
            assert [valid for name, *_, valid in table if "boundary" in name] == [True, True]
        elif frame_size == 2048:
            assert [valid for name, *_, valid in table if "boundary" in name] == [False, False]
        # Ethernet frames with distinct payloads at every in-range address, later ones winning.
        for i, (_, addr, length, _) in enumerate(table):
            if addr < umem.size and length:
                chunk = frames(pair.a, pair.b, 1, 64, start=i)[0]
                umem.write(addr, chunk[: min(64, umem.size - addr)])
        expected = [umem.read(addr, length) for _, addr, length, valid in table if valid and length >= ETH_HLEN]
        assert tx.send_raw([(addr, length) for _, addr, length, _ in table]) == len(table)
        _drain_tx(tx)
        got = recv_n(rx, len(expected), quiet=0.1)
        assert got == expected
        invalid = sum(1 for *_, valid in table if not valid)
        assert tx.statistics()["tx_invalid_descs"] == invalid
    umem.close()


def test_tx_queue_consumer_one_kick_consumes_one_budget() -> None:
    """TX_QUEUE_CONSUMER: a copy-mode kick consumes at most the kernel's TX budget (16 or 32)."""
    with VethPair() as pair, XskSocket(pair.a, rx_size=0, tx_size=256) as tx, XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 100)
        for i, f in enumerate(data):
            tx.umem.write(i * 4096, f)
        assert tx.send_raw([(i * 4096, len(f)) for i, f in enumerate(data)], kick=False) == 100
        assert tx.rings()["tx"].consumer == 0
        tx.kick()
        # What one kick sent is what arrives. The shared consumer index says it too on 6.18; 6.12
        # publishes it lazily (at the next kick), so there it may still read 0.
        assert recv_n(rx, 100, timeout=0.5) == data[:KERNEL_TX_BUDGET]
        assert tx.rings()["tx"].consumer in (0, KERNEL_TX_BUDGET)
        _drain_tx(tx)
        assert tx.rings()["tx"].consumer == 100
        assert recv_n(rx, 100 - KERNEL_TX_BUDGET) == data[KERNEL_TX_BUDGET:]


def test_bad_rx_descriptor_is_counted_not_read() -> None:
    """Descriptors outside the UMEM (or crossing a frame) are skipped and counted."""
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        rx._test_forge("rx", rx.umem.size + 4096, 64)
        assert rx.recv(64, timeout=0.05) == []
        rx._test_forge("rx", 4096 * 3 + 4000, 200)  # crosses into the next frame
        rx._test_forge("rx", 0, 0)
        assert rx.recv(64, timeout=0.05) == []
        assert rx.counters()["bad_rx_descs"] == 3
        tx._test_forge("comp", tx.umem.size + 1)
        tx._test_forge("comp", 4096)  # inside, but not a frame that was sent
        tx.complete()
        counters = tx.counters()
        assert counters["bad_comp_addrs"] == 1
        assert counters["foreign_comp_addrs"] == 1
        assert counters["completed"] == 0


def test_statistics_names() -> None:
    with VethPair() as pair, XskSocket(pair.b) as rx:
        assert set(rx.statistics()) == {"rx_dropped", "rx_invalid_descs", "tx_invalid_descs",
                                        "rx_ring_full", "rx_fill_ring_empty_descs",
                                        "tx_ring_empty_descs"}
        assert all(v == 0 for k, v in rx.statistics().items() if k != "tx_ring_empty_descs")
        assert seq_of(frames(pair.a, pair.b, 1, start=7)[0]) == (0, 7)


def test_send_raw_keeps_each_descriptors_options() -> None:
    """A descriptor's options reach the kernel: an option bit the kernel does not know makes the
    descriptor invalid (counted, not sent); options 0 on either side of it send as usual."""
    unknown_option = 1 << 31
    with VethPair() as pair, XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 3)
        for i, f in enumerate(data):
            tx.umem.write(i * 4096, f)
        descs = [(0, len(data[0]), 0), (4096, len(data[1]), unknown_option), (8192, len(data[2]))]
        assert tx.send_raw(descs) == 3
        _drain_tx(tx)
        assert recv_n(rx, 3, quiet=0.1) == [data[0], data[2]]
        assert tx.statistics()["tx_invalid_descs"] == 1


def test_every_frame_of_an_odd_unaligned_umem_completes() -> None:
    """Frames at odd addresses (an unaligned UMEM of 3001-byte frames) all come back through the
    completion ring to the allocator, although 6.18 clears the lowest bit of such an address."""
    with VethPair() as pair, XskSocket(pair.a, umem=Umem(3001, 256, unaligned=True), rx_size=0) as tx, \
            XskSocket(pair.b) as rx:
        free = tx.umem.free_frames
        data = frames(pair.a, pair.b, 300, 64)
        got = transfer(tx, rx, data)
        assert got == data
        deadline = time.monotonic() + 2
        while tx.counters()["completed"] < 300 and time.monotonic() < deadline:
            tx.complete()
        counters = tx.counters()
        assert (counters["completed"], counters["foreign_comp_addrs"]) == (300, 0)
        assert tx.umem.free_frames == free
