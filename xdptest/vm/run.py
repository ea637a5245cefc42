"""Run a command inside a guest booting a stock kernel (the pytest side: ``xdptest.plugin_guest``).

``xdptest-vm --kernel KERNEL [--timeout S] [--rw DIR] [--] COMMAND...`` and
``pytest --xdptest-kernel KERNEL ...`` boot KERNEL (``debian-6.1``, ``debian-6.12`` or the path of
a kernel image, see :mod:`xdptest.vm.kernels`) under QEMU (see :mod:`xdptest.vm.boot`) with the
host's file system visible read-only, run the command as root in the same directory with the
same virtualenv, stream its output, and exit with its status.

Exit status: the command's own; 124 when the guest did not finish within the timeout; 125 when the
guest stopped without reporting a status (kernel panic, QEMU crash), with the end of the kernel's
console printed; 130 when interrupted; 2 (``xdptest-vm``) or pytest's usage error 4 (pytest) when
the kernel or QEMU cannot be had, with a message that says what is missing.

Inside the guest ``XDPTEST_IN_GUEST=1`` is set, so ``--xdptest-kernel`` there does not boot again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from xdptest.errors import ConfigError, XdpTestError
from xdptest.signals import terminate_like_interrupt
from xdptest.vm.boot import (
    EXIT_GUEST_DIED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    HIDDEN,
    GuestRun,
    boot,
    choose_accel,
    signal_on_parent_death,
)
from xdptest.vm.hostpkgs import GUEST_PACKAGES, ensure_host_packages, missing_packages
from xdptest.vm.kernels import KernelSpec, format_kernels, list_kernels, prepare

__all__ = ["DEFAULT_TIMEOUT", "EXIT_GUEST_DIED", "EXIT_INTERRUPTED", "EXIT_TIMEOUT", "guest_env", "main",
           "run_in_guest"]

DEFAULT_TIMEOUT = 3600.0
ENV_PREFIXES = ("LC_", "PYTHON", "PYTEST_", "XDPTEST_", "HYPOTHESIS_")
ENV_NAMES = ("PATH", "HOME", "LANG", "LANGUAGE", "TERM", "TZ", "USER", "LOGNAME", "VIRTUAL_ENV", "CI",
             "NO_COLOR", "FORCE_COLOR", "PY_COLORS")
ENV_DROPPED = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST", "XDPTEST_CACHE")


def guest_env(environ: Mapping[str, str] | None = None, tty: bool | None = None) -> dict[str, str]:
    """The environment the guest command gets: the host's, minus what belongs to this machine."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items()
           if (k in ENV_NAMES or k.startswith(ENV_PREFIXES)) and k not in ENV_DROPPED}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["XDPTEST_IN_GUEST"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the host's tree is read-only in the guest
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", "/tmp/.hypothesis")
    env["COLUMNS"] = str(shutil.get_terminal_size().columns)
    if sys.stdout.isatty() if tty is None else tty:
        env.setdefault("PY_COLORS", "1")
    return env


def _hidden_in_guest(path: str) -> bool:
    return any(path == h or path.startswith(h + "/") for h in HIDDEN)


def run_in_guest(kernel: str, argv: Sequence[str], *, cwd: str | None = None, writable: Sequence[str] = (),
                 timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None,
                 refresh: bool = False, memory_mb: int = 2048, cpus: int = 2, stdio: bool = False) -> int:
    """Boot ``kernel``, run ``argv`` in it, return its exit status (or 124/125/130).

    With ``stdio`` the command's standard input and output are this process's own, as a raw byte
    stream (an execnet gateway's channel), and its other output goes to standard error.

    Raises ``XdpTestError`` (with a message naming the remedy) where the kernel or QEMU cannot be
    had.
    """
    spec = KernelSpec.parse(kernel)
    if not argv:
        raise ConfigError("no command to run in the guest")
    with terminate_like_interrupt():  # SIGTERM stops downloads and the guest, and cleans up
        return _run_in_guest(spec, argv, cwd, writable, timeout, env, refresh, memory_mb, cpus, stdio)


def _run_in_guest(spec: KernelSpec, argv: Sequence[str], cwd: str | None, writable: Sequence[str],
                  timeout: float, env: Mapping[str, str] | None, refresh: bool, memory_mb: int, cpus: int,
                  stdio: bool) -> int:
    say = _stderr_line
    if stdio:  # a gateway: its controller may die without a word (SIGKILL); the guest goes with it
        signal_on_parent_death(signal.SIGTERM)
        if os.getppid() == 1:
            raise ConfigError("the process that started this gateway is gone")
    ensure_host_packages(f"booting a guest ({spec.name})", say, GUEST_PACKAGES)
    started = time.monotonic()
    prepared = prepare(spec, refresh=refresh, log=say)
    prep_s = time.monotonic() - started
    accel = choose_accel(prepared, say)
    cwd = os.path.abspath(cwd or os.getcwd())
    rw = [os.path.abspath(d) for d in writable]
    for d in rw:
        os.makedirs(d, exist_ok=True)
    # The kit itself may live apart from cwd (an editable install in a checkout under /tmp).
    kit = str(Path(__file__).resolve().parents[2])  # the directory that holds the xdptest package
    ro = [p for p in dict.fromkeys((cwd, kit, sys.prefix, sys.base_prefix))
          if _hidden_in_guest(p) and not _under_any(p, rw)]
    ro = [p for p in ro if not _under_any(p, [q for q in ro if q != p])]  # a share covers what is below it
    say(f"xdptest-vm: {spec.name if spec.image is None else 'kernel'} {prepared.release} "
        f"({'KVM' if accel == 'kvm' else 'TCG emulation'}; kernel ready in {prep_s:.1f} s)")
    guest = dict(guest_env(tty=False if stdio else None) if env is None else env)
    if prepared.netdevsim:
        guest["XDPTEST_GUEST_NETDEVSIM"] = "1"  # its absence in the guest is then a failure
    run = GuestRun(argv=list(argv), cwd=cwd, env=guest,
                   writable=rw, readable=ro, timeout=timeout, tty=not stdio and sys.stdout.isatty(),
                   memory_mb=memory_mb, cpus=cpus, stdio=stdio)
    started = time.monotonic()
    status = boot(prepared, run, accel)
    if status or not stdio:  # a gateway's normal end says nothing: it would land amid the worker's reports
        say(f"xdptest-vm: guest exited with status {status} after {time.monotonic() - started:.1f} s")
    return status


def _under_any(path: str, dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# --- the command ------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xdptest-vm",
        description="Run COMMAND as root inside a guest booting a stock kernel, with the host's file system "
                    "visible read-only, and exit with its status.",
        epilog=f"Exit status: the command's; {EXIT_TIMEOUT} guest timed out; {EXIT_GUEST_DIED} guest died "
               f"(the end of its kernel console is printed); {EXIT_INTERRUPTED} interrupted; 2 bad usage or "
               "no kernel/QEMU. Cache: $XDPTEST_CACHE. XDPTEST_VM_ACCEL=kvm|tcg forces the accelerator.",
    )
    p.add_argument("--kernel", metavar="KERNEL",
                   help="debian-5.10, debian-6.1, debian-6.12, debian-latest, or the path of a kernel image or of "
                        "an unpacked kernel package (modules in lib/modules/RELEASE or usr/lib/modules/RELEASE)")
    p.add_argument("--list", action="store_true",
                   help="list the named kernels, which of them the cache holds, and what this host lacks to boot them")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"stop the guest after S seconds (exit {EXIT_TIMEOUT}); default {DEFAULT_TIMEOUT:.0f}")
    p.add_argument("--rw", action="append", default=[], metavar="DIR",
                   help="share DIR read-write at the same path (repeatable): what the command writes there "
                        "reaches the host")
    p.add_argument("--memory", type=int, default=2048, metavar="MB", help="guest memory (default 2048)")
    p.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--refresh", action="store_true",
                   help="look for a newer Debian kernel instead of using the cached one")
    p.add_argument("--stdio", action="store_true",
                   help="connect COMMAND's standard input and output to this command's, as a raw byte stream "
                        "(its other output goes to standard error): a guest as an execnet/pytest-xdist gateway, "
                        "e.g. --tx 'popen//python=xdptest-vm --stdio --kernel debian-6.12 -- python3'")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    return p


def _list() -> int:
    for line in format_kernels(list_kernels()):
        print(line)
    missing = missing_packages(GUEST_PACKAGES)
    print("host: " + (f"lacks {' '.join(missing)} (installed on first use when run as root)" if missing
                      else "has what the guests need") + "; kernels by path work too (--kernel PATH)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    ns = parser.parse_args(argv)
    if ns.list:
        return _list()
    if not ns.kernel:
        parser.print_usage(sys.stderr)
        sys.stderr.write("xdptest-vm: error: --kernel KERNEL is required (or --list)\n")
        return 2
    command = list(ns.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.print_usage(sys.stderr)
        sys.stderr.write("xdptest-vm: error: no COMMAND given\n")
        return 2
    if ns.timeout <= 0 or ns.memory < 256 or ns.cpus < 1:
        sys.stderr.write("xdptest-vm: error: --timeout must be > 0, --memory >= 256, --cpus >= 1\n")
        return 2
    try:
        return run_in_guest(ns.kernel, command, writable=ns.rw, timeout=ns.timeout, refresh=ns.refresh,
                            memory_mb=ns.memory, cpus=ns.cpus, stdio=ns.stdio)
    except (XdpTestError, OSError) as exc:
        sys.stderr.write(f"xdptest-vm: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


