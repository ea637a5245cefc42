"""netdevsim devices: simulated NICs with driver-mode and offload XDP, in kit namespaces.

``Netdevsim(ports=2, queues=1)`` creates a device through ``/sys/bus/netdevsim/new_device``,
renames each port to a kit name (``xt...``) and moves it into a fresh namespace of its own, with
an address (198.18.0.N/24) and the link up. Where the kernel can link two ports
(``/sys/bus/netdevsim/link_device``, Linux 6.9+), a two-port device is linked, so frames sent on
one port arrive on the other, and each port has a permanent neighbour entry for its peer.
``close()`` (or leaving the ``with`` block) deletes the device and the namespaces.

netdevsim runs native XDP programs only on frames it is given through its test paths, not on frames
received from a linked peer: to see received frames in XDP or AF_XDP on a netdevsim port, attach
in ``generic`` mode. Offload (``XDP_FLAGS_HW_MODE``) is accepted for programs loaded with
``offload_to=`` the port.

Ring and channel settings are read and set with the ``ethtool`` command in the port's namespace.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import platform
import re
import secrets
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from xdptest.errors import ConfigError, NetlinkError, NotSupportedError
from xdptest.netns import Endpoint, Netns, VethPair, _netlink_error
from xdptest.registry import new_name

SYS_BUS = Path("/sys/bus/netdevsim")
LINK_SINCE = (6, 9)  # /sys/bus/netdevsim/link_device
GUEST_HINT = "run with --xdptest-kernel debian-6.12"


@functools.cache
def netdevsim_unavailable_reason() -> str | None:
    """None where netdevsim devices can be created here, else why not (loads the module once)."""
    if (SYS_BUS / "new_device").exists():
        return None
    release = platform.release()
    tree = Path("/lib/modules") / release
    if not tree.is_dir():
        return (f"no netdevsim in kernel {release} (/sys/bus/netdevsim missing and no loadable module): "
                f"{GUEST_HINT}")
    if os.geteuid() != 0:
        return f"netdevsim is not loaded in kernel {release} and loading it needs root"
    try:
        proc = subprocess.run(["modprobe", "netdevsim"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return f"netdevsim is not loaded in kernel {release} and modprobe is missing (apt-get install kmod)"
    except subprocess.TimeoutExpired:
        return f"modprobe netdevsim did not finish within 60 s (kernel {release})"
    if (SYS_BUS / "new_device").exists():
        return None
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    return (f"no netdevsim in kernel {release} (modprobe netdevsim: "
            f"{detail[-1] if detail else f'exit {proc.returncode}'}): {GUEST_HINT}")


def link_unavailable_reason() -> str | None:
    """None where two netdevsim ports can be linked (Linux 6.9+), else why not."""
    reason = netdevsim_unavailable_reason()
    if reason:
        return reason
    if not (SYS_BUS / "link_device").exists():
        return f"netdevsim in kernel {platform.release()} cannot link ports (no {SYS_BUS}/link_device; Linux 6.9+)"
    return None


def _write(path: Path, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise NetlinkError(exc.errno or errno.EIO, f"writing {text!r} to {path}: {exc.strerror}") from None


def _port_order(ifname: str) -> tuple[int, str]:
    with contextlib.suppress(OSError):
        m = re.fullmatch(r"p(\d+)", Path(f"/sys/class/net/{ifname}/phys_port_name").read_text().strip())
        if m:
            return int(m.group(1)), ifname
    return 1 << 30, ifname


def _ipv4_addresses(value: bool | Sequence[str], ports: int) -> list[ipaddress.IPv4Interface | None]:
    if value is False:
        return [None] * ports
    if value is True:
        return [ipaddress.IPv4Interface(f"198.18.0.{i + 1}/24") for i in range(ports)]
    if len(value) != ports:
        raise ConfigError(f"ipv4= takes True, False or {ports} addresses with prefix, got {value!r}")
    try:
        return [ipaddress.IPv4Interface(str(v)) for v in value]
    except ValueError as exc:
        raise ConfigError(f"ipv4=: {exc}") from None


def _ethtool_numbers(text: str) -> dict[str, dict[str, int]]:
    """``ethtool -g``/``-l`` output -> {"max": {...}, "current": {...}} with lower-case keys."""
    out: dict[str, dict[str, int]] = {"max": {}, "current": {}}
    section: dict[str, int] | None = None
    for line in text.splitlines():
        low = line.strip().lower()
        if low.startswith("pre-set maximums"):
            section = out["max"]
        elif low.startswith("current hardware settings"):
            section = out["current"]
        elif section is not None and ":" in low:
            key, _, value = low.partition(":")
            with contextlib.suppress(ValueError):
                section[key.strip().replace(" ", "_")] = int(value.strip())
    return out


def _wait_carrier(end: Endpoint, timeout: float = 5.0) -> None:
    """Wait for the carrier of a linked port (netdevsim reports operstate UNKNOWN, not UP)."""
    deadline = time.monotonic() + timeout
    while True:
        link = end.link()
        if link.get_attr("IFLA_CARRIER") == 1 and link.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN"):
            return
        if time.monotonic() > deadline:
            raise NetlinkError(errno.ETIMEDOUT, f"{end} has no carrier {timeout} s after linking")
        time.sleep(0.005)


class Netdevsim:
    """A netdevsim device whose ports live in kit namespaces (see the module doc).

    ``.ports`` are ``Endpoint`` objects (``.netns``, ``.ifname``, ``.ifindex``, ``.mac``,
    ``.ipv4``); ``.linked`` says whether ports 0 and 1 are joined. ``link=None`` links a two-port
    device where the kernel can; ``link=True`` insists (``NotSupportedError`` where it cannot).
    """

    def __init__(self, ports: int = 1, queues: int = 1, *, link: bool | None = None,
                 ipv4: bool | Sequence[str] = True, device_id: int | None = None) -> None:
        for label, n, hi in (("ports", ports, 32), ("queues", queues, 64)):
            if not isinstance(n, int) or not 1 <= n <= hi:
                raise ConfigError(f"{label} must be an integer from 1 to {hi}, got {n!r}")
        reason = netdevsim_unavailable_reason()
        if reason:
            raise NotSupportedError("netdevsim", reason)
        want_link = (ports == 2) if link is None else link
        if want_link and ports != 2:
            raise ConfigError(f"link=True needs ports=2, got ports={ports}")
        link_reason = link_unavailable_reason() if want_link else None
        if link is True and link_reason:
            raise NotSupportedError("netdevsim link", link_reason, since="6.9")
        addresses = _ipv4_addresses(ipv4, ports)
        self.queues = queues
        self.linked = False
        self.ports: list[Endpoint] = []
        self._namespaces: list[Netns] = []
        self._closed = False
        self.id = device_id if device_id is not None else self._free_id()
        _write(SYS_BUS / "new_device", f"{self.id} {ports} {queues}")
        try:
            names = self._wait_ports(ports)
            for name, addr in zip(names, addresses, strict=True):
                self.ports.append(self._adopt(name, addr))
            made = self.ports[0].link().get_attr("IFLA_NUM_RX_QUEUES") or 1
            if made < queues:  # older netdevsims read only "ID PORTS" and make one queue
                raise NotSupportedError("netdevsim with several queues",
                                        f"this kernel's netdevsim made {made} per port", since="5.12")
            if want_link and not link_reason:
                self._link(self.ports[0], self.ports[1])
        except BaseException:
            self.close()
            raise

    @property
    def sysfs(self) -> Path:
        return SYS_BUS / "devices" / f"netdevsim{self.id}"

    @staticmethod
    def _free_id() -> int:
        for _ in range(100):
            candidate = 1000 + secrets.randbelow(60000)
            if not (SYS_BUS / "devices" / f"netdevsim{candidate}").exists():
                return candidate
        raise NetlinkError(errno.EEXIST, "no free netdevsim id")

    def _wait_ports(self, ports: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError):
                names = sorted(os.listdir(self.sysfs / "net"), key=_port_order)
                if len(names) >= ports:
                    return names[:ports]
            if time.monotonic() > deadline:
                raise NetlinkError(errno.ETIMEDOUT, f"netdevsim{self.id} did not create {ports} ports in {timeout} s")
            time.sleep(0.01)

    def _adopt(self, ifname: str, addr: ipaddress.IPv4Interface | None) -> Endpoint:
        """Rename a fresh port to a kit name and move it into a namespace of its own."""
        ns = Netns()
        self._namespaces.append(ns)
        name = new_name("d")
        from xdptest.netns import iproute

        fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with iproute(None) as ipr:
                index = int(ipr.link_lookup(ifname=ifname)[0])
                ipr.link("set", index=index, state="down")
                ipr.link("set", index=index, ifname=name)
                ipr.link("set", index=index, net_ns_fd=fd)
        except Exception as exc:
            raise _netlink_error(exc, f"moving netdevsim port {ifname} into {ns.name}") from exc
        finally:
            os.close(fd)
        with ns.iproute() as ipr:
            mac = str(ipr.get_links(ipr.link_lookup(ifname=name)[0])[0].get_attr("IFLA_ADDRESS"))
        end = VethPair._configure(ns, name, mac, 1500, addr, None, self.queues, gro=False)
        return end

    def _link(self, a: Endpoint, b: Endpoint) -> None:
        fds = [os.open(e.netns.path, os.O_RDONLY | os.O_CLOEXEC) for e in (a, b)]
        try:
            _write(SYS_BUS / "link_device", f"{fds[0]}:{a.ifindex} {fds[1]}:{b.ifindex}")
        finally:
            for fd in fds:
                os.close(fd)
        self.linked = True
        a.peer, b.peer = b, a
        VethPair._neighbours(a, b)
        VethPair._neighbours(b, a)
        for end in (a, b):
            _wait_carrier(end)

    def _unlink(self) -> None:
        a = self.ports[0]
        fd = os.open(a.netns.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _write(SYS_BUS / "unlink_device", f"{fd}:{a.ifindex}")
        finally:
            os.close(fd)
        self.linked = False

    # --- ethtool ------------------------------------------------------------------------------

    def _ethtool(self, port: Endpoint | int, *args: str) -> str:
        end = self.ports[port] if isinstance(port, int) else port
        try:
            proc = end.netns.run("ethtool", *args, end.ifname, check=False)
        except FileNotFoundError:
            raise NotSupportedError("ethtool", "the ethtool command is missing (apt-get install ethtool)") from None
        if proc.returncode != 0:
            raise NetlinkError(errno.EIO, f"ethtool {' '.join(args)} {end}: {proc.stderr.strip()}")
        return proc.stdout

    def rings(self, port: Endpoint | int = 0) -> dict[str, dict[str, int]]:
        """``ethtool -g``: ``{"max": {"rx": .., "tx": ..}, "current": {"rx": .., "tx": ..}}``."""
        return _ethtool_numbers(self._ethtool(port, "-g"))

    def channels(self, port: Endpoint | int = 0) -> dict[str, dict[str, int]]:
        """``ethtool -l``: ``{"max": {"combined": ..}, "current": {"combined": ..}}``."""
        return _ethtool_numbers(self._ethtool(port, "-l"))

    def set_rings(self, port: Endpoint | int = 0, *, rx: int | None = None, tx: int | None = None) -> None:
        """``ethtool -G``."""
        args = [a for k, v in (("rx", rx), ("tx", tx)) if v is not None for a in (k, str(v))]
        if args:
            end = self.ports[port] if isinstance(port, int) else port
            proc = end.netns.run("ethtool", "-G", end.ifname, *args, check=False)
            if proc.returncode != 0:
                raise NetlinkError(errno.EINVAL, f"ethtool -G {end} {' '.join(args)}: {proc.stderr.strip()}")

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Delete the device and the namespaces of its ports. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        steps = [self._unlink] if self.linked else []
        steps.append(lambda: _write(SYS_BUS / "del_device", str(self.id)))
        steps += [ns.close for ns in self._namespaces]
        for step in steps:
            try:
                step()
            except Exception as exc:
                if not (isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENODEV)):
                    errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Netdevsim:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        ports = ", ".join(str(p) for p in self.ports)
        return f"Netdevsim(netdevsim{self.id}, [{ports}]{', linked' if self.linked else ''})"
