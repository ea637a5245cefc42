"""poll() and timeouts (xskxceiver's POLL_RX, POLL_TX, POLL_RXQ_EMPTY, POLL_TXQ_FULL)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.kernel.tx_rules import RULES
from tests.kernel.xsk_helpers import frames, recv_n, send_all
from xdptest.netns import VethPair
from xdptest.xsk import XskSocket

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("need_wakeup", [True, False], ids=["wakeup", "nowakeup"])
@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_poll_rx(attach_mode: str, need_wakeup: bool) -> None:
    """The receiver sleeps in poll() until frames arrive, then reads them all in order."""
    with VethPair() as pair, \
            XskSocket(pair.a, attach_mode=attach_mode, need_wakeup=need_wakeup) as tx, \
            XskSocket(pair.b, attach_mode=attach_mode, need_wakeup=need_wakeup) as rx:  # type: ignore[arg-type]
        data = frames(pair.a, pair.b, 200)
        sender = threading.Timer(0.05, send_all, args=(tx, data))
        sender.start()
        try:
            ready = rx.poll(rx=True, timeout=2.0)
        finally:
            sender.join()
        assert ready == {"rx"}
        assert recv_n(rx, 200) == data


@pytest.mark.parametrize("need_wakeup", [True, False], ids=["wakeup", "nowakeup"])
def test_poll_tx(need_wakeup: bool) -> None:
    """POLL_TX: an empty TX ring is writable; frames sent after poll() arrive."""
    with VethPair() as pair, XskSocket(pair.a, need_wakeup=need_wakeup) as tx, \
            XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 300)
        sent = 0
        got: list[bytes] = []
        while sent < len(data):
            assert tx.poll(rx=False, tx=True, timeout=1.0) == {"tx"}
            sent += tx.send(data[sent:sent + 100])
            tx.complete()
            got += recv_n(rx, sent - len(got))
        assert got == data
        assert tx.statistics()["tx_invalid_descs"] == 0


def test_poll_rx_queue_empty_times_out() -> None:
    """POLL_RXQ_EMPTY: nothing arrives, poll() and recv() return empty after their timeout."""
    with VethPair() as pair, XskSocket(pair.b) as rx:
        start = time.monotonic()
        assert rx.poll(rx=True, timeout=0.1) == set()
        assert 0.09 <= time.monotonic() - start < 1.0
        start = time.monotonic()
        assert rx.recv(64, timeout=0.1) == []
        assert 0.09 <= time.monotonic() - start < 1.0
        assert rx.recv(64, timeout=0) == []


@pytest.mark.skipif(
    not RULES.tx_poll_times_out,
    reason="Linux 5.10 spins in poll() on a TX socket whose completion ring is full instead of "
           "timing out (each refused send frees its buffer and wakes the poller); 6.1 times out",
)
def test_poll_tx_queue_full_times_out() -> None:
    """POLL_TXQ_FULL: with the completion ring full the kernel cannot consume the TX ring, so it
    stays more than half full and is not writable: poll() times out cleanly. (A copy-mode
    poll() transmits, so a merely unkicked ring would be drained by the poll itself.)"""
    with VethPair() as pair, XskSocket(pair.a, rx_size=0, tx_size=64, comp_size=32) as tx, \
            XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 64)
        for i, f in enumerate(data):
            tx.umem.write(i * 4096, f)
        descs = [(i * 4096, len(f)) for i, f in enumerate(data)]
        assert tx.send_raw(descs[:32]) == 32
        while tx.rings()["tx"].entries:
            tx.kick()
        assert tx.rings()["comp"].entries == 32  # full, and nobody reaps it
        assert tx.send_raw(descs) == 64
        start = time.monotonic()
        assert tx.poll(rx=False, tx=True, timeout=0.1) == set()
        assert 0.09 <= time.monotonic() - start < 1.0
        assert tx.rings()["tx"].entries == 64
        deadline = time.monotonic() + 2
        while tx.rings()["tx"].entries and time.monotonic() < deadline:
            tx.complete()
        assert tx.poll(rx=False, tx=True, timeout=0.1) == {"tx"}
        assert recv_n(rx, 96) == data[:32] + data


def test_recv_blocks_until_a_frame_arrives() -> None:
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        data = frames(pair.a, pair.b, 1)
        timer = threading.Timer(0.1, tx.send, args=(data,))
        start = time.monotonic()
        timer.start()
        try:
            got = rx.recv(64, timeout=None)
        finally:
            timer.join()
        assert got == data
        assert time.monotonic() - start >= 0.09
