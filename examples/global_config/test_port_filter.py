"""A program configured through `const volatile` globals and read back through its counters."""

from pathlib import Path

import pytest

from xdptest import ConfigError, XdpProgram

PROGRAM = Path(__file__).with_name("xdp_port_filter.c")


def test_rodata_set_before_load_and_bss_read_back(veth_pair, xdp_program):
    pair = veth_pair()
    prog = xdp_program(PROGRAM, rodata={"blocked_port": 9})   # one step: configure, then load
    prog.attach(pair.b)
    with pair.a.udp_socket() as tx:
        for port, n in ((9, 5), (53, 7)):
            for _ in range(n):
                tx.sendto(b"hi", (pair.b.ipv4, port))
    assert prog.variables["blocked_port"] == 9
    assert prog.variables["blocked"] == 5                      # .bss, read while it runs
    assert prog.variables["seen"] == 12
    assert prog.variables["per_protocol"] == [0, 0, 12, 0]    # an array reads as a list
    assert prog.variables["label"] == b"filter\0\0"           # a char array as bytes
    assert prog.maps["by_port"].lookup(53) == 7


def test_two_steps_resize_a_map_and_write_data_while_running(xdp_run):
    prog = XdpProgram.open(PROGRAM)
    prog.variables["blocked_port"] = 7
    prog.variables["verdict"] = 2                               # XDP_PASS: count, but let it through
    prog.maps["by_port"].max_entries = 256
    prog.load()
    try:
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether

        frame = Ether() / IP() / UDP(dport=7) / (b"x" * 18)
        assert xdp_run(prog, frame).action.name == "PASS" and prog.variables["blocked"] == 1
        prog.variables["budget"] = 0                            # .data: written while loaded
        assert xdp_run(prog, frame).action.name == "DROP"
        assert prog.maps["by_port"].max_entries == 256
        with pytest.raises(ConfigError, match="froze at load"):
            prog.variables["blocked_port"] = 8
        with pytest.raises(ConfigError, match=r"no global variable 'nope'; its variables: blocked_port"):
            prog.variables["nope"] = 1
    finally:
        prog.close()
