"""Doing things inside a network namespace without moving the Python process.

A network namespace is a per-thread attribute on Linux, so a short-lived thread can ``setns()``
into a namespace, create a socket there and exit: the socket stays in that namespace, and the
caller's threads never change namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from xdptest.errors import InterfaceNotFoundError, NamespaceError, NetlinkError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_T = TypeVar("_T")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name: str) -> str:
    return f"{NETNS_RUN_DIR}/{name}"


def run_in_netns(name: str | None, func: Callable[[], _T]) -> _T:
    """Run ``func`` on a fresh thread inside namespace ``name`` (None or "": this thread's own)."""
    if not name:
        return func()
    try:
        nsfd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceError(2, f"network namespace {name!r} does not exist") from None
    result: list[_T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NamespaceError(err, f"cannot enter namespace {name!r}: {os.strerror(err)}")
            result.append(func())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    try:
        thread = threading.Thread(target=target, name=f"xdptest-netns-{name}")
        thread.start()
        thread.join()
    finally:
        os.close(nsfd)
    if failure:
        raise failure[0]
    return result[0]


def netns_socket(name: str | None, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A socket created inside namespace ``name``."""
    return run_in_netns(name, lambda: socket.socket(family, type_, proto))


def netns_socket_fd(name: str | None, family: int, type_: int, proto: int = 0) -> int:
    """A raw file descriptor of a socket created inside namespace ``name`` (caller closes it)."""
    return run_in_netns(name, lambda: socket.socket(family, type_, proto).detach())


# --- ethtool ioctls ---------------------------------------------------------------------------

SIOCETHTOOL = 0x8946
ETHTOOL_GGRO = 0x2B
ETHTOOL_SGRO = 0x2C


def _ethtool_value(netns: str | None, ifname: str, cmd: int, data: int) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    with netns_socket(netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as exc:
            if exc.errno == 19:
                raise InterfaceNotFoundError(
                    f"no interface {ifname!r} in namespace {netns or '(current)'}"
                ) from None
            raise NetlinkError(exc.errno, f"ethtool on {ifname}: {exc.strerror}") from None
    return int(struct.unpack("II", value.raw[:8])[1])


def set_gro(netns: str | None, ifname: str, enabled: bool) -> None:
    """``ethtool -K IF gro on|off``."""
    _ethtool_value(netns, ifname, ETHTOOL_SGRO, int(enabled))


def get_gro(netns: str | None, ifname: str) -> bool:
    return bool(_ethtool_value(netns, ifname, ETHTOOL_GGRO, 0))
