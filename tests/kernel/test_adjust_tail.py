"""The kernel's XDP_ADJUST_TAIL_SHRINK, _SHRINK_MULTI_BUFF, _GROW and _GROW_MULTI_BUFF cases: a
program moves the end of every frame (bpf_xdp_adjust_tail) before it reaches the AF_XDP socket,
which receives each frame at its new length, its bytes otherwise as sent."""

from __future__ import annotations

import errno

import pytest

from tests.conftest import ROOT
from tests.kernel.xsk_helpers import frames, recv_n, send_all
from xdptest.bpf import XdpProgram
from xdptest.features import probe
from xdptest.netns import VethPair
from xdptest.xsk import XskSocket

pytestmark = [pytest.mark.kernel, pytest.mark.requires_feature("xdp_frags")]

PROGRAM = ROOT / "fixtures" / "bpf" / "adjust_tail.bpf.c"
COUNT = 50


# Shrinking a multi-buffer frame by more than its last buffer holds (bpf_xdp_adjust_tail frees
# that buffer) corrupts the kernel's page state on veth in both modes: "BUG: Bad page state" on
# 6.12 and 7.2, and on 6.18 a list corruption and an oops that left the sending process stuck in
# the kernel, as measured. The kit does not run it; a NIC driver's own frames would.
FREES_A_BUFFER = ("bpf_xdp_adjust_tail freeing a buffer of a multi-buffer frame corrupts the kernel's page "
                  "state on veth (BUG: Bad page state on 6.12 and 7.2, an oops on 6.18); not run")


@pytest.mark.parametrize(("size", "delta"), [
    (1000, -4), (1000, 4), (9000, -4), (9000, -(4096 + 4)), (9000, 4),
], ids=["shrink", "grow", "shrink-multi-buffer", "shrink-multi-buffer-freeing-a-buffer", "grow-multi-buffer"])
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_adjust_tail(size: int, delta: int, mode: str) -> None:
    if delta < -1024:
        pytest.skip(FREES_A_BUFFER)
    status = probe("multi_buffer")
    if size > 4096 and not status.present:  # a jumbo frame reaches the socket in several buffers
        pytest.skip(f"multi_buffer (Linux {status.since}+) not available: {status.reason}")
    with VethPair(mtu=9000) as pair, XdpProgram.open(PROGRAM) as prog:
        prog.variables["delta"] = delta
        prog.load()
        prog.attach(pair.b, mode=mode)
        with XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b, program=prog) as rx:
            sent = frames(pair.a, pair.b, COUNT, size)
            send_all(tx, sent)
            got = recv_n(rx, COUNT, timeout=3.0, quiet=0.05)
        refused, error = prog.variables["refused"], prog.variables["refused_with"]
    if refused and error == -errno.EOPNOTSUPP and size > 4096 and delta > 0:
        # As the kernel's own case does: veth gives its frames no fragment size to grow into.
        pytest.skip(f"bpf_xdp_adjust_tail cannot grow a multi-buffer frame on veth in {mode} mode on this "
                    "kernel (EOPNOTSUPP: the device declares no fragment size); a NIC driver that does runs it")
    assert (refused, error) == (0, 0)
    expected = [f[:delta] if delta < 0 else f + bytes(delta) for f in sent]
    assert [len(f) for f in got] == [len(f) for f in expected]
    assert got == expected
