"""``xdptest-gen``: the kit's command.

This first version runs the built-in end-to-end check: two fresh namespaces joined by a veth pair,
the built-in ``count`` program attached to the receiving end, UDP datagrams sent from the other
end through the kernel's stack, every one counted by the program and received by a socket, then
everything removed. The AF_XDP traffic engine replaces the kernel sender in a later version; the
options here keep the names of the full command.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import threading
import time
from typing import Any

from xdptest import __version__
from xdptest.errors import XdpTestError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdptest-gen",
        description="Build a namespace/veth topology, send UDP traffic across it, count it with "
                    "an XDP program, verify and clean up.",
    )
    parser.add_argument("--count", type=int, default=1000, help="datagrams to send (default 1000)")
    parser.add_argument("--size", type=int, default=64, help="frame size in bytes (default 64)")
    parser.add_argument("--attach-mode", choices=["native", "generic"], default="native",
                        help="XDP attach mode on the receiver (default native)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON ('-' for stdout)")
    parser.add_argument("--version", action="version", version=f"xdptest {__version__}")
    return parser


def _recv_all(sock: socket.socket, expected: int, timeout: float) -> int:
    sock.settimeout(0.2)
    got = 0
    deadline = time.monotonic() + timeout
    while got < expected and time.monotonic() < deadline:
        try:
            sock.recv(2048)
        except TimeoutError:
            continue
        got += 1
    return got


def run_builtin(count: int, size: int, mode: str) -> dict[str, Any]:
    """The built-in topology run; returns the report."""
    from xdptest.bpf import XdpAction, XdpProgram
    from xdptest.builtin import action_counts
    from xdptest.netns import VethPair

    payload = b"\0" * max(0, size - 42)  # 14 Ethernet + 20 IPv4 + 8 UDP
    with VethPair() as pair, XdpProgram.load("count") as prog:
        prog.attach(pair.b, mode=mode)  # type: ignore[arg-type]
        assert pair.b.ipv4 is not None
        with pair.b.udp_socket() as rx, pair.a.udp_socket() as tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            port = rx.getsockname()[1]
            result: list[int] = []
            receiver = threading.Thread(target=lambda: result.append(_recv_all(rx, count, 2.0 + count / 50_000)))
            receiver.start()
            start = time.monotonic()
            sent = 0
            for _ in range(count):
                sent += tx.sendto(payload, (pair.b.ipv4, port)) >= 0
            receiver.join()
            elapsed = time.monotonic() - start
            received = result[0]
        counted = action_counts(prog)[XdpAction.PASS].packets
        topology = {"tx": str(pair.a), "rx": str(pair.b)}
    return {
        "sent": sent,
        "counted_by_xdp": counted,
        "received": received,
        "lost": sent - received,
        "duration_s": round(elapsed, 6),
        "tx_pps": round(sent / elapsed) if elapsed else 0,
        "attach_mode": mode,
        "packet_size": 42 + len(payload),
        "topology": topology,
        "kernel": platform.release(),
        "xdptest_version": __version__,
    }


def _summary(report: dict[str, Any]) -> str:
    rows = [("sent", report["sent"]), ("counted by XDP", report["counted_by_xdp"]),
            ("received", report["received"]), ("lost", report["lost"]),
            ("rate (pps)", report["tx_pps"]), ("attach mode", report["attach_mode"]),
            ("topology", f"{report['topology']['tx']} -> {report['topology']['rx']} (removed)")]
    return "\n".join(f"  {name:<16}{value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count < 1 or not 60 <= args.size <= 1500:
        print("xdptest-gen: --count must be >= 1 and --size from 60 to 1500", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = run_builtin(args.count, args.size, args.attach_mode)
    except XdpTestError as exc:
        print(f"xdptest-gen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("xdptest-gen: interrupted; topology removed", file=sys.stderr)
        return EXIT_FAILED
    ok = report["received"] == report["sent"] == report["counted_by_xdp"]
    print(f"xdptest-gen: {'PASS' if ok else 'FAIL'}")
    print(_summary(report))
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
