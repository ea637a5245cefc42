"""XDP metadata reaches the AF_XDP socket: the kernel's XDP_METADATA_COPY and
XDP_METADATA_COPY_MULTI_BUFF cases. A program puts 4 bytes taken from each frame's IP header in
front of it as metadata; ``recv_with_meta`` returns them with the frames, in SKB and DRV mode."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ROOT
from tests.kernel.xsk_helpers import frames, send_all
from xdptest.bpf import XdpProgram
from xdptest.errors import ConfigError
from xdptest.features import probe
from xdptest.netns import VethPair
from xdptest.xsk import XskSocket

pytestmark = [pytest.mark.kernel, pytest.mark.requires_feature("xdp_frags")]

PROGRAM = ROOT / "fixtures" / "bpf" / "meta_ip_id.bpf.c"
COUNT = 100


@pytest.mark.parametrize("size", [64, 9000], ids=["one-buffer", "multi-buffer"])
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_metadata_comes_with_every_frame(size: int, mode: str) -> None:
    status = probe("multi_buffer")
    if size > 4096 and not status.present:
        pytest.skip(f"multi_buffer (Linux {status.since}+) not available: {status.reason}")
    with VethPair(mtu=9000) as pair, XdpProgram.load(PROGRAM) as prog:
        prog.attach(pair.b, mode=mode)
        with XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b, program=prog) as rx:
            sent = frames(pair.a, pair.b, COUNT, size)
            send_all(tx, sent)
            got: list[tuple[bytes, bytes]] = []
            deadline = time.monotonic() + 3
            while len(got) < COUNT and time.monotonic() < deadline:
                got += rx.recv_with_meta(4, timeout=0.2)
    assert [frame for _, frame in got] == sent
    assert [meta for meta, _ in got] == [bytes(~b & 0xFF for b in frame[18:22]) for frame in sent]


def test_metadata_length_is_checked() -> None:
    with VethPair() as pair, XskSocket(pair.b) as rx:
        for bad in (0, 33, -4):
            with pytest.raises(ConfigError, match="meta_len must be from 1 to 32"):
                rx.recv_with_meta(bad, timeout=0)
