"""The live-frames generator program on its own (BPF_PROG_TEST_RUN, no topology): each frame it
makes is byte for byte the frame the C generator builds for the same number, stream and
timestamp, whatever the input page held before, with checksums scapy agrees with."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from xdptest import packets
from xdptest._native.bpf import possible_cpus
from xdptest._native.gen import GenSpec
from xdptest.bpf import XdpAction, XdpProgram
from xdptest.errors import ConfigError
from xdptest.live import _CPU, pack_config, program_path

UDP4 = ("Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='198.18.0.1', "
        "dst='198.18.0.2', ttl=64)/UDP(sport=1000, dport=9)")
CASES = {
    "udp4": (UDP4, 64, ["udp.sport=1000-1099", "udp.dport=7-9:random", "ip.src=10.0.0.1-10.0.0.250:random",
                        "ip.dst=10.1.255.250-10.2.0.5", "ip.ttl=1-255", "eth.src=02:00:00:00:00:fe-02:00:00:00:01:05",
                        "eth.dst=02:00:00:00:00:00-02:ff:ff:ff:ff:ff:random"]),
    "udp4-nocsum": ("Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='198.18.0.1', "
                    "dst='198.18.0.2')/UDP(sport=1000, dport=9, chksum=0)", 60, ["ip.src=10.0.0.1-10.0.0.9"]),
    "tcp4": ("Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='198.18.0.1', "
             "dst='198.18.0.2')/TCP(sport=1000, dport=80, flags='S')", 128,
             ["tcp.sport=1024-65535:random", "tcp.dport=80-81", "ip.ttl=3-5"]),
    "udp6": ("Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IPv6(src='2001:2::1', "
             "dst='2001:2::2')/UDP(sport=1000, dport=9)", 90,
             ["ipv6.src=2001:2::ffff:ffff:ffff:fff0-2001:2:0:1::10", "ipv6.dst=2001:2::1-2001:2::ffff:random",
              "udp.sport=1-65535:random"]),
    "plain": (UDP4, 1400, []),
}


def _stamp_fields(frame: bytes, t: packets.Template) -> tuple[int, int, int]:
    s = frame[t.stamp_offset:t.stamp_offset + packets.STAMP_SIZE]
    return int.from_bytes(s[2:4], "big"), int.from_bytes(s[4:8], "big"), int.from_bytes(s[8:12], "big")


def _checksums_ok(frame: bytes) -> bool:
    pkt = Ether(frame)
    again = pkt.copy()
    for layer in (IP, UDP, TCP):
        if layer in again and not (layer is UDP and IP in pkt and pkt[UDP].chksum == 0):
            del again[layer].chksum
    return bytes(Ether(bytes(again))) == frame


@pytest.mark.parametrize("case", list(CASES))
def test_frames_match_the_c_generator(case: str) -> None:
    """Frame n from the program equals GenSpec.build(n) for the stream and timestamp it
    stamped, for IPv4/IPv6, UDP/TCP, sequential and random fields, carries across words."""
    expr, size, specs = CASES[case]
    template = packets.from_scapy(expr, size)
    varies = [packets.resolve(packets.parse_vary(s), template) for s in specs]
    start = 0xFFFFFFF0  # the 32-bit sequence number wraps during the run
    saved = os.sched_getaffinity(0)
    # The sequence is per CPU and a test run executes on the caller's CPU: a migration halfway
    # would continue from the other CPU's counter, so the loop stays on one CPU.
    os.sched_setaffinity(0, {min(saved)})
    try:
        _check_against_the_c_generator(template, varies, start)
    finally:
        os.sched_setaffinity(0, saved)


def _check_against_the_c_generator(template: packets.Template, varies: list[packets.Vary], start: int) -> None:
    with XdpProgram.load(program_path()) as prog:
        prog.maps["config"].update(0, pack_config(template, varies, seed=1234))
        prog.maps["cpu_state"].update(0, _CPU.pack(start, 0, 0, 7, 0, 0, 0, 0))
        for i in range(40):
            result = prog.run(template.frame)
            assert result.action == XdpAction.TX
            stream, seq, ts = _stamp_fields(result.data, template)
            assert (stream, seq) == (7, (start + i) & 0xFFFFFFFF)
            want = GenSpec([template], varies, stream=7, seed=1234).build(start + i, 1, seq, ts)[0]
            assert result.data.hex() == want.hex()
            assert _checksums_ok(result.data)
        counters = [_CPU.unpack(raw) for raw in prog.maps["cpu_state"].lookup(0)]
        assert sum(c[1] for c in counters) == 40
        assert sum(c[2] for c in counters) == 0


def test_nothing_is_read_from_the_page() -> None:
    """Live-frame pages come back holding the last frame (or whatever the receiver wrote): the
    program must produce the same frame from a page full of garbage as from the template."""
    expr, size, specs = CASES["udp4"]
    template = packets.from_scapy(expr, size)
    varies = [packets.resolve(packets.parse_vary(s), template) for s in specs]
    with XdpProgram.load(program_path()) as prog:
        prog.maps["config"].update(0, pack_config(template, varies))
        for page in (template.frame, os.urandom(size), b"\xff" * size):
            prog.maps["cpu_state"].update(0, _CPU.pack(99, 0, 0, 1, 0, 0, 0, 0))
            out = prog.run(page).data
            ts = _stamp_fields(out, template)[2]
            assert out == GenSpec([template], varies, stream=1).build(99, 1, 99, ts)[0]


def test_wrong_length_input_is_refused_and_counted() -> None:
    template = packets.from_scapy(UDP4, 64)
    with XdpProgram.load(program_path()) as prog:
        prog.maps["config"].update(0, pack_config(template, []))
        prog.maps["cpu_state"].update(0, _CPU.pack(0, 0, 0, 0, 0, 0, 0, 0))
        assert prog.run(template.frame + b"\0" * 8).action == XdpAction.DROP
        counters = [_CPU.unpack(raw) for raw in prog.maps["cpu_state"].lookup(0)]
        assert sum(c[2] for c in counters) == 1 and sum(c[1] for c in counters) == 0


def test_config_refuses_what_the_program_cannot_do() -> None:
    template = packets.from_scapy(UDP4, 64)
    with pytest.raises(ConfigError, match="size is not available with the live engine"):
        pack_config(template, [packets.resolve(packets.parse_vary("size=64-128"), template)])
    with pytest.raises(ConfigError, match="has no TCP header"):
        pack_config(template, [packets.parse_vary("tcp.sport=1-2")])


def test_one_clock_reading_stamps_a_batch_and_each_call_reads_afresh() -> None:
    template = packets.from_scapy(UDP4, 64)
    with XdpProgram.load(program_path()) as prog:
        prog.maps["config"].update(0, pack_config(template, [], ts_every=2))
        prog.maps["cpu_state"].update(0, _CPU.pack(0, 0, 0, 0, 0, 0, 0, 0))
        stamps = []
        for call in (0, 0, 0, 1):
            for cpu in range(possible_cpus()):  # whichever CPU runs the program
                prog.maps["call_id"].update(cpu, call)
            stamps.append(_stamp_fields(prog.run(template.frame).data, template)[2])
        assert stamps[0] == stamps[1]  # two frames per reading
        assert stamps[2] != stamps[1]  # the third needs a new one
        assert stamps[3] != stamps[2]  # a new call: a new reading although one frame is left
