"""AF_XDP: ``Umem`` and ``XskSocket``, a typed face over the C rings (cnative/xsk.c, txrx.c).

A socket is created inside its endpoint's namespace on a short-lived thread (the process never
changes namespace), registers or shares a UMEM, maps its four rings and binds to one queue. Unless
a program is given, the built-in ``redirect`` program is attached to the interface (one attachment
shared by every socket on that interface, detached with the last) and the socket is entered in its
``xsks_map`` at its queue. All per-frame work happens in C; calls into C release the GIL.

Not thread-safe: drive one socket from one thread at a time (sockets sharing a queue's fill and
completion rings count as one).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import functools
import socket
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from xdptest._native import xsk as _libxsk
from xdptest._native.bpf import BPF_MAP_TYPE_XSKMAP
from xdptest._native.xsk import RingState, XskLoop
from xdptest.errors import (
    BindError,
    ClosedError,
    ConfigError,
    MapError,
    NotSupportedError,
    PermissionDeniedError,
    RingSizeError,
    UmemError,
)
from xdptest.framelen import multi_buffer_for
from xdptest.nsexec import netns_socket_fd
from xdptest.teardown import run_all
from xdptest.umem import Umem
from xdptest.xsk_shared import interfaces as _interfaces

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram
    from xdptest.netns import Endpoint

__all__ = ["RingState", "Umem", "XskLoop", "XskSocket"]

Mode = Literal["auto", "copy", "zerocopy"]
AttachMode = Literal["native", "generic"]
BIND_RETRY_S = 0.5  # a queue released by close() is free again after a few ms
MAX_META_LEN = 32  # bpf_xdp_adjust_meta refuses more


# --- releasing sockets, also those dropped without close() ---------------------------------

def _leave_xskmap(program: XdpProgram, map_name: str, key: int) -> None:
    if not program.closed:
        with contextlib.suppress(MapError):
            program.maps[map_name].delete(key)


class _Release:
    """The steps that undo one socket's set-up; runs them once, each even if one before failed."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self._steps = steps

    def run(self) -> None:
        steps, self._steps = self._steps, []
        run_all(steps)


_abandoned: collections.deque[_Release] = collections.deque()  # appended by finalizers only


def release_abandoned() -> int:
    """Release the sockets that were dropped without ``close()``; returns how many."""
    released = 0
    while True:
        try:
            release = _abandoned.popleft()
        except IndexError:
            return released
        with contextlib.suppress(Exception):  # the interface may be gone with its namespace
            release.run()
        released += 1


atexit.register(release_abandoned)


def require_attached(program: XdpProgram, endpoint: Endpoint) -> None:
    """A receiving socket behind a program that runs nowhere on its interface would get nothing,
    reported as loss with no hint: refuse it. (With some program attached - the user's, or a
    libxdp dispatcher in front of it - the kit cannot tell, and goes ahead.)"""
    from xdptest.bpf import attached_programs

    if not attached_programs(endpoint):
        raise ConfigError(f"{program.name} is not attached to {endpoint}, so no frame would reach the "
                          "socket: attach it first (program.attach(endpoint)), or leave the program out "
                          "and the kit attaches its redirect program")


# --- the socket --------------------------------------------------------------------------------

def _check_ring(name: str, size: int, allow_zero: bool = False) -> None:
    if allow_zero and size == 0:
        return
    if not isinstance(size, int) or size <= 0 or size & (size - 1) or size > 1 << 20:
        raise RingSizeError(f"{name}={size!r}: ring sizes must be powers of two (e.g. 512, 2048, "
                            f"4096) up to {1 << 20}" + ("; 0 leaves the ring out" if allow_zero else ""))


class XskSocket:
    """An AF_XDP socket bound to ``queue`` of ``endpoint``.

    ``mode``: ``"auto"`` tries zero-copy and falls back to copy (``bind_mode`` says which it got,
    ``fallback_reason`` why), ``"copy"``, or ``"zerocopy"`` (NotSupportedError where the device has
    none). ``rx_size``/``tx_size`` 0 leave that ring out. ``busy_poll`` (microseconds) enables
    preferred busy polling. ``program``: a loaded XdpProgram whose XSKMAP (found by type, or named
    by ``xskmap=``) gets this socket at key ``xskmap_key`` (default: the queue); when None, the
    built-in ``redirect`` program is attached in ``attach_mode``. ``fill_frames`` frames go to the
    fill ring (default: half the free frames, at most ``fill_size``; all of them for an RX-only
    socket). A TX-only socket (``rx_size=0``) attaches no program unless one is given.
    ``multi_buffer`` (XDP_USE_SG, Linux 6.6+): frames span several UMEM frames; None turns it on
    where the endpoint's MTU allows frames longer than one holds. ``send``/``recv`` take whole frames.
    """

    def __init__(self, endpoint: Endpoint, queue: int = 0, umem: Umem | None = None,
                 rx_size: int = 2048, tx_size: int = 2048, fill_size: int = 2048,
                 comp_size: int = 2048, mode: Mode = "auto", need_wakeup: bool = True,
                 busy_poll: int | None = None, program: XdpProgram | None = None, *,
                 attach_mode: AttachMode = "native", xskmap: str | None = None,
                 xskmap_key: int | None = None, busy_poll_budget: int = 64,
                 fill_frames: int | None = None, multi_buffer: bool | None = None) -> None:
        self.endpoint = endpoint
        self.queue = queue
        self._closed = True
        _check_ring("rx_size", rx_size, allow_zero=True)
        _check_ring("tx_size", tx_size, allow_zero=True)
        _check_ring("fill_size", fill_size)
        _check_ring("comp_size", comp_size)
        if rx_size == 0 and tx_size == 0:
            raise RingSizeError("rx_size and tx_size are both 0: a socket needs at least one ring")
        if mode not in ("auto", "copy", "zerocopy"):
            raise ConfigError(f"mode {mode!r}: use 'auto', 'copy' or 'zerocopy'")
        if attach_mode not in ("native", "generic"):
            raise ConfigError(f"attach_mode {attach_mode!r}: use 'native' or 'generic'")
        if not isinstance(queue, int) or not 0 <= queue < endpoint.queues:
            raise ConfigError(f"queue {queue!r} does not exist on {endpoint}: it has "
                              f"{endpoint.queues} queue(s), 0 to {endpoint.queues - 1}; create the "
                              "pair with more queues (VethPair(queues=N)) or pick a lower one")
        if multi_buffer not in (None, True, False):
            raise ConfigError(f"multi_buffer must be None (where the MTU needs it), True or False, got "
                              f"{multi_buffer!r}")
        if busy_poll is not None and (not isinstance(busy_poll, int) or busy_poll < 0):
            raise ConfigError(f"busy_poll must be microseconds (an int >= 0) or None, got {busy_poll!r}")
        self.rx_size, self.tx_size = rx_size, tx_size
        self.need_wakeup = need_wakeup
        self.busy_poll = busy_poll or None
        self.fallback_reason: str | None = None
        self.bind_mode: Literal["copy", "zerocopy"] = "copy"
        self.program: XdpProgram | None = None
        self._xskmap_name: str | None = None
        self._xskmap_key = queue if xskmap_key is None else xskmap_key
        self._closed = True
        self._native: _libxsk.NativeXsk | None = None
        self._acquired_program = False
        release_abandoned()
        with contextlib.ExitStack() as undo:
            own_umem = umem is None
            self.umem = umem if umem is not None else Umem()
            if own_umem:
                undo.callback(self.umem.close)
            shared = self.umem.sockets > 0
            self.multi_buffer = self._multi_buffer(multi_buffer, shared)
            self.umem._attach(self)
            undo.callback(self.umem._forget_socket)
            fd = self._new_fd()
            with self.umem._lock:
                self._native = _libxsk.NativeXsk(self.umem._n(), fd, endpoint.ifindex, queue,
                                                 rx_size, tx_size, fill_size, comp_size)
                undo.callback(self.umem._close_socket, self._native)
                self._bind(mode, shared)
                if rx_size:
                    self._native.populate_fill(-1 if fill_frames is None else fill_frames)
            self.bind_mode = "zerocopy" if self._native.is_zerocopy() else "copy"
            if self.multi_buffer:
                self._native.max_frame = _libxsk.MAX_FRAME
            if self.busy_poll:
                self._enable_busy_poll(self.busy_poll, busy_poll_budget)
                undo.callback(_interfaces.release_busy_poll, endpoint)
            if rx_size or program is not None:
                # A TX-only socket needs no program: the interface's RX path stays untouched.
                self._wire_program(program, xskmap, attach_mode, undo)
            self._release = _Release(self._release_steps(own_umem))
            # Dropped without close(): the finalizer only queues the release (no lock, no C call
            # from inside the garbage collector); the next socket's set-up or close, or the
            # interpreter's exit, carries it out.
            self._finalizer = weakref.finalize(self, _abandoned.append, self._release)
            self._closed = False
            undo.pop_all()

    # --- set-up steps ------------------------------------------------------------------------

    def _new_fd(self) -> int:
        try:
            return netns_socket_fd(self.endpoint.netns.name, _libxsk.AF_XDP, socket.SOCK_RAW)
        except OSError as exc:
            if exc.errno == errno.EAFNOSUPPORT:
                raise NotSupportedError("AF_XDP sockets", "this kernel was built without "
                                        "CONFIG_XDP_SOCKETS", since="4.18") from None
            if exc.errno == errno.EPERM:
                raise PermissionDeniedError("AF_XDP sockets need CAP_NET_RAW: run as root") from None
            raise

    def _multi_buffer(self, asked: bool | None, shared: bool) -> bool:
        """Whether to bind with XDP_USE_SG (see ``multi_buffer_for``). A socket sharing a UMEM gets
        what the UMEM's first socket has: the kernel takes it from there."""
        if not shared:
            return multi_buffer_for(asked, self.endpoint.mtu, self.umem.frame_size, self.umem.headroom)
        peers = [s for s in self.umem._users if not s._closed]
        inherited = bool(peers and peers[0].multi_buffer)
        if asked is not None and asked != inherited:
            raise ConfigError(f"multi_buffer={asked}: this socket shares a UMEM whose first socket has "
                              f"multi_buffer={inherited}, and the kernel takes it from there")
        return inherited

    def _bind(self, mode: Mode, shared: bool) -> None:
        assert self._native is not None
        wake = _libxsk.BIND_NEED_WAKEUP if self.need_wakeup else 0
        if self.multi_buffer and not shared:
            wake |= _libxsk.BIND_SG
        if shared:
            flags = 0  # the kernel takes mode and wakeup from the socket that registered the UMEM
        elif mode == "copy":
            flags = _libxsk.BIND_COPY | wake
        else:
            flags = _libxsk.BIND_ZEROCOPY | wake
        if mode == "auto" and not shared and self._declares_no_zerocopy():
            self.fallback_reason = (f"{self.endpoint.ifname} ({self._link_kind()}) declares no zero-copy "
                                    "AF_XDP in its XDP features (netdev netlink); using copy mode")
            flags = _libxsk.BIND_COPY | wake
        ret = self._bind_retrying(flags)
        if ret == -errno.EOPNOTSUPP and not shared and mode == "auto":
            self.fallback_reason = (f"{self.endpoint.ifname} ({self._link_kind()}) has no zero-copy "
                                    "AF_XDP support (a zero-copy bind was refused); using copy mode")
            ret = self._bind_retrying(_libxsk.BIND_COPY | wake)
        if ret < 0:
            raise self._bind_error(-ret, mode, shared)
        if shared:  # inherited from the socket that registered the UMEM
            peers = [s for s in self.umem._users if s is not self and not s._closed]
            if peers:
                self.need_wakeup = peers[0].need_wakeup

    def _declares_no_zerocopy(self) -> bool:
        """The device's XDP features (Linux 6.3+) leave out zero-copy; False where they cannot be
        read, and a zero-copy bind then finds out."""
        from xdptest.netdev import xdp_features

        try:
            declared = xdp_features(self.endpoint)
        except Exception:  # never let the question break a bind that may work
            return False
        return declared is not None and not declared.zerocopy

    def _bind_retrying(self, flags: int) -> int:
        assert self._native is not None
        deadline = time.monotonic() + BIND_RETRY_S
        while True:
            ret = self._native.bind(flags)
            if ret != -errno.EBUSY or time.monotonic() > deadline:
                return ret
            time.sleep(0.002)

    def _link_kind(self) -> str:
        from xdptest.netdev import driver_name

        return driver_name(self.endpoint)

    def _bind_error(self, code: int, mode: Mode, shared: bool) -> Exception:
        where = f"queue {self.queue} of {self.endpoint}"
        if code == errno.EOPNOTSUPP and mode == "zerocopy":
            kind = self._link_kind()
            why = ("veth has no zero-copy AF_XDP (its XDP runs on copies)" if kind == "veth"
                   else f"the {kind} driver does not offer it")
            return NotSupportedError("AF_XDP zero-copy", f"{self.endpoint.ifname}: {why}; use "
                                     "mode='copy' or mode='auto'")
        if code == errno.EBUSY:
            return BindError(code, f"cannot bind to {where}: it is busy - another AF_XDP socket or "
                             "an XDP program (or a zero-copy user) holds that queue; close it first "
                             f"(retried for {BIND_RETRY_S} s in case it was just released)")
        if code == errno.EINVAL:
            hint = ("the shared UMEM's socket is on another device or queue without fill and "
                    "completion rings of its own, or it is not bound yet" if shared else
                    f"the queue does not exist (the device has {self.endpoint.queues}), or the "
                    "copy/zero-copy flags do not fit the device")
            return BindError(code, f"cannot bind to {where}: invalid argument - likely {hint}")
        if code == errno.ENODEV:
            return BindError(code, f"cannot bind to {where}: the interface is gone")
        if code == errno.EPERM:
            return PermissionDeniedError(f"binding an AF_XDP socket to {where} needs CAP_NET_RAW")
        return BindError(code, f"cannot bind to {where}: {errno.errorcode.get(code, code)}")

    def _enable_busy_poll(self, usecs: int, budget: int) -> None:
        assert self._native is not None
        ret = self._native.set_busy_poll(usecs, budget, prefer=True)
        if ret in (-errno.ENOPROTOOPT, -errno.EINVAL):
            raise NotSupportedError("preferred busy polling (SO_PREFER_BUSY_POLL)",
                                    "the kernel refused the socket option", since="5.11")
        if ret == -errno.EPERM:
            raise PermissionDeniedError("SO_BUSY_POLL above net.core.busy_read needs CAP_NET_ADMIN")
        if ret < 0:
            raise UmemError(-ret, f"setting busy-poll socket options: {errno.errorcode.get(-ret)}")
        _interfaces.acquire_busy_poll(self.endpoint)

    def _wire_program(self, program: XdpProgram | None, xskmap: str | None, attach_mode: AttachMode,
                      undo: contextlib.ExitStack) -> None:
        if program is None:
            program = _interfaces.acquire_program(self.endpoint, attach_mode)
            self._acquired_program = True
            undo.callback(_interfaces.release_program, self.endpoint)
            xskmap = "xsks_map"
        elif self.rx_size:
            require_attached(program, self.endpoint)
        self.program = program
        self._xskmap_name = self._find_xskmap(program, xskmap)
        xmap = program.maps[self._xskmap_name]
        if not 0 <= self._xskmap_key < xmap.max_entries:
            raise ConfigError(f"key {self._xskmap_key} does not fit {program.name}'s XSKMAP "
                              f"{xmap.name} ({xmap.max_entries} entries)")
        assert self._native is not None
        if not self.rx_size:  # receives nothing; and since 7.x an XSKMAP refuses it (ENOBUFS)
            return
        xmap.update(self._xskmap_key, self._native.fd)
        undo.callback(_leave_xskmap, program, self._xskmap_name, self._xskmap_key)

    @staticmethod
    def _find_xskmap(program: XdpProgram, name: str | None) -> str:
        if name is not None:
            xmap = program.maps[name]
            if xmap.type != BPF_MAP_TYPE_XSKMAP:
                raise ConfigError(f"map {name!r} of {program.name} is a {xmap.type_name}, not an XSKMAP")
            return name
        found = [m.name for m in program.maps.values() if m.type == BPF_MAP_TYPE_XSKMAP]
        if len(found) != 1:
            raise ConfigError(f"{program.name} has {len(found)} XSKMAPs ({', '.join(found) or 'none'}):"
                              " name the one to use with xskmap=")
        return found[0]

    def _release_steps(self, own_umem: bool) -> list[Callable[[], None]]:
        """What close() undoes, as steps that hold no reference to the socket itself."""
        assert self._native is not None
        steps: list[Callable[[], None]] = []
        if self.program is not None and self._xskmap_name is not None and self.rx_size:  # only what it entered
            steps.append(functools.partial(_leave_xskmap, self.program, self._xskmap_name, self._xskmap_key))
        if self._acquired_program:
            steps.append(functools.partial(_interfaces.release_program, self.endpoint))
        if self.busy_poll:
            steps.append(functools.partial(_interfaces.release_busy_poll, self.endpoint))
        steps.append(functools.partial(self.umem._close_socket, self._native))
        steps.append(self.umem._forget_socket)
        if own_umem:
            steps.append(self.umem.close)
        return steps

    # --- data path -----------------------------------------------------------------------------

    def _n(self, ring: str | None = None) -> _libxsk.NativeXsk:
        if self._closed or self._native is None:
            raise ClosedError(f"AF_XDP socket on queue {self.queue} of {self.endpoint} was closed")
        if ring is not None and not getattr(self, f"{ring}_size"):
            raise ConfigError(f"this socket has no {ring.upper()} ring ({ring}_size=0)")
        return self._native

    def send(self, frames: Iterable[bytes]) -> int:
        """Place frames in the TX ring and kick; returns how many were accepted (free frames and
        ring slots permitting)."""
        return self._n("tx").send([bytes(f) for f in frames])

    def complete(self) -> int:
        """Kick out what waits in the TX ring, reap the completion ring; returns entries reaped."""
        return self._n().complete()

    def recv(self, max_frames: int = 64, timeout: float | None = 1.0) -> list[bytes]:
        """Up to ``max_frames`` received frames (copied out; their UMEM frames go back to the
        fill ring). Waits up to ``timeout`` seconds for the first (None: forever, 0: no wait)."""
        return self._n("rx").recv(self._max(max_frames), self._timeout_ms(timeout))[0]

    def recv_with_addrs(self, max_frames: int = 64, timeout: float | None = 1.0
                        ) -> list[tuple[int, bytes]]:
        """Like :meth:`recv`, with each frame's descriptor address (UMEM offset of its data)."""
        frames, addrs, _ = self._n("rx").recv(self._max(max_frames), self._timeout_ms(timeout), True)
        return list(zip(addrs, frames, strict=True))

    def recv_with_meta(self, meta_len: int, max_frames: int = 64, timeout: float | None = 1.0
                       ) -> list[tuple[bytes, bytes]]:
        """Like :meth:`recv`, with the ``meta_len`` bytes of metadata an XDP program put in front
        of each frame (``bpf_xdp_adjust_meta``, at most 32 bytes): ``(metadata, frame)`` pairs."""
        if not isinstance(meta_len, int) or not 1 <= meta_len <= MAX_META_LEN:
            raise ConfigError(f"meta_len must be from 1 to {MAX_META_LEN} (the kernel's limit for XDP "
                              f"metadata), got {meta_len!r}")
        frames, _, metas = self._n("rx").recv(self._max(max_frames), self._timeout_ms(timeout), meta_len=meta_len)
        return list(zip(metas, frames, strict=True))

    @staticmethod
    def _max(max_frames: int) -> int:
        if not isinstance(max_frames, int) or not 1 <= max_frames <= 1 << 16:
            raise ConfigError(f"max_frames must be from 1 to {1 << 16}, got {max_frames!r}")
        return max_frames

    @staticmethod
    def _timeout_ms(timeout: float | None) -> int:
        if timeout is None:
            return -1
        if timeout < 0:
            raise ConfigError(f"timeout must be >= 0 or None, got {timeout}")
        return int(timeout * 1000 + 0.999)

    def send_raw(self, descs: Sequence[tuple[int, int] | tuple[int, int, int]], kick: bool = True) -> int:
        """Put ``(addr, len)`` or ``(addr, len, options)`` descriptors in the TX ring unchecked,
        for tests of the kernel's validation (frames are not taken from the allocator; ``options``
        goes to the descriptor as given, e.g. ``XDP_PKT_CONTD``). Returns how many fit."""
        return self._n("tx").send_raw(descs, kick)

    def _test_forge(self, ring: Literal["rx", "comp"], addr: int, length: int = 0) -> None:
        """Test hook: make a bogus descriptor appear in the RX or completion ring. The ring is
        out of step with the kernel afterwards; close the socket after the test."""
        self._n().test_forge(ring, addr, length)

    def kick(self) -> None:
        """One ``sendto()`` wake-up of the TX path."""
        self._n().kick_tx()

    def poll(self, rx: bool = True, tx: bool = False, timeout: float = 1.0) -> set[str]:
        """``poll()`` the socket: the subset of {"rx", "tx"} that is ready (empty on timeout)."""
        wanted = {"rx": 0x1 if rx else 0, "tx": 0x4 if tx else 0}  # POLLIN, POLLOUT
        revents = self._n().poll(wanted["rx"] | wanted["tx"], self._timeout_ms(timeout))
        return {name for name, bit in wanted.items() if bit and revents & bit}

    def statistics(self) -> dict[str, int]:
        """XDP_STATISTICS by kernel name (rx_dropped, rx_invalid_descs, tx_invalid_descs,
        rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs)."""
        return self._n().statistics()

    def rings(self) -> dict[str, RingState]:
        """Producer/consumer snapshot of the fill, rx, tx and comp rings."""
        native = self._n()
        return {name: native.ring_state(name) for name in ("fill", "rx", "tx", "comp")}

    def counters(self) -> dict[str, int]:
        """The C side's own counters (frames, kicks, bad descriptors seen and skipped)."""
        return self._n().counters()

    # --- batch entry points (the traffic generator drives these) --------------------------------

    def tx_burst(self, loop: XskLoop) -> int:
        """One TX batch of ``loop``'s templates: reap, fill, submit, kick. Returns frames queued."""
        return self._n("tx").tx_burst(loop)

    def rx_burst(self, loop: XskLoop) -> int:
        """One RX batch: check, verify/count, recycle. Returns descriptors consumed (no wait)."""
        return self._n("rx").rx_burst(loop)

    def pace(self, tx_loop: XskLoop, rx_loop: XskLoop, window: int) -> None:
        """Closed loop: ``tx_loop`` stays at most ``window`` frames ahead of ``rx_loop``, which
        receives on this socket; its RX ring tells a late receiver from frames that were lost."""
        tx_loop.follow(rx_loop, window, receiver_socket=self._n("rx"))

    def run_tx(self, loop: XskLoop) -> dict[str, int]:
        """Send until ``loop``'s count/duration/idle limit, all in C; returns its counters."""
        self._n("tx").tx_loop(loop)
        return loop.stats()

    def run_rx(self, loop: XskLoop) -> dict[str, int]:
        """Receive until ``loop``'s count/duration/idle limit, all in C; returns its counters."""
        self._n("rx").rx_loop(loop)
        return loop.stats()

    # --- lifetime ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._n().fd

    def close(self) -> None:
        """Leave the XSKMAP, release the program and busy-poll settings, unmap and close.
        Safe to call twice; each step runs even if an earlier one failed."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._release.run()
        release_abandoned()

    def __enter__(self) -> XskSocket:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.bind_mode
        return f"XskSocket({self.endpoint}, queue={self.queue}, {state})"
