"""Namespaces and veth pairs: real objects, visible to the system's tools, and removed."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.kernel import udp
from xdptest import ConfigError, Netns, VethPair
from xdptest.nsexec import get_gro


def _netns_list() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def test_netns_is_visible_to_ip_netns_and_has_lo_up(xdp_netns) -> None:
    ns = xdp_netns()
    assert ns.name.startswith("xt") and len(ns.name) <= 15
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert ns.name in listed.split()
    out = ns.run("ip", "-o", "link", "show", "lo").stdout
    assert "UP" in out.split("<")[1].split(">")[0].split(",")


def test_netns_close_removes_it_and_is_idempotent() -> None:
    ns = Netns()
    name = ns.name
    assert name in _netns_list()
    ns.close()
    ns.close()
    assert name not in _netns_list()


def test_netns_refuses_names_outside_the_kit_prefix() -> None:
    with pytest.raises(ConfigError, match="start with 'xt'"):
        Netns("mytest")


def test_veth_pair_ends_live_in_their_own_namespaces(veth_pair) -> None:
    pair = veth_pair()
    assert pair.a.netns.name != pair.b.netns.name
    for end in pair.endpoints:
        out = end.netns.run("ip", "-o", "link", "show", end.ifname).stdout
        assert f"link/ether {end.mac}" in out
        assert end.ifindex == end.netns.ifindex(end.ifname)
    assert pair.a.ipv4 == "198.18.0.1" and pair.b.ipv4 == "198.18.0.2"


def test_veth_pair_queue_counts_are_real(veth_pair) -> None:
    pair = veth_pair(queues=3)
    for end in pair.endpoints:
        out = end.netns.run("ls", f"/sys/class/net/{end.ifname}/queues").stdout.split()
        assert sorted(out) == ["rx-0", "rx-1", "rx-2", "tx-0", "tx-1", "tx-2"]
        link = end.link()
        assert link.get_attr("IFLA_NUM_RX_QUEUES") == 3
        assert link.get_attr("IFLA_NUM_TX_QUEUES") == 3


def test_veth_pair_rx_and_tx_queue_counts_apart(veth_pair) -> None:
    pair = veth_pair(rx_queues=4, tx_queues=2)
    link = pair.a.link()
    assert (link.get_attr("IFLA_NUM_RX_QUEUES"), link.get_attr("IFLA_NUM_TX_QUEUES")) == (4, 2)


def test_veth_pair_mtu_macs_and_gro(veth_pair) -> None:
    pair = veth_pair(mtu=3000, mac_a="02:00:00:00:00:0a", mac_b="02:00:00:00:00:0b")
    for end, mac in ((pair.a, "02:00:00:00:00:0a"), (pair.b, "02:00:00:00:00:0b")):
        link = end.link()
        assert link.get_attr("IFLA_MTU") == 3000
        assert link.get_attr("IFLA_ADDRESS") == mac
        assert get_gro(end.netns.name, end.ifname) is True  # the veth trap, handled


def test_veth_pair_without_gro_leaves_it_off(veth_pair) -> None:
    pair = veth_pair(gro=False)
    assert get_gro(pair.b.netns.name, pair.b.ifname) is False


def test_static_neighbours_mean_no_arp(veth_pair) -> None:
    pair = veth_pair(ipv6=True)
    out = pair.a.netns.run("ip", "neigh", "show", "dev", pair.a.ifname).stdout
    assert f"{pair.b.ipv4} lladdr {pair.b.mac} PERMANENT" in out
    assert f"{pair.b.ipv6} lladdr {pair.b.mac} PERMANENT" in out


def test_udp_flows_both_ways_over_ipv4_and_ipv6(veth_pair) -> None:
    pair = veth_pair(ipv6=True)
    for src, dst in ((pair.a, pair.b), (pair.b, pair.a)):
        with udp.open_receiver(dst) as rx:
            udp.send(src, dst, rx.getsockname()[1], 20)
            got = udp.drain(rx, 20)
        assert [int.from_bytes(g[:4], "big") for g in got] == list(range(20))
    with pair.b.udp_socket(ipv6=True) as rx6, pair.a.udp_socket(ipv6=True) as tx6:
        rx6.settimeout(1.0)
        tx6.sendto(b"over v6", (pair.b.ipv6, rx6.getsockname()[1]))
        data, peer = rx6.recvfrom(100)
    assert data == b"over v6" and peer[0] == pair.a.ipv6


def test_ipv4_only_links_send_no_ipv6(veth_pair) -> None:
    pair = veth_pair()
    out = pair.a.netns.run("cat", f"/proc/sys/net/ipv6/conf/{pair.a.ifname}/disable_ipv6").stdout
    assert out.strip() == "1"


def test_bad_arguments_are_refused_before_anything_is_created() -> None:
    before = _netns_list()
    with pytest.raises(ConfigError, match="queues"):
        VethPair(queues=0)
    with pytest.raises(ConfigError, match="mtu"):
        VethPair(mtu=10)
    with pytest.raises(ConfigError, match="ipv4"):
        VethPair(ipv4=("198.18.0.1/24",))
    assert _netns_list() == before


def test_pair_close_removes_namespaces_and_links() -> None:
    pair = VethPair()
    names = {pair.a.netns.name, pair.b.netns.name}
    assert names <= _netns_list()
    pair.close()
    pair.close()
    assert not names & _netns_list()


def test_pair_between_existing_namespaces_leaves_them(xdp_netns) -> None:
    ns_a, ns_b = xdp_netns(), xdp_netns()
    with VethPair(netns_a=ns_a, netns_b=ns_b) as pair:
        assert pair.a.netns is ns_a
        ifname = pair.a.ifname
    assert {ns_a.name, ns_b.name} <= _netns_list()
    out = ns_a.run("ip", "-o", "link").stdout
    assert ifname not in out


def test_socket_in_namespace_does_not_move_the_process(veth_pair) -> None:
    pair = veth_pair()
    before = os.readlink("/proc/self/ns/net")
    sock = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((pair.a.ipv4, 0))  # only possible inside the namespace
    sock.close()
    assert os.readlink("/proc/self/ns/net") == before
