"""Two programs share a map pinned by name (LIBBPF_PIN_BY_NAME), as they would through
/sys/fs/bpf - here through the test's own bpffs, so no test sees another's counts."""

import os
import struct
from pathlib import Path

HERE = Path(__file__).parent


def packets(raw):
    return struct.unpack("<QQ", raw)[0]


def test_two_programs_count_into_one_pinned_map(veth_pair, xdp_program, xdp_run, xdp_pin_root):
    pair = veth_pair()
    passer = xdp_program(HERE / "xdp_pass_counted.c")
    dropper = xdp_program(HERE / "xdp_drop_counted.c")
    passer.attach(pair.b)
    with pair.a.udp_socket() as tx:
        for _ in range(4):
            tx.sendto(b"hello", (pair.b.ipv4, 9))
    xdp_run(dropper, bytes(64), repeat=3)
    shared = dropper.maps["xdp_stats_map"]                    # the dropper reads the passer's counts
    assert packets(shared.lookup(2)) == 4                     # XDP_PASS
    assert packets(shared.lookup(1)) == 3                     # XDP_DROP
    assert packets(passer.maps["xdp_stats_map"].lookup(1)) == 3
    assert xdp_pin_root.pins() == ["xdp_stats_map"]           # pinned once, in the test's own bpffs


def test_the_next_test_starts_from_zero(xdp_program):
    prog = xdp_program(HERE / "xdp_pass_counted.c")
    assert packets(prog.maps["xdp_stats_map"].lookup(2)) == 0  # no stale pin from the test before
    assert not os.path.exists("/sys/fs/bpf/xdp_stats_map")
