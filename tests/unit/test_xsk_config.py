"""Configuration checks of the AF_XDP face that need no kernel objects (no root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from xdptest.errors import ConfigError, RingSizeError, XdpTestError
from xdptest.xsk import RingState, Umem, XskLoop, XskSocket


@dataclass
class FakeEndpoint:
    """Just enough of an Endpoint for the checks that run before any socket exists."""

    queues: int = 2
    ifname: str = "xtfake"

    def __str__(self) -> str:
        return self.ifname


def _sock(**kwargs: Any) -> None:
    XskSocket(FakeEndpoint(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["rx_size", "tx_size", "fill_size", "comp_size"])
@pytest.mark.parametrize("size", [3, 1000, 2047, -1, 1 << 21])
def test_ring_size_not_a_power_of_two(name: str, size: int) -> None:
    with pytest.raises(RingSizeError, match=f"{name}={size}: ring sizes must be powers of two"):
        _sock(**{name: size})


def test_ring_size_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        _sock(rx_size=100)
    with pytest.raises(XdpTestError):
        _sock(rx_size=100)


def test_fill_and_comp_cannot_be_zero_but_rx_or_tx_can() -> None:
    with pytest.raises(RingSizeError):
        _sock(fill_size=0)
    with pytest.raises(RingSizeError, match="both 0"):
        _sock(rx_size=0, tx_size=0)


def test_queue_beyond_the_device() -> None:
    with pytest.raises(ConfigError, match=r"queue 2 does not exist on xtfake: it has 2 queue\(s\)"):
        _sock(queue=2)
    with pytest.raises(ConfigError):
        _sock(queue=-1)


def test_bad_mode_and_attach_mode() -> None:
    with pytest.raises(ConfigError, match="mode 'fast'"):
        _sock(mode="fast")
    with pytest.raises(ConfigError, match="attach_mode 'offload'"):
        _sock(attach_mode="offload")
    with pytest.raises(ConfigError, match="busy_poll"):
        _sock(busy_poll=-5)


@pytest.mark.parametrize("frame_size", [1024, 3000, 8192, 4095])
def test_aligned_frame_size_must_be_2k_or_4k(frame_size: int) -> None:
    with pytest.raises(ConfigError, match="aligned UMEMs take 2048 or 4096; use unaligned mode"):
        Umem(frame_size=frame_size, frames=16)


@pytest.mark.parametrize("frame_size", [1024, 2047, 4097])
def test_unaligned_frame_size_range(frame_size: int) -> None:
    with pytest.raises(ConfigError, match="unaligned UMEMs take 2048 to 4096"):
        Umem(frame_size=frame_size, frames=16, unaligned=True)


@pytest.mark.parametrize(("frame_size", "headroom"), [(2048, 1345), (4096, 3393), (2048, -1)])
def test_headroom_too_large(frame_size: int, headroom: int) -> None:
    with pytest.raises(ConfigError, match=r"too large.*use a smaller headroom"):
        Umem(frame_size=frame_size, frames=16, headroom=headroom)


def test_frames_count() -> None:
    with pytest.raises(ConfigError, match="frames must be"):
        Umem(frames=0)


def test_umem_memory_without_a_socket() -> None:
    with Umem(frame_size=2048, frames=8, headroom=64) as umem:
        assert umem.size == 2048 * 8
        assert umem.free_frames == 8
        assert umem.rx_offset == 256 + 64
        umem.write(100, b"hello")
        assert umem.read(100, 5) == b"hello"
        assert umem.read(0, 4) == b"\0\0\0\0"
        umem.write(umem.size - 3, b"end")
        with pytest.raises(ConfigError, match="outside the UMEM"):
            umem.write(umem.size - 2, b"end")
        with pytest.raises(ConfigError, match="outside the UMEM"):
            umem.read(umem.size, 1)
    assert umem.closed


def test_unaligned_odd_size_umem() -> None:
    with Umem(frame_size=4001, frames=3, unaligned=True) as umem:
        assert umem.size == 12003
        umem.write(12000, b"abc")
        assert umem.read(12000, 3) == b"abc"


def test_loop_config() -> None:
    with pytest.raises(ConfigError, match="batch must be from 1 to 256"):
        XskLoop([b"x" * 64], batch=0)
    loop = XskLoop([b"a" * 60, b"b" * 64], batch=16, count=10, duration=0.5)
    assert loop.stats()["frames"] == 0
    assert loop.templates == [b"a" * 60, b"b" * 64]
    assert (loop.count, loop.frames, loop.done) == (10, 0, False)
    assert loop.copied_frames() == []


def test_ring_state() -> None:
    state = RingState(producer=5, consumer=0xFFFFFFFE, cached_prod=5, cached_cons=0, size=8,
                      flags=1)
    assert state.entries == 7  # wraps like the kernel's u32 indices
    assert state.need_wakeup and state.present
    assert not RingState(0, 0, 0, 0, 0, 0).present
