"""How a project tests its own XDP program with xdptest: only `veth_pair` and `xdp_program`."""

from pathlib import Path

import pytest

PROGRAM = Path(__file__).with_name("xdp_port_counter.c")


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_counts_udp_per_port_and_drops_discard(veth_pair, xdp_program, mode):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)  # a .c source is compiled with clang, once per content
    prog.attach(pair.b, mode=mode)

    with pair.a.udp_socket() as tx:
        for port, n in ((5000, 30), (9, 12)):
            for _ in range(n):
                tx.sendto(b"hello", (pair.b.ipv4, port))

    assert prog.maps["port_packets"].lookup(5000) == 30
    assert prog.maps["port_packets"].lookup(9) == 12
    assert dict(prog.maps["port_packets"].items()) == {5000: 30, 9: 12}
