"""What a device says it can do with XDP: the netdev generic netlink family (Linux 6.3+).

``NETDEV_CMD_DEV_GET`` answers with the device's XDP features (``NETDEV_XDP_ACT_*``: basic,
redirect, ndo_xmit, XSK zero-copy, HW offload, RX scatter-gather, ...), the most fragments a
zero-copy AF_XDP frame may have (``xdp-zc-max-segs``) and its RX metadata and XSK (TX metadata)
features. The kit reads zero-copy support from here where the kernel has the family, instead of
finding it out by a failing bind.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xdptest.nsexec import run_in_netns

if TYPE_CHECKING:
    from xdptest.netns import Endpoint

NETDEV_CMD_DEV_GET = 1
# NETDEV_XDP_ACT_* bits, in the order of the uapi enum
XDP_ACTIONS = ("basic", "redirect", "ndo_xmit", "xsk_zerocopy", "hw_offload", "rx_sg", "ndo_xmit_sg")
XDP_RX_METADATA = ("timestamp", "hash", "vlan_tag")
XSK_FEATURES = ("tx_timestamp", "tx_checksum", "tx_launch_time")


@dataclass(frozen=True)
class DeviceXdpFeatures:
    """A device's XDP features as its driver declares them."""

    ifindex: int
    actions: frozenset[str]
    zc_max_segs: int  # fragments of a zero-copy AF_XDP frame (1: no multi-buffer in zero-copy)
    rx_metadata: frozenset[str]
    xsk_features: frozenset[str]

    @property
    def zerocopy(self) -> bool:
        return "xsk_zerocopy" in self.actions


def _names(bits: int, names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name for i, name in enumerate(names) if bits & (1 << i))


def _message_class() -> Any:
    from pyroute2.netlink import genlmsg

    class DevMsg(genlmsg):  # type: ignore[misc]
        nla_map = (("NETDEV_A_DEV_UNSPEC", "none"),
                   ("NETDEV_A_DEV_IFINDEX", "uint32"),
                   ("NETDEV_A_DEV_PAD", "none"),
                   ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
                   ("NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
                   ("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
                   ("NETDEV_A_DEV_XSK_FEATURES", "uint64"))

    return DevMsg


def _query(ifindex: int) -> DeviceXdpFeatures | None:
    from pyroute2.netlink import NLM_F_REQUEST
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket

    msg_class = _message_class()
    sock = GenericNetlinkSocket()
    try:
        try:
            sock.bind("netdev", msg_class)
        except NetlinkError as exc:
            if exc.code == errno.ENOENT:
                return None  # no netdev family: before Linux 6.3
            raise
        msg = msg_class()
        msg["cmd"] = NETDEV_CMD_DEV_GET
        msg["version"] = 1
        msg["attrs"] = [("NETDEV_A_DEV_IFINDEX", ifindex)]
        (reply,) = sock.nlm_request(msg, msg_type=sock.prid, msg_flags=NLM_F_REQUEST)
    finally:
        sock.close()

    def attr(name: str) -> int:
        value = reply.get_attr(name)
        return int(value) if value is not None else 0

    return DeviceXdpFeatures(ifindex, _names(attr("NETDEV_A_DEV_XDP_FEATURES"), XDP_ACTIONS),
                             attr("NETDEV_A_DEV_XDP_ZC_MAX_SEGS"),
                             _names(attr("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES"), XDP_RX_METADATA),
                             _names(attr("NETDEV_A_DEV_XSK_FEATURES"), XSK_FEATURES))


def xdp_features(endpoint: Endpoint) -> DeviceXdpFeatures | None:
    """The device's XDP features, asked in its namespace; None where the kernel has no netdev
    netlink family (before Linux 6.3): zero-copy is then found by binding."""
    return run_in_netns(endpoint.netns.name, lambda: _query(endpoint.ifindex))


def driver_name(endpoint: Endpoint) -> str:
    """The interface's driver (ETHTOOL_GDRVINFO), e.g. "veth"; "driver unknown" where it cannot
    be read."""
    buf = bytearray(struct.pack("I", 0x3).ljust(196, b"\0"))  # ETHTOOL_GDRVINFO, ethtool_drvinfo
    ifreq = bytearray(struct.pack("16sP", endpoint.ifname.encode(), 0).ljust(40, b"\0"))
    try:
        with endpoint.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
            struct.pack_into("P", ifreq, 16, addr)
            fcntl.ioctl(sock.fileno(), 0x8946, bytes(ifreq))  # SIOCETHTOOL
    except OSError:
        return "driver unknown"
    return bytes(buf[4:36]).split(b"\0", 1)[0].decode(errors="replace") or "driver unknown"
