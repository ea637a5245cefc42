"""Kernel-socket UDP traffic between two endpoints, for tests of the foundation layer."""

from __future__ import annotations

import socket
import time

from xdptest.netns import Endpoint

SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module lacks the name


def open_receiver(dst: Endpoint) -> socket.socket:
    sock = dst.udp_socket()
    # FORCE: past net.core.rmem_max, which (at its default) holds a few dozen of the page-sized
    # buffers that native XDP on veth hands to the stack on some kernels (6.1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    sock.settimeout(0.05)
    return sock


def send(src: Endpoint, dst: Endpoint, port: int, count: int, payload: bytes = b"x" * 22) -> None:
    assert dst.ipv4 is not None
    with src.udp_socket() as tx:
        for i in range(count):
            tx.sendto(i.to_bytes(4, "big") + payload, (dst.ipv4, port))


def drain(sock: socket.socket, expected: int, timeout: float = 1.0) -> list[bytes]:
    """Receive until ``expected`` datagrams arrived or ``timeout`` passed without progress."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        try:
            got.append(sock.recv(2048))
            deadline = time.monotonic() + timeout
        except TimeoutError:
            continue
    return got
