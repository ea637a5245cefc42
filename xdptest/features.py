"""Kernel and machine features, found by probing (never guessed from the version).

Each feature names the kernel release that brought it. The plugin's ``requires_feature`` marker
skips a test where a feature is missing, but fails it where the kernel is new enough that the
feature must be there: a missing feature on such a kernel is a regression, not a reason to skip.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
import platform
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

SOL_XDP = 283
XDP_MMAP_OFFSETS = 1
SO_PREFER_BUSY_POLL = 69
MAP_HUGETLB = 0x40000
BPF_F_TEST_XDP_LIVE_FRAMES = 2
XDP_USE_SG = 1 << 4  # bind flag of AF_XDP multi-buffer (if_xdp.h)
UNKNOWN_TEST_RUN_FLAG = 1 << 31  # no kernel defines it: a kernel that reads the flags refuses it


def kernel_version(release: str | None = None) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@dataclass(frozen=True)
class FeatureStatus:
    name: str
    present: bool
    reason: str  # why it is missing, or "present"
    since: str | None  # kernel release that brought it; None where it depends on the machine
    source: str = ""  # what the probe tries

    @property
    def required_by_kernel(self) -> bool:
        """True when the running kernel is new enough that the feature must be present."""
        if self.since is None:
            return False
        major, minor = (int(x) for x in self.since.split("."))
        return kernel_version() >= (major, minor)


def _probe_need_wakeup() -> str | None:
    from xdptest._native.xsk import AF_XDP

    try:
        sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    except OSError as exc:
        return f"no AF_XDP sockets: {exc.strerror}"
    with sock:
        # Since 5.4 the offsets carry a flags word per ring (XDP_RING_NEED_WAKEUP): 128 bytes, not 96.
        try:
            raw = sock.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, 256)
        except OSError as exc:
            return f"XDP_MMAP_OFFSETS refused: {exc.strerror}"
    return None if len(raw) >= 128 else "the rings have no flags word (XDP_RING_NEED_WAKEUP)"


def _probe_af_xdp() -> str | None:
    from xdptest._native.xsk import AF_XDP

    try:
        socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()
    except OSError as exc:
        return f"socket(AF_XDP) failed: {exc.strerror} (CONFIG_XDP_SOCKETS)"
    return None


def _probe_busy_poll() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)
        except OSError as exc:
            return f"SO_PREFER_BUSY_POLL refused: {exc.strerror}"
    return None


def _probe_live_frames() -> str | None:
    from xdptest.bpf import XdpProgram

    # XDP_DROP: the probe frame goes nowhere.
    with XdpProgram.load("drop") as prog:
        from xdptest._native import bpf as _libbpf

        try:
            _libbpf.prog_test_run(prog.fd, bytes(64), 1, None, None, 64, flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        except OSError as exc:
            return f"BPF_F_TEST_XDP_LIVE_FRAMES refused: {exc.strerror}"
        # Before 5.18 BPF_PROG_RUN ignores an XDP run's flags: it "accepts" live frames and runs
        # the program once, sending nothing. A kernel that reads the flags refuses an unknown one.
        try:
            _libbpf.prog_test_run(prog.fd, bytes(64), 1, None, None, 64,
                                  flags=BPF_F_TEST_XDP_LIVE_FRAMES | UNKNOWN_TEST_RUN_FLAG)
        except OSError:
            return None
    return "BPF_PROG_RUN ignores the flags of an XDP run on this kernel (no BPF_F_TEST_XDP_LIVE_FRAMES)"


def _probe_test_run_context() -> str | None:
    from xdptest.bpf import XdpProgram

    with XdpProgram.load("drop") as prog:
        from xdptest._native import bpf as _libbpf

        try:
            _libbpf.prog_test_run(prog.fd, bytes(64), 1, None, 0, 64)
        except OSError as exc:
            return f"BPF_PROG_TEST_RUN refused an xdp_md context: {exc.strerror}"
    return None


def _probe_xdp_frags() -> str | None:
    from xdptest.bpf import XdpProgram, builtin_program_path
    from xdptest.errors import XdpTestError

    path = builtin_program_path("pass").with_name("probe_frags.bpf.o")
    try:
        XdpProgram.load(path).close()
    except XdpTestError as exc:
        return f"an xdp.frags program does not load: {exc}"
    return None


def _probe_multi_buffer() -> str | None:
    """AF_XDP multi-buffer (6.6): bind() checks its flags before it looks for the device, so a bind
    with XDP_USE_SG to no device (ifindex 0) fails with ENODEV where the flag is known and with
    EINVAL where it is not. Nothing is bound either way."""
    import ctypes

    from xdptest._native.xsk import AF_XDP

    try:
        sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    except OSError as exc:
        return f"no AF_XDP sockets: {exc.strerror}"
    with sock:
        addr = struct.pack("=HHIII", AF_XDP, XDP_USE_SG, 0, 0, 0)  # struct sockaddr_xdp
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.bind(sock.fileno(), ctypes.c_char_p(addr), len(addr)) == 0:
            return "bind() to ifindex 0 succeeded: the probe cannot tell"
        err = ctypes.get_errno()
    if err == errno.ENODEV:
        return None
    if err == errno.EINVAL:
        return "bind() refuses the XDP_USE_SG flag (AF_XDP multi-buffer)"
    return f"bind() with XDP_USE_SG: {os.strerror(err)}"


def _probe_hugepages() -> str | None:
    try:
        area = mmap.mmap(-1, 2 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_HUGETLB)
    except OSError as exc:
        reason = "no free 2 MB hugepages" if exc.errno == errno.ENOMEM else exc.strerror
        return f"{reason} (set /proc/sys/vm/nr_hugepages)"
    area.close()
    return None


def _probe_netdevsim() -> str | None:
    try:
        from xdptest.netdevsim import netdevsim_unavailable_reason
    except ImportError:
        return None if os.path.isdir("/sys/bus/netdevsim") else "no netdevsim in this kernel"
    return netdevsim_unavailable_reason()


def _probe_zerocopy() -> str | None:
    return ("zero-copy AF_XDP is a device's: its XDP features say so (xdptest.netdev.xdp_features, "
            "Linux 6.3+), else a zero-copy bind finds out; veth and netdevsim have none")


# name: (probe, the release that brought it, how the probe finds it)
_PROBES: dict[str, tuple[Callable[[], str | None], str | None, str]] = {
    "af_xdp": (_probe_af_xdp, "4.18", "socket(AF_XDP)"),
    "need_wakeup": (_probe_need_wakeup, "5.4", "the rings' flags word in XDP_MMAP_OFFSETS"),
    "busy_poll": (_probe_busy_poll, "5.11", "setsockopt(SO_PREFER_BUSY_POLL)"),
    "live_frames": (_probe_live_frames, "5.18", "BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and an unknown flag"),
    "test_run_context": (_probe_test_run_context, "5.15", "BPF_PROG_TEST_RUN with an xdp_md context"),
    "xdp_frags": (_probe_xdp_frags, "5.18", "loading an xdp.frags program"),
    "multi_buffer": (_probe_multi_buffer, "6.6", "bind() with XDP_USE_SG"),
    "hugepages": (_probe_hugepages, None, "a 2 MB MAP_HUGETLB mapping"),
    "netdevsim": (_probe_netdevsim, None, "/sys/bus/netdevsim and its module"),
    "zerocopy": (_probe_zerocopy, None, "per device: its XDP features (netdev netlink), else a bind"),
}
FEATURES = tuple(_PROBES)


@functools.cache
def probe(name: str) -> FeatureStatus:
    """Probe one feature (cached per process)."""
    if name not in _PROBES:
        raise ValueError(f"unknown feature {name!r}; features: {', '.join(FEATURES)}")
    func, since, how = _PROBES[name]
    try:
        reason = func()
    except Exception as exc:  # a probe that breaks says so instead of hiding the feature
        reason = f"probe failed: {exc}"
    return FeatureStatus(name, reason is None, reason or "present", since, how)


SUMMARY = ("af_xdp", "need_wakeup", "busy_poll", "live_frames", "xdp_frags", "multi_buffer", "hugepages",
           "netdevsim")


def sources(names: tuple[str, ...] = SUMMARY) -> str:
    """How each feature of the summary is found."""
    return "; ".join(f"{name}: {_PROBES[name][2]}" for name in names)


def summary(names: tuple[str, ...] = SUMMARY) -> str:
    parts = []
    for name in names:
        with contextlib.suppress(Exception):
            parts.append(f"{name}={'yes' if probe(name).present else 'no'}")
    return " ".join(parts)
