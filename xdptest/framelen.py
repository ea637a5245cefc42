"""Frame lengths of a traffic run: the kit's limit, the kernel's (one UMEM frame per frame before
AF_XDP multi-buffer) and the interfaces' MTU, checked before anything is set up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from xdptest import packets
from xdptest.errors import ConfigError, NotSupportedError
from xdptest.features import probe
from xdptest.limits import ETH_HLEN, L2_OVERHEAD, MAX_FRAME, frames_span_chunks, max_frame_len
from xdptest.options import TrafficOptions

if TYPE_CHECKING:
    from xdptest.netns import Endpoint

__all__ = ["check_frame_lengths", "longest_frame", "mtu_for", "multi_buffer_for", "needs_multi_buffer"]


def longest_frame(templates: list[packets.Template], varies: list[packets.Vary]) -> int:
    """The longest frame a run sends: its longest template, or the top of ``--vary size``."""
    return max([t.size for t in templates] + [v.hi for v in varies if v.kind == packets.KIND_SIZE])


def mtu_for(longest: int) -> int:
    """The MTU an interface needs to pass untagged frames of ``longest`` bytes (at least 1500)."""
    return max(1500, longest - ETH_HLEN)


def needs_multi_buffer(longest: int, options: TrafficOptions) -> bool:
    """Do frames of ``longest`` bytes need more than one UMEM frame each?"""
    return longest > max_frame_len(options.frame_size, options.headroom)


def check_frame_lengths(longest: int, options: TrafficOptions, src: Endpoint, dst: Endpoint | None) -> None:
    """Frames of up to ``longest`` bytes must fit the kit's limit, the kernel (one UMEM frame each
    before AF_XDP multi-buffer) and both interfaces' MTU, before anything is set up."""
    room = max_frame_len(options.frame_size, options.headroom)
    headroom = f" with {options.headroom} bytes of headroom" if options.headroom else ""
    where = f"{options.frame_size}-byte UMEM frame{headroom}"
    if longest > MAX_FRAME:
        raise ConfigError(f"frames of up to {longest} bytes: the kit sends frames of at most {MAX_FRAME} bytes")
    if longest > room:
        status = probe("multi_buffer")
        if not status.present:
            raise NotSupportedError(f"frames of {longest} bytes (a {where} holds {room}; longer ones take "
                                    "several: AF_XDP multi-buffer)", status.reason, since=status.since)
    for end in (src, dst):
        if end is not None and longest > end.mtu + L2_OVERHEAD:
            raise ConfigError(f"frames of up to {longest} bytes do not pass {end} (MTU {end.mtu}, frames of "
                              f"at most {end.mtu + L2_OVERHEAD} bytes): raise its MTU to {mtu_for(longest)} "
                              f"(`ip link set {end.ifname} mtu {mtu_for(longest)}`, or VethPair(mtu=...)) "
                              "or send shorter frames")


def multi_buffer_for(asked: bool | None, mtu: int, frame_size: int, headroom: int) -> bool:
    """Whether a socket binds with XDP_USE_SG: ``asked`` True (NotSupportedError before Linux 6.6)
    or False; None turns it on where a frame the MTU allows fills more than one UMEM frame and the
    kernel has AF_XDP multi-buffer (before, longer frames are dropped, as they always were)."""
    if asked is False or (asked is None and not frames_span_chunks(mtu, frame_size, headroom)):
        return False
    status = probe("multi_buffer")
    if not status.present and asked:
        raise NotSupportedError("AF_XDP multi-buffer (XDP_USE_SG)", status.reason, since=status.since)
    return status.present
