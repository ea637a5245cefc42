"""Network namespaces and veth pairs, built with pyroute2 and always removed.

``Netns`` is a named namespace (visible to ``ip netns``) with ``lo`` up. ``VethPair`` joins two
namespaces with a veth pair: addresses, MTU, queue counts, MAC addresses and static neighbour
entries, so traffic flows without ARP. Both are context managers; whatever they created is removed
by ``close()``, at interpreter exit, or - for a process that was killed - by the next run of the
kit (see :mod:`xdptest.registry`).

The veth trap, handled by construction: a frame that XDP transmits or redirects into a veth is
silently dropped unless the receiving peer runs NAPI (it has an XDP program attached, or GRO is on).
``VethPair`` turns GRO on at both ends (``gro=True``), so such frames always arrive.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from xdptest import caps, registry
from xdptest.errors import ConfigError, InterfaceNotFoundError, NamespaceError, NetlinkError
from xdptest.nsexec import netns_path, netns_socket, run_in_netns, set_gro
from xdptest.teardown import run_all

if TYPE_CHECKING:
    from pyroute2 import IPRoute

DEFAULT_IPV4 = ("198.18.0.1/24", "198.18.0.2/24")  # RFC 2544 benchmarking range
DEFAULT_IPV6 = ("2001:2::1/64", "2001:2::2/64")  # RFC 5180 benchmarking range
IFA_F_NODAD = 0x02
NUD_PERMANENT = 0x80

Socket = socket.socket  # the methods named `socket` below shadow the module in class bodies

_live: weakref.WeakSet[Netns] = weakref.WeakSet()
_reaped = False
_reap_lock = threading.Lock()


def iproute(netns: str | None) -> IPRoute:
    """A pyroute2 ``IPRoute`` in namespace ``netns`` (None or "": this process's own).

    ext_ack: the kernel's own sentence for a refusal (e.g. veth's queue rule) reaches errors.
    """
    from pyroute2 import IPRoute

    if not netns:
        return IPRoute(ext_ack=True)
    return IPRoute(netns=netns, flags=0, ext_ack=True)


def _remove_netns(name: str) -> None:
    from pyroute2 import netns as pr_netns

    if not os.path.exists(netns_path(name)):
        raise FileNotFoundError(name)
    pr_netns.remove(name)


def reap_leftovers() -> list[str]:
    """Remove namespaces recorded by kit processes that died; return what was removed."""
    from xdptest.pins import remove_root

    return registry.reap_dead(_remove_netns, remove_root)


def _reap_once() -> None:
    global _reaped
    with _reap_lock:
        if not _reaped:
            _reaped = True
            reap_leftovers()


def _validate_name(name: str) -> None:
    if not name.startswith(registry.PREFIX) or len(name) > registry.IFNAMSIZ or "/" in name:
        raise ConfigError(
            f"namespace name {name!r}: the kit's names start with {registry.PREFIX!r} and have at "
            f"most {registry.IFNAMSIZ} characters (leave name=None for a generated one)"
        )


def _netlink_error(exc: Exception, what: str) -> NetlinkError:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno.EIO
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    detail = args[1] if len(args) > 1 and isinstance(args[1], str) else os.strerror(code)
    return NetlinkError(code, f"{what}: {detail}")


class Netns:
    """A fresh network namespace named ``xt...`` with ``lo`` up; ``close()`` removes it.

    ``ip netns exec NAME CMD`` works on it while it exists (it is bind-mounted under /run/netns).
    """

    @classmethod
    def existing(cls, name: str | None) -> Netns:
        """A handle on a namespace the kit did not create (None: this process's own).

        ``close()`` leaves it alone. Its ``name`` is "" for this process's own namespace.
        """
        # A namespace is a file there; "." and ".." exist too, but as directories.
        if name and not os.path.isfile(netns_path(name)):
            raise NamespaceError(errno.ENOENT, f"network namespace {name!r} does not exist (see `ip netns list`)")
        ns = cls.__new__(cls)
        ns.name = name or ""
        ns._closed = False
        ns._owned = False
        return ns

    def __init__(self, name: str | None = None) -> None:
        self._owned = True
        caps.require(caps.CAP_SYS_ADMIN, caps.CAP_NET_ADMIN, action="creating a network namespace")
        _reap_once()
        name = name or registry.new_name("n")
        _validate_name(name)
        if os.path.exists(netns_path(name)):
            raise NamespaceError(errno.EEXIST, f"network namespace {name!r} already exists")
        self.name = name
        self._closed = True
        registry.record(name)
        try:
            from pyroute2 import netns as pr_netns

            pr_netns.create(name)
        except Exception as exc:
            registry.forget(name)
            raise NamespaceError(
                getattr(exc, "errno", None) or errno.EIO, f"cannot create namespace {name}: {exc}"
            ) from exc
        self._closed = False
        _live.add(self)
        try:
            with self.iproute() as ipr:
                ipr.link("set", index=1, state="up")
        except Exception:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    def iproute(self) -> IPRoute:
        """A pyroute2 ``IPRoute`` bound to this namespace (use it as a context manager)."""
        self._check_open()
        return iproute(self.name)

    def socket(self, family: int, type_: int, proto: int = 0) -> Socket:
        """A socket living in this namespace (created on a short-lived thread)."""
        self._check_open()
        return netns_socket(self.name, family, type_, proto)

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (``ip netns exec``) and capture its output."""
        self._check_open()
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True, text=True, check=check, timeout=timeout,
        )

    def ifindex(self, ifname: str) -> int:
        with self.iproute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise InterfaceNotFoundError(f"no interface {ifname!r} in namespace {self.name}")
        return int(found[0])

    @property
    def path(self) -> str:
        return netns_path(self.name) if self.name else "/proc/self/ns/net"

    def keep(self) -> bool:
        """Leave the namespace in place past this process (``--xdptest-keep``).

        It stays recorded, so the next run of the kit, once this process is gone, removes it.
        Returns False if it was already closed.
        """
        if self._closed:
            return False
        self._closed = True
        _live.discard(self)
        return True

    def close(self) -> None:
        """Remove the namespace (its interfaces go with it). Safe to call twice.

        A handle from ``Netns.existing`` is only marked closed: the namespace stays.
        """
        if self._closed:
            return
        if not self._owned:
            self._closed = True
            return
        self._closed = True
        _live.discard(self)
        try:
            _remove_netns(self.name)
        except FileNotFoundError:
            pass
        finally:
            registry.forget(self.name)

    def _check_open(self) -> None:
        if self._closed:
            from xdptest.errors import ClosedError

            raise ClosedError(f"namespace {self.name} was closed")

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Netns({self.name!r}{', closed' if self._closed else ''})"


@atexit.register
def _close_all() -> None:
    for ns in list(_live):
        with contextlib.suppress(Exception):
            ns.close()


@dataclass
class Endpoint:
    """One end of a link: the interface and the namespace it lives in."""

    netns: Netns
    ifname: str
    ifindex: int
    mac: str
    ipv4: str | None = None
    ipv6: str | None = None
    ipv4_prefixlen: int = 24
    ipv6_prefixlen: int = 64
    queues: int = 1
    peer: Endpoint | None = field(default=None, repr=False, compare=False)

    def iproute(self) -> IPRoute:
        return self.netns.iproute()

    def socket(self, family: int, type_: int, proto: int = 0) -> Socket:
        return self.netns.socket(family, type_, proto)

    def link(self) -> Any:
        """The interface's current RTM_NEWLINK message (pyroute2)."""
        with self.iproute() as ipr:
            try:
                return ipr.get_links(self.ifindex)[0]
            except Exception as exc:
                raise InterfaceNotFoundError(
                    f"interface {self.ifname} (index {self.ifindex}) is gone from {self.netns.name}"
                ) from exc

    @property
    def mtu(self) -> int:
        """The interface's MTU, as the kernel has it now."""
        return int(self.link().get_attr("IFLA_MTU"))

    def set_gro(self, enabled: bool) -> None:
        set_gro(self.netns.name, self.ifname, enabled)

    def udp_socket(self, ipv6: bool = False) -> Socket:
        """A UDP socket in this endpoint's namespace, bound to its address."""
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        addr = self.ipv6 if ipv6 else self.ipv4
        if addr is None:
            raise ConfigError(f"{self.ifname} has no {'IPv6' if ipv6 else 'IPv4'} address")
        sock = self.socket(family, socket.SOCK_DGRAM)
        sock.bind((addr, 0))
        return sock

    def __str__(self) -> str:
        return f"{self.ifname}@{self.netns.name}" if self.netns.name else self.ifname

    @classmethod
    def existing(cls, ifname: str, netns: str | None = None) -> Endpoint:
        """An endpoint on an interface the kit did not create (named by the user).

        Its MAC, first IPv4/IPv6 address and rx queue count are read from the kernel.
        """
        ns = Netns.existing(netns)
        with ns.iproute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                where = f"namespace {netns}" if netns else "this namespace"
                raise InterfaceNotFoundError(f"no interface {ifname!r} in {where} (see `ip link`)")
            index = int(found[0])
            link = ipr.get_links(index)[0]
            addrs = ipr.get_addr(index=index)
        v4 = [a for a in addrs if a["family"] == socket.AF_INET]
        v6 = [a for a in addrs if a["family"] == socket.AF_INET6 and a["scope"] == 0]
        return cls(
            netns=ns, ifname=ifname, ifindex=index, mac=str(link.get_attr("IFLA_ADDRESS")),
            ipv4=v4[0].get_attr("IFA_ADDRESS") if v4 else None,
            ipv6=v6[0].get_attr("IFA_ADDRESS") if v6 else None,
            ipv4_prefixlen=int(v4[0]["prefixlen"]) if v4 else 24,
            ipv6_prefixlen=int(v6[0]["prefixlen"]) if v6 else 64,
            queues=int(link.get_attr("IFLA_NUM_RX_QUEUES") or 1),
        )


def _disable_ipv6(ns: Netns, ifname: str) -> None:
    """Keep an IPv4-only link silent: no router solicitations or DAD probes among test frames."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"

    def write() -> None:
        # /proc/sys/net resolves to the namespace of the thread that opens it.
        with contextlib.suppress(FileNotFoundError), open(path, "w") as f:
            f.write("1")

    run_in_netns(ns.name, write)


def _wait_operstate_up(end: Endpoint, timeout: float = 5.0) -> None:
    """Wait until the kernel has activated the link (until then its qdisc drops everything)."""
    deadline = time.monotonic() + timeout
    while True:
        state = end.link().get_attr("IFLA_OPERSTATE")
        if state == "UP":
            return
        if time.monotonic() > deadline:
            raise NetlinkError(errno.ETIMEDOUT, f"{end} did not come up within {timeout} s ({state})")
        time.sleep(0.002)


def _random_mac() -> str:
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in raw)


def _address_pair(value: bool | Sequence[str], default: tuple[str, str], family: str) -> tuple[Any, Any]:
    if value is False or value is None:
        return None, None
    pair = default if value is True else tuple(value)
    if len(pair) != 2:
        raise ConfigError(f"{family}= takes True, False or two addresses with prefix, got {value!r}")
    try:
        a, b = (ipaddress.ip_interface(str(x)) for x in pair)
    except ValueError as exc:
        raise ConfigError(f"{family}=: {exc}") from None
    return a, b


class VethPair:
    """Two namespaces joined by a veth pair; ``.a`` and ``.b`` are the endpoints.

    ``queues`` sets both ends' rx and tx queue counts (``rx_queues``/``tx_queues`` set them
    apart); addresses default to 198.18.0.1/24 and .2 (the benchmarking range), IPv6 to
    2001:2::1/64 and ::2 (no DAD); with ``ipv6=False`` IPv6 is disabled on the link, so no
    stray router solicitations mix with test traffic. Each end has a permanent neighbour entry for the other, and GRO
    is on at both ends so that frames XDP sends into the veth are not dropped (see module doc).
    """

    def __init__(
        self,
        queues: int = 1,
        mtu: int = 1500,
        ipv4: bool | Sequence[str] = True,
        ipv6: bool | Sequence[str] = False,
        *,
        rx_queues: int | None = None,
        tx_queues: int | None = None,
        mac_a: str | None = None,
        mac_b: str | None = None,
        gro: bool = True,
        netns_a: Netns | None = None,
        netns_b: Netns | None = None,
    ) -> None:
        rxq = rx_queues if rx_queues is not None else queues
        txq = tx_queues if tx_queues is not None else queues
        for label, n in (("queues/rx_queues", rxq), ("queues/tx_queues", txq)):
            if not isinstance(n, int) or not 1 <= n <= 1024:
                raise ConfigError(f"{label} must be an integer from 1 to 1024, got {n!r}")
        if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
            raise ConfigError(f"mtu must be an integer from 68 to 65535, got {mtu!r}")
        v4a, v4b = _address_pair(ipv4, DEFAULT_IPV4, "ipv4")
        v6a, v6b = _address_pair(ipv6, DEFAULT_IPV6, "ipv6")
        mac_a = mac_a or _random_mac()
        mac_b = mac_b or _random_mac()
        self._owned: list[Netns] = []
        with contextlib.ExitStack() as undo:
            ns_a = netns_a or self._own(Netns(), undo)
            ns_b = netns_b or self._own(Netns(), undo)
            base = registry.new_name("v")
            name_a, name_b = base + "a", base + "b"
            self._create(ns_a, ns_b, name_a, name_b, rxq, txq, mtu, mac_a, mac_b)
            if netns_a is not None or netns_b is not None:
                undo.callback(self._delete_link, ns_a, name_a)
            self.a = self._configure(ns_a, name_a, mac_a, mtu, v4a, v6a, rxq, gro)
            self.b = self._configure(ns_b, name_b, mac_b, mtu, v4b, v6b, rxq, gro)
            self.a.peer, self.b.peer = self.b, self.a
            self._neighbours(self.a, self.b)
            self._neighbours(self.b, self.a)
            for end in (self.a, self.b):
                _wait_operstate_up(end)
            undo.pop_all()
        self._closed = False

    def _own(self, ns: Netns, undo: contextlib.ExitStack) -> Netns:
        self._owned.append(ns)
        undo.callback(ns.close)
        return ns

    @staticmethod
    def _create(ns_a: Netns, ns_b: Netns, name_a: str, name_b: str, rxq: int, txq: int,
                mtu: int, mac_a: str, mac_b: str) -> None:
        fd_b = os.open(ns_b.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with ns_a.iproute() as ipr:
                ipr.link(
                    "add", ifname=name_a, kind="veth", address=mac_a, mtu=mtu,
                    num_rx_queues=rxq, num_tx_queues=txq,
                    peer={"ifname": name_b, "net_ns_fd": fd_b, "address": mac_b, "mtu": mtu,
                          "num_rx_queues": rxq, "num_tx_queues": txq},
                )
        except Exception as exc:
            raise _netlink_error(exc, f"creating veth {name_a}/{name_b}") from exc
        finally:
            os.close(fd_b)

    @staticmethod
    def _delete_link(ns: Netns, ifname: str) -> None:
        with contextlib.suppress(Exception), ns.iproute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if found:
                ipr.link("del", index=found[0])

    @staticmethod
    def _configure(ns: Netns, ifname: str, mac: str, mtu: int, v4: Any, v6: Any, queues: int,
                   gro: bool) -> Endpoint:
        if v6 is None:
            _disable_ipv6(ns, ifname)
        with ns.iproute() as ipr:
            index = int(ipr.link_lookup(ifname=ifname)[0])
            try:
                if v4 is not None:
                    ipr.addr("add", index=index, address=str(v4.ip), prefixlen=v4.network.prefixlen)
                if v6 is not None:
                    ipr.addr("add", index=index, address=str(v6.ip), prefixlen=v6.network.prefixlen,
                             flags=IFA_F_NODAD)
                ipr.link("set", index=index, state="up")
            except Exception as exc:
                raise _netlink_error(exc, f"configuring {ifname} in {ns.name}") from exc
        set_gro(ns.name, ifname, gro)  # set either way: veth's default differs by kernel (on in 5.10)
        return Endpoint(
            netns=ns, ifname=ifname, ifindex=index, mac=mac,
            ipv4=str(v4.ip) if v4 is not None else None,
            ipv6=str(v6.ip) if v6 is not None else None,
            ipv4_prefixlen=v4.network.prefixlen if v4 is not None else 24,
            ipv6_prefixlen=v6.network.prefixlen if v6 is not None else 64,
            queues=queues,
        )

    @staticmethod
    def _neighbours(local: Endpoint, remote: Endpoint) -> None:
        with local.iproute() as ipr:
            for addr, family in ((remote.ipv4, socket.AF_INET), (remote.ipv6, socket.AF_INET6)):
                if addr is None:
                    continue
                try:
                    ipr.neigh("replace", dst=addr, lladdr=remote.mac, ifindex=local.ifindex,
                              state=NUD_PERMANENT, family=family)
                except Exception as exc:
                    raise _netlink_error(exc, f"neighbour {addr} on {local}") from exc

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        return self.a, self.b

    def keep(self) -> list[str]:
        """Keep the namespaces this pair created (see ``Netns.keep``); return their names."""
        self._closed = True
        return [ns.name for ns in self._owned if ns.keep()]

    def close(self) -> None:
        """Remove the pair and the namespaces it created. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._owned or len(self._owned) < 2:
            self._delete_link(self.a.netns, self.a.ifname)
        run_all(ns.close for ns in self._owned)

    def __enter__(self) -> VethPair:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VethPair({self.a}, {self.b})"
