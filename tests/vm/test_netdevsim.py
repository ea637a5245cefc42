"""netdevsim devices in kit namespaces: ports, ethtool, XDP attach (native, offload), AF_XDP.

Run in a guest: ``pytest --xdptest-kernel debian-6.12 tests/vm`` (or ``debian-6.1``). On a kernel
without netdevsim these skip, saying so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.kernel import udp
from tests.kernel.xsk_helpers import frames, recv_n, send_all, seq_of
from xdptest import XdpAction
from xdptest.bpf import attached_programs
from xdptest.builtin import action_counts
from xdptest.features import kernel_version
from xdptest.netdevsim import LINK_SINCE, SYS_BUS, link_unavailable_reason, netdevsim_unavailable_reason


def _require_link() -> None:
    """Skip where the kernel predates linked ports; fail where it should have them."""
    reason = link_unavailable_reason()
    if reason is None:
        return
    if kernel_version() >= LINK_SINCE:
        pytest.fail(f"Linux {'.'.join(map(str, LINK_SINCE))}+ should link netdevsim ports: {reason}",
                    pytrace=False)
    pytest.skip(reason)


def test_ports_live_in_fresh_kit_namespaces(netdevsim) -> None:
    dev = netdevsim(ports=2, queues=2, link=False)
    assert len(dev.ports) == 2
    assert dev.sysfs.is_dir()
    for i, port in enumerate(dev.ports):
        assert port.ifname.startswith("xt") and port.netns.name.startswith("xt")
        assert port.netns.ifindex(port.ifname) == port.ifindex
        assert port.ipv4 == f"198.18.0.{i + 1}"
        assert port.link().get_attr("IFLA_NUM_RX_QUEUES") == 2
    assert dev.ports[0].netns.name != dev.ports[1].netns.name
    sysfs, namespaces = dev.sysfs, [p.netns for p in dev.ports]
    dev.close()
    assert not sysfs.exists()
    assert all(ns.closed and not os.path.exists(ns.path) for ns in namespaces)


def test_ethtool_channels_and_rings(netdevsim) -> None:
    dev = netdevsim(ports=1, queues=4)
    channels = dev.channels()
    assert channels["max"]["combined"] == 4
    rings = dev.rings()
    assert rings["max"]["rx"] >= 64 and rings["max"]["tx"] >= 64
    dev.set_rings(rx=64, tx=64)
    assert dev.rings()["current"]["rx"] == 64
    assert dev.rings()["current"]["tx"] == 64


@pytest.mark.parametrize("mode", ["native", "generic", "offload"])
def test_attach_modes(netdevsim, xdp_program, mode: str) -> None:
    port = netdevsim().ports[0]
    prog = xdp_program("pass", offload_to=port) if mode == "offload" else xdp_program("pass")
    att = prog.attach(port, mode=mode)
    assert attached_programs(port) == {mode: prog.id}
    att.detach()
    assert attached_programs(port) == {}


def test_af_xdp_binds_on_each_queue(netdevsim, xsk) -> None:
    port = netdevsim(queues=2).ports[0]
    socks = [xsk(port, queue=q) for q in (0, 1)]
    assert [s.bind_mode for s in socks] == ["copy", "copy"]
    assert all(v == 0 for s in socks for v in s.statistics().values())


def test_linked_ports_carry_udp(netdevsim) -> None:
    _require_link()
    dev = netdevsim(ports=2)
    a, b = dev.ports
    assert dev.linked and a.peer is b
    with udp.open_receiver(b) as rx:
        udp.send(a, b, rx.getsockname()[1], 100)
        assert len(udp.drain(rx, 100)) == 100


def test_generic_xdp_counts_frames_from_the_peer(netdevsim, xdp_program) -> None:
    _require_link()
    a, b = netdevsim(ports=2).ports
    prog = xdp_program("count")
    prog.attach(b, mode="generic")
    udp.send(a, b, 9, 50)
    # sendto() returns once a datagram waits for ARP; under emulation the reply may take a while.
    deadline = time.monotonic() + 5.0
    while (passed := action_counts(prog)[XdpAction.PASS].packets) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert passed >= 50


def test_af_xdp_receives_from_the_linked_peer(netdevsim, xsk) -> None:
    _require_link()
    a, b = netdevsim(ports=2).ports
    rx = xsk(b, attach_mode="generic")
    tx = xsk(a, attach_mode="generic")
    data = frames(a, b, 500)
    send_all(tx, data)
    got = recv_n(rx, 500, timeout=5.0)
    assert [seq_of(f) for f in got] == [(0, i) for i in range(500)]
    assert got == data


def test_traffic_engine_verifies_linked_ports(netdevsim, traffic) -> None:
    _require_link()
    a, b = netdevsim(ports=2).ports
    report = traffic(a, b, count=2000, attach_mode="generic")
    assert report.sent == report.received == 2000
    assert report.lost == report.corrupted == 0


def test_netdevsim_bus_is_there() -> None:
    """Where this suite runs in a guest prepared with netdevsim, the bus must exist."""
    if not os.environ.get("XDPTEST_GUEST_NETDEVSIM"):
        pytest.skip("only meaningful in a guest booted by --xdptest-kernel")
    assert netdevsim_unavailable_reason() is None
    assert Path(SYS_BUS, "new_device").exists()


def test_netdevsim_declares_hw_offload_in_its_xdp_features(netdevsim) -> None:
    from xdptest.netdev import xdp_features

    port = netdevsim().ports[0]
    declared = xdp_features(port)
    if kernel_version() < (6, 3):
        assert declared is None
        pytest.skip("the netdev netlink family (device XDP features) came with Linux 6.3")
    assert declared is not None and "hw_offload" in declared.actions and not declared.zerocopy
