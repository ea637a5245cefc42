"""XDP programs around AF_XDP sockets: the shared built-in redirect program and its clean-up
(XDP_PROG_CLEANUP), user programs with their own XSKMAP (XDP_DROP_HALF), and one UMEM shared by
sockets that a program steers two streams to (SHARED_UMEM)."""

from __future__ import annotations

import json
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.kernel.xsk_helpers import bpf_ids, frames, recv_n, send_all, seq_of, transfer
from xdptest.bpf import XdpProgram, attached_programs
from xdptest.errors import ConfigError
from xdptest.netns import VethPair
from xdptest.veth_peer import keeper_of
from xdptest.xsk import Umem, XskSocket

pytestmark = pytest.mark.kernel

PROLOGUE = """
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#define PARSE(ctx, ip, udp)                                                   \\
	void *data = (void *)(long)ctx->data;                                 \\
	void *data_end = (void *)(long)ctx->data_end;                         \\
	struct ethhdr *eth = data;                                            \\
	struct iphdr *ip = (void *)(eth + 1);                                 \\
	struct udphdr *udp = (void *)(ip + 1);                                \\
	if ((void *)(udp + 1) > data_end || eth->h_proto != __constant_htons(ETH_P_IP)) \\
		return XDP_PASS;
"""

DROP_HALF = PROLOGUE + """
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

SEC("xdp")
int drop_half(struct xdp_md *ctx)
{
	PARSE(ctx, ip, udp)
	if (ip->id & __constant_htons(1))
		return XDP_DROP;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}
char LICENSE[] SEC("license") = "GPL";
"""

STEER = PROLOGUE + """
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} by_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} spare SEC(".maps");

SEC("xdp")
int steer(struct xdp_md *ctx)
{
	PARSE(ctx, ip, udp)
	return bpf_redirect_map(&by_port, udp->dest == __constant_htons(10) ? 1 : 0, XDP_DROP);
}
char LICENSE[] SEC("license") = "GPL";
"""


def _load(tmp_path: Path, name: str, source: str) -> XdpProgram:
    path = tmp_path / f"{name}.bpf.c"
    path.write_text(source)
    return XdpProgram.load(path)


@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_xdp_drop_half(tmp_path: Path, attach_mode: str) -> None:
    """A user program drops odd frames and redirects even ones into its own XSKMAP."""
    with _load(tmp_path, "drop_half", DROP_HALF) as prog, VethPair() as pair:
        prog.attach(pair.b, mode=attach_mode)  # type: ignore[arg-type]
        with XskSocket(pair.a) as tx, XskSocket(pair.b, program=prog) as rx:
            assert rx.program is prog
            data = frames(pair.a, pair.b, 400)
            send_all(tx, data[:200])
            got = recv_n(rx, 100)
            send_all(tx, data[200:])
            got += recv_n(rx, 100, quiet=0.1)
            assert [seq_of(f)[1] for f in got] == list(range(0, 400, 2))
            assert got == data[0::2]


def test_user_program_with_two_xskmaps_needs_a_name(tmp_path: Path) -> None:
    with _load(tmp_path, "steer", STEER) as prog, VethPair() as pair:
        prog.attach(pair.b)
        with pytest.raises(ConfigError, match=r"2 XSKMAPs.*xskmap="):
            XskSocket(pair.b, program=prog)
        with XdpProgram.load("count") as count, pytest.raises(ConfigError, match="not an XSKMAP"):
            XskSocket(pair.b, program=count, xskmap="counters")
        with XskSocket(pair.b, program=prog, xskmap="by_port") as rx:
            assert rx.bind_mode == "copy"


def test_shared_umem_steers_two_streams_to_two_sockets(tmp_path: Path) -> None:
    """Two sockets on one queue share one UMEM (and its fill/completion rings); the program
    steers UDP port 9 to the first and port 10 to the second."""
    with _load(tmp_path, "steer", STEER) as prog, VethPair() as pair:
        prog.attach(pair.b)
        umem = Umem(frames=2048)
        with XskSocket(pair.a) as tx, \
                XskSocket(pair.b, umem=umem, program=prog, xskmap="by_port", xskmap_key=0) as s0, \
                XskSocket(pair.b, umem=umem, program=prog, xskmap="by_port", xskmap_key=1) as s1:
            assert umem.sockets == 2
            assert s0.rings()["fill"] == s1.rings()["fill"]  # one fill ring for the queue
            a = frames(pair.a, pair.b, 300, stream=1, dport=9)
            b = frames(pair.a, pair.b, 300, stream=2, dport=10)
            mixed = [f for pair_ in zip(a, b, strict=True) for f in pair_]
            for start in range(0, 600, 100):
                send_all(tx, mixed[start:start + 100])
                got0 = recv_n(s0, 50)
                got1 = recv_n(s1, 50)
                assert got0 == a[start // 2:start // 2 + 50]
                assert got1 == b[start // 2:start // 2 + 50]
        assert umem.sockets == 0
        umem.close()


def test_shared_umem_on_two_queues() -> None:
    """One UMEM, two queues: each socket gets fill and completion rings of its own."""
    with VethPair(queues=2) as pair:
        umem = Umem(frames=2048)
        with XskSocket(pair.a, queue=0) as t0, XskSocket(pair.a, queue=1) as t1, \
                XskSocket(pair.b, queue=0, umem=umem) as r0, \
                XskSocket(pair.b, queue=1, umem=umem) as r1:
            assert r0.rings()["fill"].size and r1.rings()["fill"].size
            # Half the free frames each (the other half stays for TX): 1024, then 512.
            assert (r0.rings()["fill"].producer, r1.rings()["fill"].producer) == (1024, 512)
            d0 = frames(pair.a, pair.b, 300, stream=0)
            d1 = frames(pair.a, pair.b, 300, stream=1)
            assert transfer(t0, r0, d0) == d0
            assert transfer(t1, r1, d1) == d1
            assert r0.recv(64, timeout=0) == [] and r1.recv(64, timeout=0) == []
        umem.close()


def _queue_stats(prog: XdpProgram, queue: int) -> tuple[int, int]:
    """(redirected, passed) of the redirect program's queue_stats, summed over CPUs."""
    values = prog.maps["queue_stats"].lookup(queue) or []
    pairs = [struct.unpack("=QQ", raw) for raw in values]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def test_redirect_program_shared_and_cleaned_up() -> None:
    """XDP_PROG_CLEANUP: sockets on one interface share one attached redirect program; closing
    one removes only its XSKMAP entry; the last close detaches and frees the program."""
    with VethPair(queues=2) as pair, XskSocket(pair.a, queue=0) as t0, \
            XskSocket(pair.a, queue=1) as t1:
        s0 = XskSocket(pair.b, queue=0)
        s1 = XskSocket(pair.b, queue=1)
        prog = s0.program
        assert prog is not None and s1.program is prog
        assert attached_programs(pair.b) == {"native": prog.id}
        assert prog.id in bpf_ids("prog")
        d0 = frames(pair.a, pair.b, 20)
        assert transfer(t0, s0, d0) == d0
        s0.close()
        assert attached_programs(pair.b) == {"native": prog.id}
        send_all(t0, d0)  # queue 0 has no socket now: the program passes them to the stack
        deadline = time.monotonic() + 2
        while _queue_stats(prog, 0) != (20, 20) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _queue_stats(prog, 0) == (20, 20)
        d1 = frames(pair.a, pair.b, 20, stream=1)
        assert transfer(t1, s1, d1) == d1
        assert _queue_stats(prog, 1) == (20, 0)
        s1.close()
        # the kit's redirect programs ask for no XDP_TX keeper on the other end (xdptest.veth_peer)
        assert attached_programs(pair.b) == {} and keeper_of(pair.b) is None
        assert prog.closed
        assert prog.id not in bpf_ids("prog")


def test_attach_mode_conflict() -> None:
    with VethPair(queues=2) as pair, XskSocket(pair.b, queue=0, attach_mode="generic") as s0:
        assert attached_programs(pair.b) == {"generic": s0.program.id}  # type: ignore[union-attr]
        with pytest.raises(ConfigError, match="generic mode"):
            XskSocket(pair.b, queue=1, attach_mode="native")
        with XskSocket(pair.b, queue=1, attach_mode="generic") as s1:
            assert s1.program is s0.program


def _tx_packets(endpoint) -> int:  # type: ignore[no-untyped-def]
    out = subprocess.run(["ip", "-n", endpoint.netns.name, "-s", "-j", "link", "show", endpoint.ifname],
                         capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


def test_a_receiving_socket_behind_an_unattached_program_is_refused(tmp_path: Path) -> None:
    """Loaded but attached nowhere, a program would let the socket (and a traffic run) receive
    nothing at all, reported as 100 % loss with no hint: refuse it before anything is sent."""
    from xdptest.traffic import run_traffic

    with _load(tmp_path, "steer", STEER) as prog, VethPair() as pair:
        with pytest.raises(ConfigError, match=r"not attached to .*attach it first \(program.attach"):
            XskSocket(pair.b, program=prog, xskmap="by_port")
        sent_before = _tx_packets(pair.a)
        with pytest.raises(ConfigError, match="not attached"):
            run_traffic(pair.a, pair.b, count=2000, rx_program=prog)
        assert _tx_packets(pair.a) == sent_before  # refused before a single frame went
        with XskSocket(pair.b, program=prog, xskmap="by_port", rx_size=0):
            pass  # a TX-only socket receives nothing anyway: no check
        prog.attach(pair.b)
        with XskSocket(pair.b, program=prog, xskmap="by_port") as rx:
            assert rx.program is prog
