"""Feature probes try what they claim, and agree with the kernel release that brought each feature."""

from __future__ import annotations

import pytest

from xdptest import features
from xdptest.features import kernel_version


@pytest.mark.parametrize(("name", "since", "missing"), [
    ("multi_buffer", (6, 6), "bind() refuses the XDP_USE_SG flag"),  # AF_XDP multi-buffer
    ("xdp_frags", (5, 18), "an xdp.frags program does not load"),  # multi-buffer XDP programs
    ("live_frames", (5, 18), "BPF_PROG_RUN ignores the flags"),
    ("busy_poll", (5, 11), "SO_PREFER_BUSY_POLL refused"),
])
def test_probe_agrees_with_the_release(name: str, since: tuple[int, int], missing: str) -> None:
    status = features.probe(name)
    assert status.since == ".".join(map(str, since)) and status.source
    if kernel_version() >= since:
        assert status.present, status.reason
    else:
        assert not status.present and status.reason.startswith(missing), status.reason


def test_the_header_says_how_each_feature_was_probed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one(veth_pair):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "--co")
    result.stdout.fnmatch_lines(["xdptest: libbpf v*; features: *xdp_frags=* multi_buffer=*",
                                 "xdptest: probed by af_xdp: socket(AF_XDP); *multi_buffer: bind() with XDP_USE_SG*"])


NETDEV_FAMILY_SINCE = (6, 3)


def test_a_veth_declares_its_xdp_features(veth_pair) -> None:
    from xdptest.netdev import xdp_features

    pair = veth_pair()
    declared = xdp_features(pair.a)
    if kernel_version() < NETDEV_FAMILY_SINCE:
        assert declared is None  # no netdev netlink family yet
        return
    assert declared is not None and declared.ifindex == pair.a.ifindex
    assert {"basic", "redirect", "rx_sg"} <= declared.actions and not declared.zerocopy


def test_zero_copy_is_read_from_the_device_before_any_bind(veth_pair, xsk) -> None:
    sock = xsk(veth_pair().b)
    assert sock.bind_mode == "copy" and sock.fallback_reason is not None
    how = ("declares no zero-copy AF_XDP in its XDP features" if kernel_version() >= NETDEV_FAMILY_SINCE
           else "a zero-copy bind was refused")
    assert how in sock.fallback_reason and "(veth)" in sock.fallback_reason
