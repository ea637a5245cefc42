"""The veth trap, for real packets: XDP_TX answered with nothing attached to the other end by the
test, redirects into another kit pair arriving, and the kit's keeper making way for programs."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
from scapy.layers.inet import ICMP, IP

from tests.conftest import ROOT
from xdptest import Netns, VethPair, XdpProgram
from xdptest.bpf import attached_programs
from xdptest.features import kernel_version
from xdptest.nsexec import run_in_netns
from xdptest.veth_peer import keeper_of

ECHO = ROOT / "examples" / "icmp_echo" / "xdp_icmp_echo.c"
# veth runs its NAPI (GRO) for frames redirected in without an XDP program on the peer since 5.13;
# before, a redirect into a veth whose peer runs no XDP program is dropped (measured on 5.10).
VETH_NAPI_WITHOUT_XDP = (5, 13)
REDIRECT = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile __u32 target = 0;
const volatile __u32 use_map = 0;
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); }
    devs SEC(".maps");
SEC("xdp") int xt_test_redirect(struct xdp_md *ctx)
{
    return use_map ? bpf_redirect_map(&devs, 0, 0) : bpf_redirect(target, 0);
}
char LICENSE[] SEC("license") = "GPL";
"""


def ping(pair: VethPair, count: int = 3, timeout: float = 1.0) -> int:
    """Echo replies received at pair.a for ``count`` requests to pair.b (a raw ICMP socket)."""
    with pair.a.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(0.1)
        for seq in range(count):
            sock.sendto(bytes(ICMP(type="echo-request", id=0x7874, seq=seq) / b"xdptest"), (pair.b.ipv4, 0))
        replies: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(replies) < count and time.monotonic() < deadline:
            try:
                reply = IP(sock.recv(2048))
            except TimeoutError:
                continue
            if ICMP in reply and reply[ICMP].type == 0 and reply[ICMP].id == 0x7874:
                replies.add(reply[ICMP].seq)
        return len(replies)


def test_an_xdp_tx_responder_is_answered_with_nothing_attached_on_the_other_end(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    echo = xdp_program(ECHO)
    att = echo.attach(pair.b, mode="native")
    assert ping(pair) == 3
    assert echo.maps["replies"].lookup(0) == 3
    keeper = keeper_of(pair.a)
    assert keeper is not None and attached_programs(pair.a) == {"native": keeper}
    att.detach()  # the keeper goes with the program that needed it
    assert attached_programs(pair.a) == {} and keeper_of(pair.a) is None


def test_the_keeper_makes_way_for_a_program_and_comes_back_after_it(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    echo = xdp_program(ECHO)
    echo.attach(pair.b, mode="native")
    mine = xdp_program("count")
    mine_att = mine.attach(pair.a, mode="generic")  # generic cannot share with a native keeper
    assert attached_programs(pair.a) == {"generic": mine.id}
    mine_att.detach()
    assert attached_programs(pair.a) == {"native": keeper_of(pair.a)}
    assert ping(pair) == 3
    native = xdp_program("pass")
    native.attach(pair.a, mode="native")
    assert attached_programs(pair.a) == {"native": native.id} and keeper_of(pair.a) is None


@pytest.mark.parametrize("use_map", [False, True], ids=["bpf_redirect", "devmap"])
def test_a_redirect_into_another_kit_pair_arrives(tmp_path, use_map: bool) -> None:
    source = tmp_path / "redirect.bpf.c"
    source.write_text(REDIRECT)
    with Netns() as middle, VethPair(netns_b=middle) as first, \
            VethPair(netns_a=middle, ipv4=("198.19.0.1/24", "198.19.0.2/24")) as second:
        prog = XdpProgram.load(source, rodata={"target": second.a.ifindex, "use_map": int(use_map)})
        try:
            if use_map:  # the kernel reads the ifindex in the namespace of whoever writes the map
                run_in_netns(middle.name, lambda: prog.maps["devs"].update(0, second.a.ifindex))
            prog.attach(first.b)

            def arrived() -> int:
                before = _rx_packets(second.b)
                with first.a.udp_socket() as tx:
                    for _ in range(5):
                        tx.sendto(b"redirected", (first.b.ipv4, 9))
                time.sleep(0.2)
                return _rx_packets(second.b) - before

            if kernel_version() >= VETH_NAPI_WITHOUT_XDP:
                assert arrived() == 5
                assert attached_programs(second.b) == {}  # nothing on the far end: GRO is enough
            else:  # before 5.13 veth takes redirected frames only for a peer that runs XDP
                assert arrived() == 0
                with XdpProgram.load("pass") as keeper:
                    keeper.attach(second.b)
                    assert arrived() == 5
        finally:
            prog.close()


def _rx_packets(endpoint) -> int:
    out = subprocess.run(["ip", "-n", endpoint.netns.name, "-s", "-j", "link", "show", endpoint.ifname],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def test_interfaces_the_user_names_are_never_given_a_keeper(veth_pair, xdp_program) -> None:
    """Attached by name, the kit keeps its hands off the other end: and the kernel's trap shows -
    the program answers, the replies never arrive (the measurement behind README's table)."""
    pair = veth_pair()
    echo = xdp_program(ECHO)
    echo.attach(pair.b.ifname, mode="native", netns=pair.b.netns)  # by name: not the kit's endpoint
    assert attached_programs(pair.a) == {}
    assert ping(pair) == 0
    assert echo.maps["replies"].lookup(0) == 3
