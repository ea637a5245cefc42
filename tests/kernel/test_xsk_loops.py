"""The batched C loops the traffic generator drives: TX of templates, RX with verification,
whole loops in C and bursts driven from Python, the GIL released meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from tests.kernel.xsk_helpers import frames
from xdptest.netns import VethPair
from xdptest.xsk import XskLoop, XskSocket

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("need_wakeup", [True, False], ids=["wakeup", "nowakeup"])
@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_c_loops_send_and_verify(attach_mode: str, need_wakeup: bool) -> None:
    """The C TX loop sends 64 rotating templates, the C RX loop (in a thread, GIL released)
    verifies every frame against the same rotation: all arrive, all match, in order."""
    count = 20000
    with VethPair() as pair, \
            XskSocket(pair.a, attach_mode=attach_mode, need_wakeup=need_wakeup) as tx, \
            XskSocket(pair.b, attach_mode=attach_mode, need_wakeup=need_wakeup) as rx:  # type: ignore[arg-type]
        templates = frames(pair.a, pair.b, 64)
        rx_loop = XskLoop(templates, count=count, verify=True, idle=1.0)
        rx_stats: dict[str, int] = {}
        thread = threading.Thread(target=lambda: rx_stats.update(rx.run_rx(rx_loop)))
        thread.start()
        tx_loop = XskLoop(templates, count=count, idle=1.0)
        # Stay below what the veth peer can queue: pace with count slices.
        sent = 0
        while sent < count:
            tx_loop.set_limits(count=min(count, sent + 128))
            sent = tx.run_tx(tx_loop)["frames"]
            while rx_loop.stats()["frames"] < sent - 64 and thread.is_alive():
                time.sleep(0.0002)
        thread.join(5)
        assert not thread.is_alive()
        assert sent == count
        assert rx_stats["frames"] == count
        assert rx_stats["verified"] == count
        assert rx_stats["mismatched"] == 0
        assert rx_stats["resyncs"] == 0
        assert rx_stats["bad_descs"] == 0
        assert rx_stats["bytes"] == count * 64


def test_python_driven_bursts_and_copy_out() -> None:
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        templates = frames(pair.a, pair.b, 8, size=128)
        tx_loop = XskLoop(templates, batch=32, count=100)
        rx_loop = XskLoop(templates, batch=64, verify=True, copy_out=100,
                          copy_out_bytes=100 * 128)
        deadline = time.monotonic() + 3
        while rx_loop.stats()["frames"] < 100 and time.monotonic() < deadline:
            tx.tx_burst(tx_loop)
            while rx.rx_burst(rx_loop):
                pass
        st = rx_loop.stats()
        assert tx_loop.stats()["frames"] == 100
        assert st["frames"] == st["verified"] == 100
        assert st["mismatched"] == 0
        assert rx_loop.copied_frames() == [templates[i % 8] for i in range(100)]


def test_verification_catches_corruption_and_gaps() -> None:
    """Frames equal to no template are mismatched; a skipped template is a resync."""
    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        templates = frames(pair.a, pair.b, 4)
        corrupt = bytearray(templates[2])
        corrupt[-1] ^= 0xFF
        sent = [templates[0], templates[1], bytes(corrupt), templates[3], templates[1]]
        assert tx.send(sent) == 5
        loop = XskLoop(templates, verify=True, count=5, idle=1.0)
        st = rx.run_rx(loop)
        assert st["frames"] == 5
        assert st["mismatched"] == 1
        assert st["resyncs"] == 1  # after template 3 came 1, not 0
        assert st["verified"] == 4


def test_stamp_generator_and_verifier_in_the_loops() -> None:
    """The loops drive the stamp engine in C: the TX loop builds stamped frames straight into
    the UMEM, the RX loop feeds each one to the verifier: no loss, no corruption, in order."""
    from xdptest import packets
    from xdptest._native.gen import GenSpec, Verifier

    with VethPair() as pair, XskSocket(pair.a) as tx, XskSocket(pair.b) as rx:
        expr = (f"Ether(src='{pair.a.mac}', dst='{pair.b.mac}')/IP(src='{pair.a.ipv4}', "
                f"dst='{pair.b.ipv4}')/UDP(sport=1000, dport=9)")
        template = packets.from_scapy(expr, 128)
        gen = GenSpec([template], [packets.resolve(packets.parse_vary("udp.sport=1000-1099"),
                                                   template)], stream=3)
        verifier = Verifier()
        tx_loop = XskLoop(batch=64, gen=gen)
        rx_loop = XskLoop(batch=64, verifier=verifier)
        deadline = time.monotonic() + 5
        while rx_loop.stats()["frames"] < 5000 and time.monotonic() < deadline:
            if tx_loop.stats()["frames"] - rx_loop.stats()["frames"] < 128:
                tx_loop.set_limits(count=min(5000, tx_loop.stats()["frames"] + 64))
                tx.tx_burst(tx_loop)
            rx.rx_burst(rx_loop)
        totals = verifier.totals()
        stream = verifier.stream(3)
        assert totals.frames == totals.stamped == 5000
        assert totals.corrupted == 0 and totals.foreign == 0
        assert stream is not None
        assert (stream.unique, stream.duplicated, stream.reordered, stream.highest) == (5000, 0, 0, 5000)
        assert totals.latency_samples == 5000


def test_generator_frames_must_fit_the_umem() -> None:
    from xdptest import packets
    from xdptest._native.gen import GenSpec
    from xdptest.errors import ConfigError
    from xdptest.xsk import Umem

    with VethPair() as pair, XskSocket(pair.a, umem=Umem(frame_size=2048, frames=64)) as tx:
        template = packets.from_scapy("Ether(dst='02:00:00:00:00:02')/IP()/UDP()", 3000)
        with pytest.raises(ConfigError, match=r"up to 3000 bytes.*2048"):
            tx.tx_burst(XskLoop(gen=GenSpec([template], [], stream=0)))
