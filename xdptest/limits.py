"""The UMEM frame limits, defined once: what ``Umem``, ``TrafficOptions`` and the generator check.

Measured on 6.18: the kernel keeps ``XDP_PACKET_HEADROOM`` bytes in front of every received frame
and wants the rest of ``MIN_FRAME_ROOM`` for a minimal frame and the ``skb_shared_info`` tail of
the copy path, so a UMEM headroom may be at most ``frame_size - MIN_FRAME_ROOM``. Aligned UMEMs take
the two chunk sizes the kernel allows; unaligned ones any size up to a page. A received frame
longer than one UMEM frame holds takes several (AF_XDP multi-buffer, Linux 6.6+).
"""

from __future__ import annotations

from xdptest.errors import ConfigError

XDP_PACKET_HEADROOM = 256
MIN_FRAME_ROOM = 704
ALIGNED_FRAME_SIZES = (2048, 4096)
PAGE_SIZE = 4096
MIN_UNALIGNED_FRAME = 2048
MAX_FRAME = 65536  # XT_MAX_FRAME: the longest frame the engine splits (TX) and puts together (RX)


def check_frame_size(frame_size: object, unaligned: bool, option: str = "frame_size") -> None:
    """Refuse a UMEM frame size the kernel would not register, naming the sizes it takes."""
    if not unaligned and frame_size not in ALIGNED_FRAME_SIZES:
        raise ConfigError(f"{option} {frame_size!r}: aligned UMEMs take 2048 or 4096; use unaligned "
                          f"mode for other sizes")
    if unaligned and not (isinstance(frame_size, int) and MIN_UNALIGNED_FRAME <= frame_size <= PAGE_SIZE):
        raise ConfigError(f"{option} {frame_size!r}: unaligned UMEMs take {MIN_UNALIGNED_FRAME} to {PAGE_SIZE}")


def max_headroom(frame_size: int) -> int:
    return frame_size - MIN_FRAME_ROOM


def check_headroom(headroom: object, frame_size: int, option: str = "headroom") -> None:
    limit = max_headroom(frame_size)
    if not isinstance(headroom, int) or not 0 <= headroom <= limit:
        raise ConfigError(f"{option} {headroom!r} is too large for {frame_size}-byte frames: at most {limit} "
                          f"(the kernel keeps {XDP_PACKET_HEADROOM} bytes of XDP headroom and wants "
                          f"{MIN_FRAME_ROOM - XDP_PACKET_HEADROOM} more for the frame); use a smaller "
                          "headroom or a larger frame size")


# The most an Ethernet frame adds to its MTU: the header and one VLAN tag (veth and most
# drivers accept MTU + ETH_HLEN + VLAN_HLEN).
L2_OVERHEAD = 18
ETH_HLEN = 14


def rx_chunk_room(frame_size: int, headroom: int) -> int:
    """Bytes of a received frame one UMEM frame holds: what the kernel's and the UMEM's headroom
    leave (xsk_pool_get_rx_frame_size)."""
    return frame_size - XDP_PACKET_HEADROOM - headroom


def frames_span_chunks(mtu: int, frame_size: int, headroom: int) -> bool:
    """Does a frame the MTU allows need more than one UMEM frame (AF_XDP multi-buffer)?"""
    return mtu + L2_OVERHEAD > rx_chunk_room(frame_size, headroom)


def max_frame_len(frame_size: int, headroom: int, multi_buffer: bool = False) -> int:
    """The longest frame the kit sends and receives: what one UMEM frame holds for a receiver,
    or, with AF_XDP multi-buffer, MAX_FRAME across several."""
    return MAX_FRAME if multi_buffer else rx_chunk_room(frame_size, headroom)
