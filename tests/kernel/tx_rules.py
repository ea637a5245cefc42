"""What the running kernel does with an AF_XDP TX descriptor in copy mode: the one rule the
descriptor tests check, per kernel.

Measured on veth with single descriptors, the invalid-descriptor table and frames of several
descriptors, on 5.10, 6.1, 6.12, 6.18 and 7.2:

| behaviour | 5.10, 6.1 | 6.12 | 6.18, 7.2 |
|---|---|---|---|
| descriptors one ``sendto()`` takes | 16 on 5.10, 32 on 6.1 | 32 | 32 |
| TX ``poll()`` with the completion ring full | spins on 5.10; times out on 6.1 | times out | times out |
| ``XDP_PKT_CONTD`` joins descriptors into one frame | no: an unknown option | yes | yes |
| ``XDP_TX_METADATA`` (no metadata area) | an unknown option | stalls the ring | stalls the ring |
| a zero-length descriptor | consumed, dropped, not counted | counted invalid | counted invalid |
| an invalid part (or an 18th asking for more) | drops the frame so far | the same | and its later parts |

Option bits come with their features (``XDP_PKT_CONTD``: multi-buffer AF_XDP, 6.6;
``XDP_TX_METADATA``: 6.8). The other changes lie somewhere between the measured releases; they
are placed at the first release that showed them (6.1, 6.12 and 6.18).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdptest.features import kernel_version
from xdptest.xsk import Umem

XDP_PKT_CONTD = 1 << 0
XDP_TX_METADATA = 1 << 1
UNALIGNED_OFFSET_SHIFT = 48
ETH_HLEN = 14
MAX_DESCS_PER_FRAME = 18  # the head and MAX_SKB_FRAGS (17) fragments


@dataclass(frozen=True)
class TxRules:
    contd: bool  # XDP_PKT_CONTD continues a frame in the next descriptor
    tx_metadata: bool  # XDP_TX_METADATA is a known option
    zero_length_invalid: bool  # a zero-length descriptor counts in tx_invalid_descs
    drop_to_frame_end: bool  # a frame's parts after an invalid one are dropped and counted
    tx_budget: int  # descriptors one copy-mode sendto() takes before it fails with EAGAIN
    tx_poll_times_out: bool  # TX poll() with a full completion ring times out (5.10 spins)

    @property
    def known_options(self) -> int:
        return (XDP_PKT_CONTD if self.contd else 0) | (XDP_TX_METADATA if self.tx_metadata else 0)


def rules_for(version: tuple[int, int]) -> TxRules:
    return TxRules(contd=version >= (6, 6), tx_metadata=version >= (6, 8),
                   zero_length_invalid=version >= (6, 12), drop_to_frame_end=version >= (6, 18),
                   tx_budget=32 if version >= (6, 1) else 16, tx_poll_times_out=version >= (6, 1))


RULES = rules_for(kernel_version())


def effective_addr(addr: int, unaligned: bool) -> int:
    """Where the kernel reads a descriptor's data: unaligned addresses carry an offset on top."""
    if not unaligned:
        return addr
    return (addr & ((1 << UNALIGNED_OFFSET_SHIFT) - 1)) + (addr >> UNALIGNED_OFFSET_SHIFT)


def descriptor_valid(addr: int, length: int, options: int, umem_size: int, frame_size: int,
                     unaligned: bool, rules: TxRules = RULES) -> bool:
    """Whether the kernel takes a descriptor (else it counts it in ``tx_invalid_descs``).

    Aligned UMEMs: ``addr < umem size`` and the descriptor stays inside its chunk. Unaligned:
    ``len <= frame_size`` and the descriptor (at its effective address) ends inside the UMEM; it
    may cross chunks. Unknown option bits make it invalid. A zero-length descriptor is invalid
    where ``rules.zero_length_invalid``; elsewhere it is taken if its address is, and the veth
    drops the empty frame.
    """
    if options & ~rules.known_options:
        return False
    if length == 0:
        if rules.zero_length_invalid:
            return False
        return effective_addr(addr, unaligned) < umem_size
    if unaligned:
        start = effective_addr(addr, unaligned)
        return length <= frame_size and start + length <= umem_size
    return addr < umem_size and addr % frame_size + length <= frame_size


@dataclass
class TxModel:
    """What the kernel does with a stream of descriptors: which are counted invalid, which
    frames leave (bytes captured when the descriptors are fed, as the kernel copies them)."""

    umem: Umem
    max_delivered: int = 1500 + ETH_HLEN + 4  # veth forwards up to MTU + header + one VLAN tag
    pending: list[bytes] = field(default_factory=list)  # parts of an open multi-buffer frame
    dropping: bool = False  # inside a frame that was dropped, until its last descriptor
    joined: int = 0  # frames of several descriptors delivered
    overflowed: int = 0  # frames dropped for having too many descriptors

    def feed(self, descs: list[tuple[int, int, int]]) -> tuple[int, list[bytes]]:
        invalid, delivered = 0, []
        umem = self.umem
        for addr, length, options in descs:
            more = RULES.contd and bool(options & XDP_PKT_CONTD)
            if self.dropping:
                invalid += 1
                self.dropping = more
                continue
            if not descriptor_valid(addr, length, options, umem.size, umem.frame_size, umem.unaligned):
                invalid += 1 + len(self.pending)
                self.pending = []
                self.dropping = more and RULES.drop_to_frame_end
                continue
            self.pending.append(umem.read(effective_addr(addr, umem.unaligned), length))
            if more and len(self.pending) == MAX_DESCS_PER_FRAME:
                invalid += len(self.pending)
                self.overflowed += 1
                self.pending = []
                self.dropping = RULES.drop_to_frame_end
                continue
            if not more:
                parts, self.pending = self.pending, []
                frame = b"".join(parts)
                if ETH_HLEN <= len(frame) <= self.max_delivered:
                    delivered.append(frame)
                    self.joined += len(parts) > 1
        return invalid, delivered
