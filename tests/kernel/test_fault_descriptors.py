"""A TX descriptor fuzzer: random descriptors through ``XskSocket.send_raw`` against a model of
what the running kernel does with them (copy mode, veth).

Per descriptor, :func:`tests.kernel.tx_rules.descriptor_valid` is the one rule, with the
per-kernel differences of :data:`tests.kernel.tx_rules.RULES` (its table lists them):

- aligned UMEMs: ``addr < umem size`` and the descriptor stays inside its chunk
  (``addr % frame_size + len <= frame_size``);
- unaligned UMEMs: the address carries an offset in its top 16 bits (the kernel adds
  ``addr >> 48`` to ``addr & (2**48 - 1)``); ``len <= frame_size`` and the descriptor ends
  inside the UMEM; it may cross chunk and page boundaries;
- options: a bit the kernel does not know makes the descriptor invalid. ``XDP_TX_METADATA``
  (6.8+) passes validation but, on a UMEM registered without ``tx_metadata_len`` (as the kit's
  are), the kernel refuses to build the frame: every ``sendto()`` fails with EINVAL and the TX
  ring stops at that descriptor, which is neither sent nor counted (see the last test). The
  fuzzer therefore draws unknown bits from 2 to 31.

``XDP_PKT_CONTD`` (6.6+) without a multi-buffer bind (the kit never sets ``XDP_USE_SG``), found
by experiment: the kernel honours it anyway in copy mode. A descriptor with the bit set is the
first or a middle part of a frame, and the frame ends at the next descriptor without it:

- the parts arrive as one frame, their bytes concatenated; a frame left open at the end of a
  batch is completed by the next batch's descriptors;
- every part is checked by the same rule (with the bit set, ``len > frame_size``, or crossing
  a chunk in aligned mode, is still invalid);
- if any part is invalid, the frame so far is dropped and its descriptors are counted in
  ``tx_invalid_descs``; from 6.18 the frame's later parts are dropped and counted as they come,
  before that the next descriptor starts a new frame;
- a frame of more than 18 descriptors (the head and MAX_SKB_FRAGS = 17 fragments) is dropped
  the same way, counted when its 18th descriptor asks for more.

Valid frames must also get through the veth to count as delivered: those shorter than an
Ethernet header (14 bytes) or longer than MTU + 14 + 4 (veth's forwarding limit, 1518 bytes) are
consumed and dropped without being counted as invalid.
"""

from __future__ import annotations

import errno
import os
import random
import time

import pytest

from tests.kernel.tx_rules import (
    ETH_HLEN,
    MAX_DESCS_PER_FRAME,
    RULES,
    UNALIGNED_OFFSET_SHIFT,
    XDP_PKT_CONTD,
    XDP_TX_METADATA,
    TxModel,
    descriptor_valid,
    effective_addr,
)
from tests.kernel.xsk_helpers import recv_n
from xdptest.netns import VethPair
from xdptest.xsk import Umem, XskSocket

pytestmark = pytest.mark.kernel

MAX_DELIVERED = 1500 + ETH_HLEN + 4  # veth forwards up to MTU + header + one VLAN tag
FRAMES = 16  # a small UMEM: its edges are hit often
ROUNDS = int(os.environ.get("XDPTEST_FUZZ_ROUNDS", "60"))
MODES = [(2048, False, 101), (4096, False, 202), (4096, True, 303), (3001, True, 404)]


def _random_desc(rng: random.Random, umem: Umem) -> tuple[int, int, int]:
    size, fs = umem.size, umem.frame_size
    kind = rng.choice(["frame", "frame", "inside", "inside", "chunk edge", "umem end", "outside",
                       "offset bits"])
    if kind == "frame":
        addr = rng.randrange(FRAMES) * fs + rng.choice([0, 0, 0, rng.randrange(256)])
    elif kind == "inside":
        addr = rng.randrange(size)
    elif kind == "chunk edge":
        addr = rng.randrange(1, FRAMES) * fs - rng.randrange(1, 200)
    elif kind == "umem end":
        addr = size - rng.randrange(0, 2000)
    elif kind == "outside":
        addr = rng.choice([size + rng.randrange(10_000), 1 << 63, (1 << 64) - 1, (1 << 64) - 2,
                           1 << 48, rng.randrange(1 << 64)])
    else:  # meaningful in unaligned mode, out of range in aligned mode
        base = rng.randrange(size)
        addr = (rng.choice([1, 2, rng.randrange(1, 1 << 16)]) << UNALIGNED_OFFSET_SHIFT) | base
    length = rng.choice([
        0, 1, rng.randrange(2, ETH_HLEN), ETH_HLEN, 64, 64, rng.randrange(15, MAX_DELIVERED + 1),
        rng.randrange(15, 200), MAX_DELIVERED, MAX_DELIVERED + 1, fs - 1, fs, fs + 1, 1 << 31,
        (1 << 32) - 1, max(1, fs - effective_addr(addr, umem.unaligned) % fs),  # up to the chunk end
    ])
    options = rng.choice([0, 0, 0, 0, 0, XDP_PKT_CONTD, XDP_PKT_CONTD, 1 << rng.randrange(2, 32),
                          1 << 31, 1 << 5, XDP_PKT_CONTD | (1 << rng.randrange(2, 32))])
    return addr, length, options


def _batch(rng: random.Random, umem: Umem, round_: int) -> list[tuple[int, int, int]]:
    """Round 0: a frame of too many parts; round 1: a frame of a few; the last round: two plain
    frames, which close (or end the drop of) whatever is still open; the others: random."""
    if round_ == ROUNDS:
        return [(0, 64, 0), (umem.frame_size, 64, 0)]
    if round_ < 2 or rng.random() < 0.1:  # a multi-buffer frame, often around the limit of 18 parts
        limit = MAX_DESCS_PER_FRAME
        parts = (limit + 1, 3)[round_] if round_ < 2 else rng.randrange(limit - 3, limit + 4)
        return [(rng.randrange(FRAMES) * umem.frame_size, rng.randrange(1, 80), XDP_PKT_CONTD)
                for _ in range(parts - 1)] + [(0, 64, 0)]
    return [_random_desc(rng, umem) for _ in range(rng.randrange(1, 40))]


def _drain(tx: XskSocket, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while tx.rings()["tx"].entries and time.monotonic() < deadline:
        tx.kick()
    assert tx.rings()["tx"].entries == 0, f"the kernel did not consume the TX ring: {tx.rings()['tx']}"
    tx.complete()


def _receive(rx: XskSocket, count: int) -> list[bytes]:
    got = recv_n(rx, count, timeout=3.0) if count else []
    return got + rx.recv(256, timeout=0.01)  # and nothing more


@pytest.mark.parametrize(("frame_size", "unaligned", "seed"), MODES,
                         ids=["aligned-2k", "aligned-4k", "unaligned-4k", "unaligned-3001"])
def test_random_tx_descriptors(frame_size: int, unaligned: bool, seed: int) -> None:
    """Batches of random descriptors: the process survives, tx_invalid_descs grows by exactly the
    number of invalid descriptors, and exactly the valid frames arrive, intact and in order."""
    rng = random.Random(seed)
    sent_invalid = sent_valid = 0
    with Umem(frame_size, FRAMES, unaligned=unaligned) as umem, VethPair() as pair, \
            XskSocket(pair.a, umem=umem, rx_size=0) as tx, XskSocket(pair.b) as rx:
        model = TxModel(umem)
        for round_ in range(ROUNDS + 1):
            descs = _batch(rng, umem, round_)
            # Fresh bytes everywhere, then a distinct stamp at the start of each descriptor
            # that the kernel may read.
            umem.write(0, rng.randbytes(umem.size))
            for i, (addr, length, options) in enumerate(descs):
                if descriptor_valid(addr, length, options, umem.size, frame_size, unaligned):
                    stamp = round_.to_bytes(2, "big") + i.to_bytes(2, "big") + b"XTFZ"
                    umem.write(effective_addr(addr, unaligned), stamp[:length])
            invalid, expected = model.feed(descs)
            before = tx.statistics()["tx_invalid_descs"]
            given = [d if d[2] or rng.random() < 0.5 else d[:2] for d in descs]  # (addr, len) too
            assert tx.send_raw(given, kick=False) == len(descs)
            _drain(tx)
            got = _receive(rx, len(expected))
            where = f"seed {seed}, round {round_}, descriptors {descs}"
            assert tx.statistics()["tx_invalid_descs"] - before == invalid, where
            assert [len(f) for f in got] == [len(f) for f in expected], where
            assert got == expected, where
            sent_invalid += invalid
            sent_valid += len(expected)
        assert tx.statistics()["tx_invalid_descs"] == sent_invalid
        assert not model.pending and not model.dropping
    # The mix exercised both sides and, where the kernel joins descriptors, frames of several
    # parts and of too many parts.
    assert sent_invalid > ROUNDS and sent_valid > ROUNDS
    if RULES.contd:
        assert model.joined > 0 and model.overflowed > 0


@pytest.mark.skipif(not RULES.contd, reason="XDP_PKT_CONTD joins descriptors since Linux 6.6 (multi-buffer "
                    "AF_XDP); before, it is an unknown option, as test_random_tx_descriptors checks")
def test_contd_without_multi_buffer_bind_joins_descriptors() -> None:
    """XDP_PKT_CONTD on a socket bound without XDP_USE_SG: the parts leave as one frame, a frame
    open at the end of a batch continues in the next, and an invalid part drops the frame (from
    6.18 with the frame's later parts; before, the next descriptor starts a new frame)."""
    with Umem(4096, FRAMES) as umem, VethPair() as pair, XskSocket(pair.a, umem=umem, rx_size=0) as tx, \
            XskSocket(pair.b) as rx:
        umem.write(0, os.urandom(umem.size))
        parts = [umem.read(i * 4096, 40) for i in range(4)]
        tx.send_raw([(0, 40, XDP_PKT_CONTD), (4096, 40, XDP_PKT_CONTD), (8192, 40)], kick=False)
        _drain(tx)
        assert _receive(rx, 1) == [parts[0] + parts[1] + parts[2]]
        tx.send_raw([(12288, 40, XDP_PKT_CONTD)], kick=False)  # left open...
        _drain(tx)
        assert rx.recv(8, timeout=0.05) == []
        tx.send_raw([(0, 40)], kick=False)  # ...and closed by the next batch
        _drain(tx)
        assert _receive(rx, 1) == [parts[3] + parts[0]]
        before = tx.statistics()["tx_invalid_descs"]
        tx.send_raw([(0, 40, XDP_PKT_CONTD), (4096, 0, XDP_PKT_CONTD), (8192, 40), (12288, 40)], kick=False)
        _drain(tx)
        if RULES.drop_to_frame_end:
            assert _receive(rx, 1) == [parts[3]]
            assert tx.statistics()["tx_invalid_descs"] - before == 3
        else:
            assert _receive(rx, 2) == [parts[2], parts[3]]
            assert tx.statistics()["tx_invalid_descs"] - before == 2
        # At most 18 descriptors to a frame: the 18th asking for more drops all of them.
        for count, arrives in ((MAX_DESCS_PER_FRAME, True), (MAX_DESCS_PER_FRAME + 1, False)):
            before = tx.statistics()["tx_invalid_descs"]
            chain = [(i % 4 * 4096, 40, XDP_PKT_CONTD) for i in range(count - 1)] + [(0, 40, 0)]
            tx.send_raw([*chain, (4096, 40)], kick=False)
            _drain(tx)
            if arrives:
                expected, invalid = [b"".join(parts[i % 4] for i in range(count - 1)) + parts[0], parts[1]], 0
            elif RULES.drop_to_frame_end:
                expected, invalid = [parts[1]], count
            else:  # the closing descriptor leaves as a frame of its own
                expected, invalid = [parts[0], parts[1]], count - 1
            assert _receive(rx, len(expected)) == expected
            assert tx.statistics()["tx_invalid_descs"] - before == invalid


@pytest.mark.parametrize("bad", [(-1, 64), (1 << 64, 64), (0, -1), (0, 1 << 32), (0, 64, 1 << 32), (0, 64, -1)],
                         ids=["addr<0", "addr>=2**64", "len<0", "len>=2**32", "options>=2**32", "options<0"])
def test_values_a_descriptor_cannot_hold_are_refused_before_the_ring(bad: tuple[int, ...]) -> None:
    """A value that does not fit the descriptor's fields raises OverflowError; no descriptor of
    the batch, not even the valid one before it, reaches the ring."""
    with VethPair() as pair, XskSocket(pair.a, rx_size=0) as tx:
        with pytest.raises(OverflowError):
            tx.send_raw([(0, 64), bad])
        assert tx.rings()["tx"].producer == 0
        assert tx.send_raw([(0, 64)]) == 1


def test_tx_metadata_option_without_metadata_area_stalls_the_ring() -> None:
    """XDP_TX_METADATA on a UMEM without tx_metadata_len is not counted invalid: the kernel
    refuses the descriptor on every sendto() (EINVAL) and leaves it at the head of the ring.
    Before 6.8 the bit is an unknown option: counted invalid, and the ring goes on."""
    with Umem(4096, FRAMES) as umem, VethPair() as pair, XskSocket(pair.a, umem=umem, rx_size=0) as tx, \
            XskSocket(pair.b) as rx:
        umem.write(0, os.urandom(umem.size))
        first, third = umem.read(0, 64), umem.read(8192, 64)
        descs = [(0, 64), (4096, 64, XDP_TX_METADATA), (8192, 64)]
        if not RULES.tx_metadata:
            assert tx.send_raw(descs) == 3
            _drain(tx)
            assert _receive(rx, 2) == [first, third]
            assert tx.statistics()["tx_invalid_descs"] == 1
            return
        with pytest.raises(OSError) as info:
            tx.send_raw(descs)
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OSError):
            tx.kick()
        ring = tx.rings()["tx"]
        # The first descriptor went; 6.12 publishes the consumer index only later.
        assert ring.producer == 3 and ring.consumer in (0, 1)
        assert _receive(rx, 1) == [first]
        assert tx.statistics()["tx_invalid_descs"] == 0
