"""``xdptest-gen``: send AF_XDP traffic, verify every frame at the receiver, report.

With no interface named it builds its own topology (two fresh namespaces joined by a veth pair,
the redirect program on the receiving end), sends, verifies, prints a summary and removes
everything. Exit status: 0 when every sent frame was verified (or loss stayed within
``--allow-loss``), 1 when verification failed or the run was interrupted, 2 for bad usage or an
environment that cannot run (one line saying why, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from xdptest import signals
from xdptest._version import __version__
from xdptest.errors import XdpTestError
from xdptest.options import DEFAULT_WINDOW

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_COUNT = 1_000_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, as the contract says
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        # Python before 3.12 gives "--count=--" the value [] instead of "--" or an error.
        for name, value in vars(parsed).items():
            if any(isinstance(v, list) for v in (value if name in ("vary", "expect") else [value])):
                self.error(f"argument --{name.replace('_', '-')}: expected one argument")
        return parsed, extras


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xdptest-gen", description=__doc__.splitlines()[0] if __doc__ else None)
    where = p.add_argument_group("where (default: a fresh namespace/veth topology)")
    where.add_argument("--iface", help="send on this existing interface")
    where.add_argument("--netns", help="namespace of --iface (default: this one)")
    where.add_argument("--queue", type=int, default=0, help="first queue of --iface (default 0)")
    where.add_argument("--rx-iface", help="verify on this existing interface (redirect program attached)")
    where.add_argument("--rx-netns", help="namespace of --rx-iface")
    what = p.add_argument_group("traffic")
    what.add_argument("--packet", metavar="SCAPY", help="template, e.g. \"Ether()/IP(dst='198.18.0.2')/UDP(dport=9)\"")
    what.add_argument("--pcap", metavar="FILE", help="replay the frames of a capture as templates")
    what.add_argument("--size", type=int, metavar="BYTES", help="frame size without FCS (default 64)")
    what.add_argument("--vary", action="append", default=[], metavar="FIELD=LO-HI[:random]",
                      help="vary a field per frame (repeatable): eth.src, eth.dst, ip.src, ip.dst, "
                           "ipv6.src, ipv6.dst, udp.sport, udp.dport, tcp.sport, tcp.dport, ip.ttl, size")
    what.add_argument("--count", type=int, help=f"frames to send (default {DEFAULT_COUNT:,} without --duration)")
    what.add_argument("--duration", type=float, metavar="SECONDS", help="send for this long")
    what.add_argument("--rate", type=float, metavar="PPS", help="frames per second (default: as fast as possible)")
    what.add_argument("--queues", type=int, default=1, help="sockets on this many queues, one thread each")
    what.add_argument("--engine", choices=["afxdp", "live", "auto"], default="afxdp",
                      help="who sends: AF_XDP sockets (default), live frames generated in the kernel "
                           "(BPF_PROG_TEST_RUN, 5.18+), or auto (live where it can run, else AF_XDP)")
    what.add_argument("--replay-timing", action="store_true",
                      help="send the --pcap frames at the capture's own gaps (the report gives the gap error)")
    what.add_argument("--speedup", type=float, default=1.0, metavar="X",
                      help="with --replay-timing: divide the capture's gaps by X")
    what.add_argument("--loop", type=int, metavar="N", help="send the --pcap capture N times (instead of --count)")
    what.add_argument("--verbatim", action="store_true",
                      help="send the --pcap frames unchanged (no stamp) and match what arrives by content: "
                           "loss, duplicates, order and corruption, but no latency")
    what.add_argument("--window", type=int, metavar="FRAMES",
                      help=f"closed loop: stay at most this many frames ahead of the receiver "
                           f"(default {DEFAULT_WINDOW}; 0: open loop, as fast as the sender can)")
    what.add_argument("--seed", type=int, default=0, help="seed of :random variation")
    what.add_argument("--expect", action="append", default=[], metavar="LAYER.FIELD(=|+=|-=)VALUE",
                      help="the receiver must see this field rewritten (repeatable), e.g. ip.ttl-=1 or "
                           "eth.dst=02:00:00:00:00:09; checksums recomputed. Default: every frame as sent")
    what.add_argument("--verify", choices=["frame", "stamp"], default="frame",
                      help="check every byte of every frame (default), or only the stamp and the payload "
                           "after it (for rewrites no --expect rule describes)")
    what.add_argument("--keep-bad", type=int, default=8, metavar="N",
                      help="corrupted frames kept, dissected and diffed in the report (default 8)")
    xsk = p.add_argument_group("AF_XDP")
    xsk.add_argument("--frame-size", type=int, default=4096)
    xsk.add_argument("--frames", type=int, default=4096, help="UMEM frames per socket")
    xsk.add_argument("--ring-size", type=int, default=2048)
    xsk.add_argument("--rx-ring-size", type=int, help="receiver's rings (default max(ring size, 8192))")
    xsk.add_argument("--batch", type=int, default=64)
    xsk.add_argument("--headroom", type=int, default=0)
    xsk.add_argument("--unaligned", action="store_true", help="unaligned chunk mode")
    mode = xsk.add_mutually_exclusive_group()
    mode.add_argument("--copy", dest="mode", action="store_const", const="copy")
    mode.add_argument("--zerocopy", dest="mode", action="store_const", const="zerocopy")
    xsk.add_argument("--no-need-wakeup", dest="need_wakeup", action="store_false")
    xsk.add_argument("--busy-poll", type=int, metavar="USECS")
    xsk.add_argument("--busy-poll-budget", type=int, metavar="N")
    xsk.add_argument("--attach-mode", choices=["native", "generic"], default="native",
                     help="how the receiver's redirect program is attached (default native)")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout)")
    out.add_argument("--interval", type=float, metavar="SECONDS",
                     help="print a row every SECONDS: sent, received, corrupted, missing, rate, latency")
    out.add_argument("--plot", metavar="FILE",
                     help="draw the latency histogram and percentiles, and with --interval the rate and missing "
                          "frames over time: FILE.html (one self-contained page), .png or .svg "
                          "(needs matplotlib: pip install 'xdptest[plot]')")
    out.add_argument("--json-lines", metavar="FILE",
                     help="write each --interval row as it comes, then the report, as JSON lines ('-': stdout)")
    out.add_argument("--write-pcap", metavar="FILE",
                     help="write what the receivers got (pcapng: the first --pcap-frames frames of all queues, "
                          "one interface per queue, each frame with its receive time)")
    out.add_argument("--write-tx-pcap", metavar="FILE",
                     help="record every frame sent (pcapng; each frame's AF_XDP TX descriptor in its comment)")
    out.add_argument("--pcap-frames", type=int, default=100_000, help="frames --write-pcap keeps (default 100000)")
    out.add_argument("--allow-loss", type=float, default=0.0, metavar="PCT", help="loss still counted as success")
    out.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--version", action="version", version=f"xdptest {__version__}")
    return p


def _options(args: argparse.Namespace) -> Any:
    from xdptest.options import TrafficOptions

    timed = args.loop is not None or args.replay_timing  # the capture's length sets the count
    count = args.count if args.count is not None or args.duration is not None or timed else DEFAULT_COUNT
    window = DEFAULT_WINDOW if args.window is None else args.window
    return TrafficOptions(
        packet=args.packet, pcap=args.pcap, size=args.size, vary=tuple(args.vary), count=count,
        duration=args.duration, rate=args.rate, queues=args.queues, frame_size=args.frame_size,
        frames=args.frames, ring_size=args.ring_size, rx_ring_size=args.rx_ring_size, batch=args.batch,
        headroom=args.headroom, unaligned=args.unaligned, mode=args.mode or "auto",
        need_wakeup=args.need_wakeup, busy_poll=args.busy_poll, busy_poll_budget=args.busy_poll_budget,
        allow_loss=args.allow_loss, attach_mode=args.attach_mode, seed=args.seed, window=window,
        engine=args.engine, replay_timing=args.replay_timing, speedup=args.speedup, loop=args.loop,
        write_tx_pcap=args.write_tx_pcap, keep_bad=args.keep_bad, verify=args.verify,
        verbatim=args.verbatim, interval=args.interval,
    )


def _longest_asked(args: argparse.Namespace) -> int:
    """The longest frame --size, --vary size or the frames of --pcap ask for (0 where none does)."""
    from xdptest import packets

    tops = [int(v.hi) for v in map(packets.parse_vary, args.vary or ()) if v.kind == packets.KIND_SIZE]
    if args.pcap and args.size is None:
        tops.append(packets.longest_in_pcap(args.pcap))
    return max([*tops, int(args.size or 0)])


@contextlib.contextmanager
def _topology(args: argparse.Namespace, queues: int) -> Iterator[tuple[Any, Any, str]]:
    """(sender, receiver or None, description); builds and removes the default topology."""
    from xdptest.framelen import mtu_for
    from xdptest.netns import Endpoint, VethPair

    if args.iface is None:
        if args.rx_iface or args.netns or args.rx_netns:
            raise _Usage("--rx-iface, --netns and --rx-netns need --iface")
        mtu = mtu_for(_longest_asked(args))
        with VethPair(queues=queues, ipv6=True, mtu=mtu) as pair:
            yield pair.a, pair.b, (f"{pair.a} -> {pair.b} (built-in topology{f', MTU {mtu}' if mtu != 1500 else ''}"
                                   ", removed afterwards)")
        return
    src = Endpoint.existing(args.iface, args.netns)
    dst = Endpoint.existing(args.rx_iface, args.rx_netns) if args.rx_iface else None
    if args.queue:
        raise _Usage("--queue other than 0 is not supported yet: queues start at 0 (use --queues N)")
    yield src, dst, f"{src} -> {dst if dst else '(transmit only)'}"


class _Usage(Exception):
    pass


def _progress_printer(stream: TextIO) -> Any:
    def show(progress: Any) -> None:
        stream.write("\r" + progress.line() + "   ")
        stream.flush()

    return show


@contextlib.contextmanager
def _lines(path: str | None) -> Iterator[TextIO | None]:
    """The --json-lines file (stdout for '-'), open for the whole run."""
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout
    else:
        with open(path, "w") as f:
            yield f


def _write_line(out: TextIO, body: dict[str, Any]) -> None:
    out.write(json.dumps(body) + "\n")
    out.flush()  # a reader follows the file as the run goes


def _interval_printer(lines: TextIO | None) -> Any:
    from xdptest.intervals import row_line

    def show(row: dict[str, Any]) -> None:
        if lines is not sys.stdout:
            print(row_line(row), flush=True)
        if lines is not None:
            _write_line(lines, {"type": "interval", **row})

    return show


def _check_output(path: str | None, option: str) -> None:
    """Refuse, before anything is sent, an output file that cannot be written."""
    if path is None or path == "-":
        return
    existed = os.path.lexists(path)
    try:
        with open(path, "ab"):
            pass
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise _Usage(f"{option} {path}: cannot write it ({why}); give a writable file") from None
    if not existed:
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with signals.terminate_like_interrupt():
            return _main(args)
    except BrokenPipeError:  # standard output closed early (| head): the rest goes nowhere, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def _main(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        from xdptest.expect import expect_function

        expect_function(args.expect)  # a rule that cannot apply is refused before any topology
        if args.rx_iface is None and args.iface is not None and args.write_pcap:
            raise _Usage("--write-pcap needs a receiver (--rx-iface)")
        for path, option in ((args.json, "--json"), (args.write_pcap, "--write-pcap"),
                             (args.write_tx_pcap, "--write-tx-pcap"), (args.json_lines, "--json-lines")):
            _check_output(path, option)
        if args.plot:
            from xdptest.plot import check_plot_path

            check_plot_path(args.plot)
            _check_output(args.plot, "--plot")
        if args.json_lines and args.interval is None:
            raise _Usage("--json-lines writes the --interval rows: give --interval SECONDS")
        from xdptest.traffic import TrafficRun

        with _topology(args, options.queues) as (src, dst, where), _lines(args.json_lines) as lines:
            capture = args.pcap_frames if args.write_pcap else 0
            with TrafficRun(src, dst, options, capture=capture, expect=args.expect,
                            on_interval=_interval_printer(lines)) as run:
                # rows take the progress line's place
                show = (_progress_printer(sys.stderr) if sys.stderr.isatty() and not args.quiet
                        and args.interval is None else None)
                run.start()
                run.wait(show)
                if show:
                    sys.stderr.write("\n")
                report = run.report()
                if lines is not None:
                    _write_line(lines, {"type": "report", **report.to_dict()})
                if args.write_pcap:
                    run.write_capture(args.write_pcap)
    except (_Usage, XdpTestError) as exc:
        print(f"xdptest-gen: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        signals.taken(exc)
        why = str(exc) if isinstance(exc, signals.Terminated) else "interrupted"
        print(f"xdptest-gen: {why}; everything it created was removed", file=sys.stderr)
        return EXIT_FAILED

    # Files first: a reader that closes standard output early (| head) must not cost them.
    if args.plot:
        from xdptest.plot import write_plot

        write_plot(report, args.plot)
    if args.json and args.json != "-":
        with open(args.json, "w") as f:
            f.write(report.to_json() + "\n")
    if run.interrupted:
        print(f"xdptest-gen: {run.interrupted_by}; everything it created was removed", file=sys.stderr)
    verified = dst is not None
    # Transmit only: nothing was received, so loss says nothing.
    ok = not run.interrupted and not report.delivery_problems(args.allow_loss if verified else 100.0)
    verdict = "PASS" if ok else "FAIL"
    if not verified:
        verdict += " (transmit only, nothing verified)" if ok else ""
    print(f"xdptest-gen: {verdict}: {where}")
    print(report.summary())
    if report.bad_frames:
        print(report.first_bad_frame())
    if args.json == "-":
        print(report.to_json())
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
