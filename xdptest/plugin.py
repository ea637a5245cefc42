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
``xdp_program(path_or_builtin, program=None, include_dirs=(), cflags=())`` -> :class:`xdptest.XdpProgram`
    A loaded program; attachments made with it are detached at teardown.
``netdevsim(ports=1, queues=1)`` -> :class:`xdptest.netdevsim.Netdevsim`
    A netdevsim device; skips with the reason where the kernel has no netdevsim.
``xsk(endpoint, queue=0, **options)`` -> :class:`xdptest.XskSocket`
    A bound AF_XDP socket (its own Umem unless ``umem=``); override points ``umem_options``,
    ``xsk_options``.
``traffic(src, dst, count=..., **options)`` -> :class:`xdptest.TrafficReport`
    Stamped AF_XDP traffic verified frame by frame; override point ``traffic_options``.
``xdp_run(program, packet, repeat=1)`` -> :class:`xdptest.TestRunResult`
    BPF_PROG_TEST_RUN without any topology.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

pytest.register_assert_rewrite("xdptest.assertions")

# The fixtures that make a session a user of the kit (the override points come with them).
KIT_FIXTURES = frozenset({"xdp_netns", "veth_pair", "xdp_program", "xdp_run", "netdevsim", "xsk", "traffic",
                          "xdp_pin_root"})

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram
    from xdptest.netns import Netns, VethPair


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xdptest", "xdptest: XDP and AF_XDP testing")
    group.addoption(
        "--xdptest-kernel", dest="xdptest_kernel", metavar="KERNEL", default=None,
        help="run the session inside a guest booting KERNEL: debian-5.10, debian-6.1, debian-6.12, "
             "debian-latest, or the path of a kernel image (KVM where it can boot it, emulation otherwise); "
             "several, separated by commas, run every test on every kernel (one pytest-xdist worker per guest)",
    )
    parser.addini("xdptest_kernel", "default for --xdptest-kernel", default="")
    group.addoption(
        "--xdptest-matrix-json", dest="xdptest_matrix_json", metavar="FILE", default=None,
        help="with several --xdptest-kernel kernels: write every test's outcome per kernel and one summary "
             "per kernel to FILE as JSON",
    )
    group.addoption(
        "--xdptest-keep", dest="xdptest_keep", action="store_true", default=None,
        help="keep the namespaces of a failed test for inspection and print how to enter them "
             "(the next run of the kit removes them)",
    )
    parser.addini("xdptest_keep", "default for --xdptest-keep", type="bool", default=False)
    group.addoption(
        "--xdptest-artifacts", dest="xdptest_artifacts", metavar="DIR", default=None,
        help="for each failed test, write pcaps of what kit sockets sent and received, "
             "XDP_STATISTICS, ring snapshots and map dumps under DIR/<test>/",
    )
    parser.addini("xdptest_artifacts", "default for --xdptest-artifacts", default="")
    group.addoption(
        "--xdptest-report", dest="xdptest_report", metavar="FILE", default=None,
        help="write every traffic run of the session (test id, kernel, whole report) to FILE as one JSON document",
    )
    parser.addini("xdptest_report", "default for --xdptest-report", default="")


def _kernel_option(config: pytest.Config) -> str | None:
    value = config.getoption("xdptest_kernel") or config.getini("xdptest_kernel")
    return str(value) if value else None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """With --xdptest-kernel, the whole session runs in a guest and its exit status is ours; with
    several kernels, each guest is an xdist worker that runs every test."""
    kernel = _kernel_option(config)
    if not kernel or os.environ.get("XDPTEST_IN_GUEST"):
        return None
    if "," in kernel:
        from xdptest.plugin_matrix import kernel_names, start_matrix

        start_matrix(config, kernel_names(kernel), config.getoption("xdptest_matrix_json"))
        from xdptest import signals

        # SIGTERM/SIGHUP stop the run as Ctrl-C does: xdist then takes its guest workers down
        config.stash[_signals_key] = signals.install()
        return None
    from xdptest.plugin_guest import run_pytest_in_guest

    return run_pytest_in_guest(config, kernel)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("XDPTEST_IN_GUEST") and hasattr(config, "workerinput"):
        from xdptest.plugin_matrix import configure_worker

        configure_worker(config)
    from xdptest.plugin_report import register

    register(config)
    config.addinivalue_line(
        "markers", "kernel: needs root and a kernel with XDP; creates real namespaces and programs"
    )
    config.addinivalue_line(
        "markers",
        "requires_feature(*names): skip where a kernel feature is missing (need_wakeup, busy_poll, "
        "live_frames, test_run_context, xdp_frags, multi_buffer, netdevsim, zerocopy, hugepages, af_xdp), "
        "but fail where the kernel is new enough that it must be there",
    )


def _keep(config: pytest.Config) -> bool:
    value = config.getoption("xdptest_keep")
    return bool(config.getini("xdptest_keep") if value is None else value)


def _kit_options_given(config: pytest.Config) -> bool:
    """True when the command line or the ini file names an ``--xdptest-*`` option."""
    return any(bool(config.getoption(dest) or config.getini(dest))
               for dest in ("xdptest_kernel", "xdptest_keep", "xdptest_artifacts", "xdptest_report"))


def _uses_the_kit(items: list[pytest.Item]) -> bool:
    """True when a collected test asks for a fixture or marker of the kit."""
    return any(not KIT_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
               or item.get_closest_marker("requires_feature") is not None for item in items)


def _environment_lines(config: pytest.Config) -> list[str]:
    """libbpf and probed features (with -v, how each is probed): loads BPF programs and may run
    modprobe, so only for sessions that use the kit."""
    try:
        from xdptest import features
        from xdptest._native.bpf import libbpf_version

        lines = [f"xdptest: libbpf {libbpf_version()}; features: {features.summary()}"]
        if config.get_verbosity() > 0:
            lines.append(f"xdptest: probed by {features.sources()}")
        return lines
    except Exception as exc:  # the header must never break a session
        return [f"xdptest: native part unavailable ({exc})"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Cheap for every session: the kernel release. The probed features follow once the session
    turns out to use the kit (an ``--xdptest-*`` option here, a fixture or marker after collection)."""
    kernel = _kernel_option(config)
    if kernel and not os.environ.get("XDPTEST_IN_GUEST"):  # the tests run in guests, not on this kernel
        return [f"xdptest: every test runs on each of: {kernel} (one guest worker per kernel)"]
    lines = [f"xdptest: kernel {platform.release()}, euid {os.geteuid()}"]
    if _kit_options_given(config):
        config.stash[_probed_key] = True
        lines += _environment_lines(config)
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session (or xdist worker) that uses the kit cleans up on SIGTERM and SIGHUP as on Ctrl-C."""
    if _uses_the_kit(session.items) and _signals_key not in session.config.stash:
        from xdptest import signals

        session.config.stash[_signals_key] = signals.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_signals_key, None)
    if previous:
        from xdptest import signals

        signals.restore(previous)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    if config.stash.get(_probed_key, False) or not _uses_the_kit(items):
        return []
    config.stash[_probed_key] = True
    return _environment_lines(config)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_feature"):
        from xdptest import features

        for name in mark.args:
            status = features.probe(name)
            if status.present:
                continue
            if status.required_by_kernel:
                pytest.fail(f"kernel {platform.release()} should have {name} (Linux {status.since}+), "
                            f"but the probe says: {status.reason}", pytrace=False)
            since = f" (Linux {status.since}+)" if status.since else ""
            pytest.skip(f"{name}{since} not available on {platform.release()}: {status.reason}")


def _artifacts_root(config: pytest.Config) -> str | None:
    value = config.getoption("xdptest_artifacts") or config.getini("xdptest_artifacts")
    return str(value) if value else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_failed_key] = report.failed
    collector = item.stash.get(_collector_key, None)
    root = _artifacts_root(item.config)
    if report.failed and root and collector is not None and report.when in ("setup", "call"):
        # Fixtures are still alive here (teardown comes later): dump while there is something to see.
        from pathlib import Path

        from xdptest.artifacts import artifact_dir

        try:
            files = collector.dump(artifact_dir(Path(root), item.nodeid))
            text = "\n".join(str(f) for f in files) or "(nothing to dump)"
        except Exception as exc:  # never turn a failure report into an internal error
            text = f"could not write artifacts: {exc}"
        report.sections.append(("xdptest artifacts", text))
    return report


_failed_key = pytest.StashKey[bool]()
_probed_key = pytest.StashKey[bool]()
_signals_key = pytest.StashKey[dict[int, Any]]()
_collector_key = pytest.StashKey[Any]()


def _collector(request: pytest.FixtureRequest) -> Any:
    """The test's artifact collector (created on first use)."""
    from xdptest.artifacts import ArtifactCollector

    node = request.node
    if _collector_key not in node.stash:
        node.stash[_collector_key] = ArtifactCollector()
    return node.stash[_collector_key]


def _test_failed(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.stash.get(_failed_key, False))


class _Cleanup:
    """Runs every teardown step even when one fails; re-raises the first failure.

    Topology steps are kept instead, with ``--xdptest-keep``, when the test failed.
    """

    def __init__(self, request: pytest.FixtureRequest | None = None, announce: bool = True) -> None:
        self._steps: list[Callable[[], None]] = []
        self._keepers: list[Callable[[], list[str]]] = []
        self._request = request
        self._announce = announce

    def push(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def keepable(self, step: Callable[[], None], keep: Callable[[], list[str]]) -> None:
        """A teardown step that ``--xdptest-keep`` replaces by ``keep`` (returns namespace names)."""
        self._steps.append(step)
        self._keepers.append(keep)

    def run(self) -> None:
        req = self._request
        if req is not None and self._keepers and _keep(req.config) and _test_failed(req):
            names = sorted({n for keep in self._keepers for n in keep()})
            self._steps.clear()
            if names and self._announce:
                lines = [f"  ip netns exec {n} bash" for n in names]
                print(f"\nxdptest: kept the topology of {req.node.nodeid} (the next run of the kit "
                      "removes it); enter it with:\n" + "\n".join(lines))
            return
        from xdptest.teardown import run_all

        steps, self._steps = self._steps[::-1], []  # undo in reverse order of creation
        run_all(steps)


@pytest.fixture
def xdp_attach_mode() -> str:
    """Default attach mode for programs from ``xdp_program`` (override point)."""
    return "native"


@pytest.fixture
def xdp_netns(request: pytest.FixtureRequest) -> Iterator[Callable[..., Netns]]:
    """Factory: ``xdp_netns(name=None)`` -> a fresh ``Netns`` with ``lo`` up."""
    from xdptest.netns import Netns

    cleanup = _Cleanup(request)

    def make(name: str | None = None) -> Netns:
        ns = Netns(name)
        cleanup.keepable(ns.close, lambda: [ns.name] if ns.keep() else [])
        return ns

    yield make
    cleanup.run()


@pytest.fixture
def veth_pair(request: pytest.FixtureRequest) -> Iterator[Callable[..., VethPair]]:
    """Factory: ``veth_pair(queues=1, mtu=1500, ipv4=True, ipv6=False, **options)`` -> ``VethPair``."""
    from xdptest.netns import VethPair

    cleanup = _Cleanup(request)

    def make(queues: int = 1, mtu: int = 1500, ipv4: Any = True, ipv6: Any = False,
             **options: Any) -> VethPair:
        pair = VethPair(queues=queues, mtu=mtu, ipv4=ipv4, ipv6=ipv6, **options)
        cleanup.keepable(pair.close, pair.keep)
        _collector(request).endpoints.extend(pair.endpoints)
        return pair

    yield make
    cleanup.run()


@pytest.fixture
def xdp_pin_root() -> Iterator[Any]:
    """The test's private bpffs (a ``PinRoot``) for ``LIBBPF_PIN_BY_NAME`` maps of the programs it
    loads: they share their pins, no other test sees them, and all go at teardown. Mounted only
    if a program needs it."""
    from xdptest.pins import PinRoot

    root = PinRoot()
    yield root
    root.close()


@pytest.fixture
def xdp_program(request: pytest.FixtureRequest, xdp_attach_mode: str,
                xdp_pin_root: Any) -> Iterator[Callable[..., XdpProgram]]:
    """Factory: ``xdp_program(path_or_builtin, program=None, **options)`` -> a loaded ``XdpProgram``
    (options: ``XdpProgram.load``'s, e.g. ``include_dirs``, ``cflags``).

    ``attach(target)`` without ``mode`` uses the ``xdp_attach_mode`` fixture's value.
    """
    from xdptest.bpf import XdpProgram

    cleanup = _Cleanup(request, announce=False)  # the topology fixtures say what was kept

    def make(path_or_builtin: str | os.PathLike[str], program: str | None = None,
             **options: Any) -> XdpProgram:
        options.setdefault("pin_root", xdp_pin_root)
        prog: XdpProgram = XdpProgram.load(path_or_builtin, program, **options)
        prog.default_mode = xdp_attach_mode  # type: ignore[assignment]
        cleanup.keepable(prog.close, prog.keep)
        _collector(request).programs.append(prog)
        return prog

    yield make
    cleanup.run()


@pytest.fixture
def xdp_run(xdp_pin_root: Any) -> Iterator[Callable[..., Any]]:
    """``xdp_run(program, packet, repeat=1, **ctx)`` -> a ``TestRunResult`` (BPF_PROG_TEST_RUN).

    ``program`` is a loaded ``XdpProgram``, or a built-in name / object / ``.c`` path that is
    loaded once per test and closed at teardown. ``packet`` is bytes or a scapy packet. No
    namespace or interface is involved, so this is the fastest way to test a verdict.
    """
    from xdptest.bpf import XdpProgram

    loaded: dict[str, XdpProgram] = {}

    def run(program: Any, packet: Any, repeat: int = 1, **ctx: Any) -> Any:
        if not isinstance(program, XdpProgram):
            key = os.fspath(program)
            if key not in loaded:
                loaded[key] = XdpProgram.load(key, pin_root=xdp_pin_root)
            program = loaded[key]
        return program.run(packet, repeat=repeat, **ctx)

    yield run
    for prog in loaded.values():
        prog.close()


@pytest.fixture
def netdevsim() -> Iterator[Callable[..., Any]]:
    """Factory: ``netdevsim(ports=1, queues=1, **options)`` -> a ``Netdevsim`` device.

    Skips the test, with the reason, where the running kernel has no netdevsim.
    """
    from xdptest.errors import NotSupportedError
    from xdptest.netdevsim import Netdevsim, netdevsim_unavailable_reason

    reason = netdevsim_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cleanup = _Cleanup()

    def make(ports: int = 1, queues: int = 1, **options: Any) -> Any:
        try:
            dev = Netdevsim(ports=ports, queues=queues, **options)
        except NotSupportedError as exc:
            pytest.skip(str(exc))
        cleanup.push(dev.close)
        return dev

    yield make
    cleanup.run()


UMEM_OPTIONS = ("frame_size", "frames", "headroom", "unaligned", "hugepages")


@pytest.fixture
def umem_options() -> dict[str, Any]:
    """Override point: default ``Umem`` options for ``xsk`` (e.g. ``{"frame_size": 2048}``)."""
    return {}


@pytest.fixture
def xsk_options() -> dict[str, Any]:
    """Override point: default ``XskSocket`` options for ``xsk`` (e.g. ``{"need_wakeup": False}``)."""
    return {}


@pytest.fixture
def xsk(request: pytest.FixtureRequest, umem_options: dict[str, Any], xsk_options: dict[str, Any],
        xdp_attach_mode: str) -> Iterator[Callable[..., Any]]:
    """Factory: ``xsk(endpoint, queue=0, **options)`` -> a bound ``XskSocket``.

    UMEM options (``frame_size``, ``frames``, ``headroom``, ``unaligned``, ``hugepages``) build the
    socket's own ``Umem`` unless ``umem=`` is given; the rest go to ``XskSocket`` (rings,
    ``mode``, ``need_wakeup``, ``busy_poll``, ``program``...). Without ``program=`` the built-in
    redirect program is attached in the ``xdp_attach_mode`` mode. Frames sent and received
    through ``send``/``recv`` are kept (10,000 at most) for ``--xdptest-artifacts``.
    """
    from xdptest.xsk import Umem, XskSocket

    cleanup = _Cleanup(request, announce=False)
    collector = _collector(request)

    class _RecordingSocket(XskSocket):
        def send(self, frames: Any) -> int:
            frames = [bytes(f) for f in frames]
            n = super().send(frames)
            collector.record_socket_frames(self, frames[:n], [])
            return n

        def recv(self, max_frames: int = 64, timeout: float | None = 1.0) -> list[bytes]:
            got = super().recv(max_frames, timeout)
            collector.record_socket_frames(self, [], got)
            return got

    def make(endpoint: Any, queue: int = 0, **options: Any) -> XskSocket:
        merged = {**umem_options, **xsk_options, **options}
        umem = merged.pop("umem", None)
        umem_kwargs = {k: merged.pop(k) for k in UMEM_OPTIONS if k in merged}
        if umem is None:
            umem = Umem(**umem_kwargs)
            cleanup.push(umem.close)
        elif umem_kwargs:
            from xdptest.errors import ConfigError

            raise ConfigError(f"umem= was given, so {', '.join(umem_kwargs)} cannot apply")
        merged.setdefault("attach_mode", xdp_attach_mode)
        sock = _RecordingSocket(endpoint, queue, umem=umem, **merged)
        cleanup.push(sock.close)
        collector.sockets.append(sock)
        return sock

    yield make
    cleanup.run()


@pytest.fixture
def traffic_options() -> dict[str, Any]:
    """Override point: defaults for ``traffic`` (``{}``: ``TrafficOptions``' own, closed loop with
    a window of 4096 frames, so a receiver thread set aside by a busy machine cannot turn into
    reported loss; ``{"window": 0}`` runs open loop)."""
    return {}


@pytest.fixture
def traffic(request: pytest.FixtureRequest, traffic_options: dict[str, Any],
            xdp_attach_mode: str) -> Callable[..., Any]:
    """``traffic(src, dst, count=..., **options)`` -> ``TrafficReport``.

    Sends stamped frames from ``src`` through AF_XDP and verifies each at ``dst`` (behind the
    built-in redirect program, or ``rx_program=`` with an XSKMAP of your own). Options are
    ``xdptest-gen``'s: ``packet``, ``pcap``, ``size``, ``vary``, ``count``, ``duration``, ``rate``,
    ``queues``, ``frame_size``, ``ring_size``, ``batch``, ``mode``, ``need_wakeup``, ``busy_poll``,
    ``window``... Every frame is checked byte for byte against the frame sent, or ``expect(frame)``
    for a program that rewrites on purpose. Everything it opens is closed before it returns.
    """
    from xdptest.options import TrafficOptions
    from xdptest.plugin_report import record_traffic
    from xdptest.traffic import TrafficRun

    collector = _collector(request)
    keep_frames = 2000 if _artifacts_root(request.config) else 0

    def run(src: Any, dst: Any, rx_program: Any = None, expect: Any = None, **options: Any) -> Any:
        merged = {"attach_mode": xdp_attach_mode, **traffic_options, **options}
        opts = TrafficOptions.from_kwargs(**merged)
        with TrafficRun(src, dst, opts, rx_program=rx_program, capture=keep_frames, expect=expect) as tr:
            tr.start()
            tr.wait()
            report = tr.report()
            if keep_frames:
                collector.add_traffic(report, tr.sent_frames(keep_frames), tr.captured())
            else:
                collector.add_traffic(report, [], [])
        record_traffic(request, report)
        return report

    return run
