"""A stranger's test of their own AF_XDP steering program, with the xdptest plugin's fixtures."""

from pathlib import Path

from xdptest.assertions import assert_delivered

PROGRAM = Path(__file__).with_name("steer.bpf.c")


def test_service_ports_reach_the_socket(veth_pair, xdp_program, traffic):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)
    prog.attach(pair.b)
    report = traffic(pair.a, pair.b, count=20_000, rx_program=prog, vary=["udp.dport=5000-5999"])
    assert_delivered(report)


def test_discard_port_never_arrives(veth_pair, xdp_program, traffic):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)
    prog.attach(pair.b)
    report = traffic(pair.a, pair.b, count=1000, rx_program=prog, packet="Ether()/IP()/UDP(dport=9)")
    assert (report.received, report.lost) == (0, 1000)


def test_every_other_frame_reaches_the_socket_the_rest_the_stack(veth_pair, xdp_program, traffic):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)
    prog.attach(pair.b)
    # ports alternate 5999 (steered to the socket) and 6000 (passed to the stack), frame by frame;
    # open loop at a set rate, since half the frames never come back to pace a closed loop
    report = traffic(pair.a, pair.b, count=20_000, rx_program=prog, vary=["udp.dport=5999-6000"],
                     window=0, rate=50_000)
    assert (report.received, report.lost, report.corrupted, report.duplicated) == (10_000, 10_000, 0, 0)
