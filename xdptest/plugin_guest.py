"""The pytest half of the guests: ``pytest --xdptest-kernel KERNEL`` re-runs the session in one.

The plugin calls :func:`run_pytest_in_guest` from ``pytest_cmdline_main``; the guests themselves
(kernels, boot, the command) are :mod:`xdptest.vm`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import pytest

from xdptest.errors import XdpTestError
from xdptest.vm import DEFAULT_TIMEOUT, run_in_guest

__all__ = ["guest_pytest_args", "run_pytest_in_guest"]

_VALUE_OPTIONS = {"--xdptest-kernel": True, "-n": False, "--numprocesses": False, "--dist": False,
                  "--maxprocesses": False}


def guest_pytest_args(args: Sequence[str], xdist: bool) -> list[str]:
    """The host's pytest arguments for the guest: without ``--xdptest-kernel`` and xdist's ``-n``.

    The guest runs the session in one process: under emulation each extra worker costs seconds of
    start-up and the guest has two CPUs; with KVM one process is still quick for the kernel subset.
    """
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _VALUE_OPTIONS:
            skip_next = not eq
            continue
        if arg.startswith("-n") and not arg.startswith("--") and arg[2:].isalnum():
            continue  # -n2, -nauto
        out.append(arg)
    out += ["-p", "no:cacheprovider"]
    if xdist:
        out += ["-n", "0"]
    return out


def run_pytest_in_guest(config: pytest.Config, kernel: str) -> int:
    """Re-run this pytest invocation inside a guest booting ``kernel``; return its exit status."""
    args = guest_pytest_args([str(a) for a in config.invocation_params.args],
                             xdist=config.pluginmanager.hasplugin("xdist"))
    cwd = str(config.invocation_params.dir)
    writable: list[str] = []
    xmlpath = getattr(config.option, "xmlpath", None)
    if xmlpath:
        writable.append(os.path.dirname(os.path.join(cwd, os.path.expanduser(str(xmlpath)))))
    report = config.getoption("xdptest_report", None) or config.getini("xdptest_report")
    if report:
        writable.append(os.path.dirname(os.path.join(cwd, os.path.expanduser(str(report)))))
    artifacts = config.getoption("xdptest_artifacts", None) or config.getini("xdptest_artifacts")
    if artifacts:
        writable.append(os.path.join(cwd, str(artifacts)))
    timeout = float(os.environ.get("XDPTEST_VM_TIMEOUT", DEFAULT_TIMEOUT))
    try:
        return run_in_guest(kernel, [sys.executable, "-m", "pytest", *args], cwd=cwd, writable=writable,
                            timeout=timeout, refresh=bool(os.environ.get("XDPTEST_VM_REFRESH")))
    except (XdpTestError, OSError) as exc:
        raise pytest.UsageError(f"--xdptest-kernel {kernel}: {exc}") from None
