"""On the host: a test that fails inside a guest makes ``pytest --xdptest-kernel`` exit 1, and
``xdptest-vm`` exits with the guest command's status, 124 on timeout, 125 when the guest dies.

Each boots a real guest, so it runs only where that guest's kernel is already in the cache (after
``scripts/test-kernels.sh`` or any ``--xdptest-kernel`` run); elsewhere it skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from xdptest.vm.boot import BOOT_ATTEMPTS, EXIT_GUEST_DIED, EXIT_TIMEOUT, GuestRun, boot
from xdptest.vm.kernels import KernelSpec, cached_kernel

KERNEL = os.environ.get("XDPTEST_STATUS_KERNEL", "debian-6.12")


def test_a_failing_test_in_the_guest_fails_the_host_run(pytester: pytest.Pytester) -> None:
    if os.environ.get("XDPTEST_IN_GUEST"):
        pytest.skip("runs on the host: it boots a guest")
    if cached_kernel(KernelSpec.parse(KERNEL)) is None:
        pytest.skip(f"no {KERNEL} guest kernel in the cache yet (scripts/test-kernels.sh prepares it)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 missing (apt-get install qemu-system-x86)")
    pytester.makepyfile(test_in_guest=f"""
        import os, platform

        def test_runs_in_the_guest():
            assert os.environ["XDPTEST_IN_GUEST"] == "1"
            assert platform.release() != {os.uname().release!r}

        def test_fails():
            assert 1 + 1 == 3
    """)
    result = pytester.runpytest_subprocess("--xdptest-kernel", KERNEL, timeout=900)
    result.stdout.fnmatch_lines(["*1 failed, 1 passed*"])
    assert result.ret == 1


def _vm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    if os.environ.get("XDPTEST_IN_GUEST"):
        pytest.skip("runs on the host: it boots a guest")
    if cached_kernel(KernelSpec.parse(KERNEL)) is None:
        pytest.skip(f"no {KERNEL} guest kernel in the cache yet (scripts/test-kernels.sh prepares it)")
    return subprocess.run([sys.executable, "-m", "xdptest.vm", "--kernel", KERNEL, *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_the_guest_command_status_is_the_exit_status() -> None:
    proc = _vm("--", "sh", "-c", "test -d /sys/bus/netdevsim || modprobe netdevsim; echo in-guest; exit 7")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "in-guest\n"


def test_a_guest_past_its_timeout_exits_124_with_the_console() -> None:
    proc = _vm("--timeout", "20", "--", "sleep", "600")
    assert proc.returncode == EXIT_TIMEOUT, proc.stderr
    assert "did not finish within 20 s" in proc.stderr
    assert "end of its kernel console" in proc.stderr and "Linux version" not in proc.stdout


def test_a_guest_that_dies_exits_125_with_the_console() -> None:
    proc = _vm("--", "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60")
    assert proc.returncode == EXIT_GUEST_DIED, proc.stderr
    assert "stopped without reporting" in proc.stderr
    assert "sysrq" in proc.stderr.lower()


def test_a_kernel_that_dies_before_the_command_is_booted_once_more(capfd: pytest.CaptureFixture[str]) -> None:
    """48 MB is too little for the kernel to reach the command: it dies in early boot, each time."""
    if os.environ.get("XDPTEST_IN_GUEST"):
        pytest.skip("runs on the host: it boots a guest")
    kernel = cached_kernel(KernelSpec.parse(KERNEL))
    if kernel is None:
        pytest.skip(f"no {KERNEL} guest kernel in the cache yet (scripts/test-kernels.sh prepares it)")
    run = GuestRun(argv=["true"], cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout=120, memory_mb=48, cpus=1)
    assert boot(kernel, run, "tcg") == EXIT_GUEST_DIED
    err = capfd.readouterr().err
    assert err.count("stopped without reporting the command's status") == BOOT_ATTEMPTS
    assert f"booting it again (attempt 2 of {BOOT_ATTEMPTS})" in err
