"""An ICMP echo responder tested without any topology: BPF_PROG_TEST_RUN gives the verdict and
the reply it built. The program includes <linux/icmp.h>, which reaches glibc's headers."""

from pathlib import Path

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

PROGRAM = Path(__file__).with_name("xdp_icmp_echo.c")
REQUEST = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
           / IP(src="198.18.0.1", dst="198.18.0.2") / ICMP(type="echo-request", id=7, seq=1) / b"ping")


def test_echo_request_is_answered_with_xdp_tx(xdp_program, xdp_run):
    prog = xdp_program(PROGRAM)
    result = xdp_run(prog, REQUEST)
    assert result.action.name == "TX"
    reply = Ether(result.data)
    assert (reply.src, reply.dst) == ("02:00:00:00:00:02", "02:00:00:00:00:01")
    assert (reply[IP].src, reply[IP].dst) == ("198.18.0.2", "198.18.0.1")
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 7, 1)
    recomputed = ICMP(bytes(reply[ICMP]))
    del recomputed.chksum
    assert reply[ICMP].chksum == ICMP(bytes(recomputed)).chksum
    assert prog.maps["replies"].lookup(0) == 1


def test_other_traffic_passes(xdp_program, xdp_run):
    prog = xdp_program(PROGRAM)
    reply = REQUEST.copy()
    reply[ICMP].type = "echo-reply"
    assert xdp_run(prog, reply).action.name == "PASS"
    assert prog.maps["replies"].lookup(0) == 0


def ping(pair, count=3, timeout=1.0):
    """Echo replies that reach pair.a for requests to pair.b (a raw ICMP socket in pair.a's namespace)."""
    import socket
    import time

    with pair.a.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(0.1)
        for seq in range(count):
            sock.sendto(bytes(ICMP(type="echo-request", id=42, seq=seq)), (pair.b.ipv4, 0))
        replies, deadline = set(), time.monotonic() + timeout
        while len(replies) < count and time.monotonic() < deadline:
            try:
                reply = IP(sock.recv(2048))
            except TimeoutError:
                continue
            if ICMP in reply and reply[ICMP].type == 0 and reply[ICMP].id == 42:
                replies.add(reply[ICMP].seq)
        return len(replies)


def test_ping_over_a_veth_pair_is_answered_by_xdp_tx(veth_pair, xdp_program):
    pair = veth_pair()
    prog = xdp_program(PROGRAM)
    prog.attach(pair.b, mode="native")   # nothing attached to pair.a by the test
    assert ping(pair) == 3
    assert prog.maps["replies"].lookup(0) == 3
