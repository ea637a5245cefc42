"""The xdptest pytest plugin (entry point ``pytest11: xdptest``).

Inert until used: importing it imports neither pyroute2 nor scapy, touches no netlink socket and
compiles nothing. Each fixture is a factory: call it as often as the test needs; everything it
created is removed at teardown, also when the test fails or is interrupted.

Fixtures (all function scope):

``xdp_attach_mode`` -> str
    Override point: the mode ``xdp_program(...).attach(endpoint)`` uses when none is given
    (default ``"native"``). Override it in a conftest, or parametrise it.
``xdp_netns(name=None)`` -> :class:`xdptest.Netns`
    A fresh namespace with ``lo`` up.
``veth_pair(queues=1, mtu=1500, ipv4=True, ipv6=False, **options)`` -> :class:`xdptest.VethPair`
    Two namespaces joined by a veth pair (see ``VethPair`` for ``options``).
``xdp_program(path_or_builtin, program=None)`` -> :class:`xdptest.XdpProgram`
    A loaded program; attachments made with it are detached at teardown.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram
    from xdptest.netns import Netns, VethPair


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kernel: needs root and a kernel with XDP; creates real namespaces and programs"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"xdptest: kernel {platform.release()}"]
    try:
        from xdptest._libbpf import libbpf_version

        lines.append(f"xdptest: libbpf {libbpf_version()}, euid {os.geteuid()}")
    except Exception as exc:  # the header must never break a session
        lines.append(f"xdptest: native part unavailable ({exc})")
    return lines


class _Cleanup:
    """Runs every teardown step even when one fails; re-raises the first failure."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def push(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def run(self) -> None:
        first: BaseException | None = None
        while self._steps:
            step = self._steps.pop()
            try:
                step()
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first


@pytest.fixture
def xdp_attach_mode() -> str:
    """Default attach mode for programs from ``xdp_program`` (override point)."""
    return "native"


@pytest.fixture
def xdp_netns() -> Iterator[Callable[..., Netns]]:
    """Factory: ``xdp_netns(name=None)`` -> a fresh ``Netns`` with ``lo`` up."""
    from xdptest.netns import Netns

    cleanup = _Cleanup()

    def make(name: str | None = None) -> Netns:
        ns = Netns(name)
        cleanup.push(ns.close)
        return ns

    yield make
    cleanup.run()


@pytest.fixture
def veth_pair() -> Iterator[Callable[..., VethPair]]:
    """Factory: ``veth_pair(queues=1, mtu=1500, ipv4=True, ipv6=False, **options)`` -> ``VethPair``."""
    from xdptest.netns import VethPair

    cleanup = _Cleanup()

    def make(queues: int = 1, mtu: int = 1500, ipv4: Any = True, ipv6: Any = False,
             **options: Any) -> VethPair:
        pair = VethPair(queues=queues, mtu=mtu, ipv4=ipv4, ipv6=ipv6, **options)
        cleanup.push(pair.close)
        return pair

    yield make
    cleanup.run()


@pytest.fixture
def xdp_program(xdp_attach_mode: str) -> Iterator[Callable[..., XdpProgram]]:
    """Factory: ``xdp_program(path_or_builtin, program=None)`` -> a loaded ``XdpProgram``.

    ``attach(target)`` without ``mode`` uses the ``xdp_attach_mode`` fixture's value.
    """
    from xdptest.bpf import XdpProgram

    cleanup = _Cleanup()

    def make(path_or_builtin: str | os.PathLike[str], program: str | None = None,
             **options: Any) -> XdpProgram:
        prog = XdpProgram.load(path_or_builtin, program, **options)
        prog.default_mode = xdp_attach_mode  # type: ignore[assignment]
        cleanup.push(prog.close)
        return prog

    yield make
    cleanup.run()
