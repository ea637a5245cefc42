"""Preferred busy polling: socket options, the per-device sysfs knobs and their restoration."""

from __future__ import annotations

import ctypes
import errno
import subprocess

import pytest

from tests.kernel.xsk_helpers import frames, transfer
from xdptest._native import xsk as _libxsk
from xdptest.bpf import attached_programs
from xdptest.errors import NotSupportedError
from xdptest.netns import Endpoint, VethPair
from xdptest.xsk import XskSocket

pytestmark = pytest.mark.kernel

_libc = ctypes.CDLL(None, use_errno=True)
SOL_SOCKET, SO_BUSY_POLL, SO_PREFER_BUSY_POLL, SO_BUSY_POLL_BUDGET = 1, 46, 69, 70


def _sockopt(fd: int, name: int) -> int:
    value, size = ctypes.c_int(0), ctypes.c_uint(4)
    assert _libc.getsockopt(fd, SOL_SOCKET, name, ctypes.byref(value), ctypes.byref(size)) == 0
    return value.value


def _sysfs(end: Endpoint, name: str) -> str:
    return end.netns.run("cat", f"/sys/class/net/{end.ifname}/{name}").stdout.strip()


@pytest.mark.requires_feature("busy_poll")
def test_busy_poll_options_and_sysfs_are_set_and_restored() -> None:
    with VethPair(queues=2) as pair:
        subprocess.run(["ip", "netns", "exec", pair.b.netns.name, "tee",
                        f"/sys/class/net/{pair.b.ifname}/gro_flush_timeout"],
                       input="5000", capture_output=True, text=True, check=True)
        assert (_sysfs(pair.b, "napi_defer_hard_irqs"), _sysfs(pair.b, "gro_flush_timeout")) == ("0", "5000")
        s0 = XskSocket(pair.b, queue=0, busy_poll=30, busy_poll_budget=16)
        try:
            fd = s0.fileno()
            assert (_sockopt(fd, SO_BUSY_POLL), _sockopt(fd, SO_PREFER_BUSY_POLL)) == (30, 1)
            assert (_sysfs(pair.b, "napi_defer_hard_irqs"), _sysfs(pair.b, "gro_flush_timeout")) == ("2", "200000")
            with XskSocket(pair.b, queue=1, busy_poll=30):
                pass
            # The second socket leaving must not restore what the first still needs.
            assert _sysfs(pair.b, "napi_defer_hard_irqs") == "2"
            with XskSocket(pair.a) as tx:
                data = frames(pair.a, pair.b, 300)
                assert transfer(tx, s0, data) == data
        finally:
            s0.close()
        assert (_sysfs(pair.b, "napi_defer_hard_irqs"), _sysfs(pair.b, "gro_flush_timeout")) == ("0", "5000")


def test_no_busy_poll_leaves_sysfs_alone() -> None:
    with VethPair() as pair, XskSocket(pair.b) as rx:
        assert rx.busy_poll is None
        assert _sockopt(rx.fileno(), SO_BUSY_POLL) == 0
        assert _sysfs(pair.b, "napi_defer_hard_irqs") == "0"


def test_kernel_without_preferred_busy_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that refuses SO_PREFER_BUSY_POLL (before 5.11: ENOPROTOOPT) gets a clear
    NotSupportedError, and the half-made socket leaves nothing behind."""
    monkeypatch.setattr(_libxsk.NativeXsk, "set_busy_poll", lambda *a, **k: -errno.ENOPROTOOPT)
    with VethPair() as pair:
        with pytest.raises(NotSupportedError, match=r"SO_PREFER_BUSY_POLL.*Linux 5\.11") as info:
            XskSocket(pair.b, busy_poll=20)
        assert info.value.feature.startswith("preferred busy polling")
        assert attached_programs(pair.b) == {}
        assert _sysfs(pair.b, "napi_defer_hard_irqs") == "0"
        with XskSocket(pair.b) as rx:  # the queue is free again
            assert rx.bind_mode == "copy"
