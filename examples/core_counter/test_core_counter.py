"""A CO-RE program (`#include "vmlinux.h"`) counting real UDP packets through its .bss array."""

from pathlib import Path

PROGRAM = Path(__file__).with_name("xdp_core_counter.c")
IPPROTO_UDP = 17


def test_vmlinux_h_program_counts_ipv4_protocols(veth_pair, xdp_program):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)                      # vmlinux.h is generated from the kernel's BTF
    prog.attach(pair.b)
    with pair.a.udp_socket() as tx:
        for _ in range(6):
            tx.sendto(b"core", (pair.b.ipv4, 9))
    assert prog.variables["ipv4_by_protocol"][IPPROTO_UDP] == 6


def test_a_frame_that_is_not_ipv4_is_counted_apart(xdp_program, xdp_run):
    prog = xdp_program(PROGRAM)
    assert xdp_run(prog, bytes(12) + b"\x86\xdd" + bytes(50)).action.name == "PASS"  # IPv6 ethertype
    assert prog.variables["not_ipv4"] == 1
