"""UMEM: the packet memory an AF_XDP socket shares with the kernel (see :class:`Umem`)."""

from __future__ import annotations

import contextlib
import threading
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from xdptest._native import xsk as _libxsk
from xdptest.errors import ClosedError, ConfigError, NotSupportedError
from xdptest.limits import XDP_PACKET_HEADROOM, check_frame_size, check_headroom

if TYPE_CHECKING:
    from xdptest.xsk import XskSocket

__all__ = ["Umem"]


def _hugepages_free() -> int:
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


class Umem:
    """Packet memory shared with the kernel: ``frames`` frames of ``frame_size`` bytes.

    Aligned mode (default) takes frame sizes 2048 or 4096; ``unaligned=True`` takes any size from
    2048 to 4096, frames may then straddle pages. ``headroom`` bytes are left free in front of each
    received frame (after the kernel's own 256). ``hugepages=True`` backs it with 2 MB pages.
    One Umem may serve several sockets (XDP_SHARED_UMEM): pass it to each.
    """

    def __init__(self, frame_size: int = 4096, frames: int = 4096, headroom: int = 0,
                 unaligned: bool = False, hugepages: bool = False) -> None:
        self.frame_size = frame_size
        self.frames = frames
        self.headroom = headroom
        self.unaligned = unaligned
        self.hugepages = hugepages
        self._native: _libxsk.NativeUmem | None = None
        if not isinstance(frames, int) or not 1 <= frames <= 1 << 24:
            raise ConfigError(f"frames must be an integer from 1 to {1 << 24}, got {frames!r}")
        check_frame_size(frame_size, unaligned)
        check_headroom(headroom, frame_size)
        need = -(-frame_size * frames // (2 << 20))
        if hugepages and _hugepages_free() < need:
            raise NotSupportedError("hugepage UMEM", f"it needs {need} free 2 MB hugepages, "
                                    f"/proc/meminfo has HugePages_Free: {_hugepages_free()}; "
                                    "reserve some with `echo N > /proc/sys/vm/nr_hugepages`")
        flags = (_libxsk.UMEM_UNALIGNED if unaligned else 0) | (_libxsk.UMEM_HUGEPAGES if hugepages else 0)
        self.size = frame_size * frames
        self._users: weakref.WeakSet[XskSocket] = weakref.WeakSet()  # no cycle: sockets hold the Umem
        self._open = 0  # sockets set up on it and not yet released (also ones dropped unclosed)
        self._closing = False
        self._lock = threading.Lock()  # set-up and teardown of its sockets (C state is shared)
        self._native = _libxsk.NativeUmem(frame_size, frames, headroom, flags)

    @property
    def closed(self) -> bool:
        return self._native is None or self._native.ptr is None

    @property
    def sockets(self) -> int:
        return self._open

    def _n(self) -> _libxsk.NativeUmem:
        if self._native is None:
            raise ClosedError("this Umem was never set up")
        return self._native

    @property
    def free_frames(self) -> int:
        """Frames in the allocator (not in any ring)."""
        return self._n().info().free_frames

    @property
    def rx_offset(self) -> int:
        """Where received data starts in a frame (copy mode): kernel headroom + our headroom."""
        return XDP_PACKET_HEADROOM + self.headroom

    def write(self, offset: int, data: bytes) -> None:
        """Write raw bytes into the UMEM (for hand-made descriptors)."""
        self._n().write(offset, bytes(data))

    def read(self, offset: int, length: int) -> bytes:
        return self._n().read(offset, length)

    def _attach(self, sock: XskSocket) -> None:
        if self.closed or self._closing:
            raise ClosedError("this Umem was closed")
        self._users.add(sock)
        self._open += 1

    def _close_socket(self, native: _libxsk.NativeXsk) -> None:
        with self._lock:
            native.close()

    def _forget_socket(self) -> None:
        self._open -= 1
        if self._closing and self._open == 0 and self._native is not None:
            self._native.destroy()

    def close(self) -> None:
        """Free the memory now, or when its last socket closes. Safe to call twice."""
        self._closing = True
        if self._open == 0 and self._native is not None:
            self._native.destroy()

    def __enter__(self) -> Umem:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "unaligned" if self.unaligned else "aligned"
        return f"Umem({self.frames} x {self.frame_size} B, {kind}, headroom={self.headroom})"
