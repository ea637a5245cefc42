"""On the host: ``pytest --xdptest-kernel A,B`` runs every test on every kernel, each guest a
pytest-xdist worker, and labels each result with its kernel (terminal, junit XML, JSON summary).

Each test boots real guests, so it runs only where the kernels are in the cache (after
``scripts/test-kernels.sh`` or any ``--xdptest-kernel`` run); elsewhere it skips and says so.
``XDPTEST_MATRIX_KERNELS`` names the two kernels (default ``debian-6.1,debian-6.12``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.vm.conftest import skip_unless_host_may_boot_guests
from xdptest.vm.kernels import KernelSpec, cached_kernel

KERNELS = [k for k in os.environ.get("XDPTEST_MATRIX_KERNELS", "debian-6.1,debian-6.12").split(",") if k]


@pytest.fixture
def releases() -> dict[str, str]:
    """The two kernels' releases, or a skip that says what is missing."""
    skip_unless_host_may_boot_guests("guests")
    out = {}
    for name in KERNELS:
        kernel = cached_kernel(KernelSpec.parse(name))
        if kernel is None:
            pytest.skip(f"no {name} guest kernel in the cache yet (scripts/test-kernels.sh prepares it)")
        out[name] = kernel.release
    assert len(set(out.values())) == 2, f"two different kernels are needed: {out}"
    return out


def _suite(pytester: pytest.Pytester, fails_on: str) -> None:
    pytester.makepyfile(test_matrix=f"""
        import os, platform, pytest

        def test_in_a_guest():
            assert os.environ["XDPTEST_IN_GUEST"] == "1"
            assert platform.release() != {os.uname().release!r}

        @pytest.mark.parametrize("n", [1, 2])
        def test_everywhere(n):
            assert n in (1, 2)

        def test_fails_on_one_kernel():
            assert platform.release() != {fails_on!r}
    """)


def test_every_test_runs_on_every_kernel_labelled(pytester: pytest.Pytester, releases: dict[str, str]) -> None:
    first, second = KERNELS
    _suite(pytester, fails_on=releases[second])
    summary = pytester.path / "matrix.json"
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("--xdptest-kernel", ",".join(KERNELS), "-v", "-p", "no:cacheprovider",
                                           f"--xdptest-matrix-json={summary}", f"--junitxml={junit}", timeout=900)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines_random([
        f"*PASSED test_matrix.py::test_everywhere?1?@{first}*",
        f"*PASSED test_matrix.py::test_everywhere?2?@{second}*",
        f"*FAILED test_matrix.py::test_fails_on_one_kernel@{second}*",
        f"kernel {first} ({releases[first]}): 4 passed, 0 failed",
        f"kernel {second} ({releases[second]}): 3 passed, 1 failed",
    ])
    document = json.loads(summary.read_text())
    outcomes = {(t["nodeid"], t["kernel"]): t["outcome"] for t in document["tests"]}
    assert len(outcomes) == 8
    assert outcomes[("test_matrix.py::test_fails_on_one_kernel", first)] == "passed"
    assert outcomes[("test_matrix.py::test_fails_on_one_kernel", second)] == "failed"
    assert [(k["label"], k["release"], k["collected"]) for k in document["kernels"]] == [
        (first, releases[first], 4), (second, releases[second], 4)]
    cases = ET.parse(junit).getroot().iter("testcase")
    named = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases}
    assert named[f"test_fails_on_one_kernel@{second}"] == {"kernel": second}
    assert len(named) == 8


def test_a_guest_that_dies_fails_the_session(pytester: pytest.Pytester, releases: dict[str, str]) -> None:
    first, second = KERNELS
    pytester.makepyfile(test_dies=f"""
        import platform, time

        def test_a():
            if platform.release() == {releases[second]!r}:
                open("/proc/sysrq-trigger", "w").write("c")
                time.sleep(60)

        def test_b():
            pass
    """)
    result = pytester.runpytest_subprocess("--xdptest-kernel", ",".join(KERNELS), "-p", "no:cacheprovider",
                                           timeout=900)
    assert result.ret != 0, result.stdout.str()
    # xdist replaces the crashed worker (a fresh guest) and runs the tests that were left
    result.stdout.fnmatch_lines_random([f"kernel {first} ({releases[first]}): 2 passed, 0 failed",
                                        f"kernel {second} (*): 1 passed, 1 failed; guest went down*",
                                        "FAILED test_dies.py::test_a@*"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_the_run_leaves_no_guest(tmp_path: Path, releases: dict[str, str], signum: int) -> None:
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(600)\n")
    before = _qemus()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--xdptest-kernel",
                             ",".join(KERNELS), str(tmp_path / "test_slow.py")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_qemus() - before) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_qemus() - before) == 2, "the guests did not start"
        time.sleep(5)
        proc.send_signal(signum)  # to pytest alone, as CI's runner does
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while _qemus() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _qemus() - before, "a guest outlived the pytest run"


def _qemus() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("qemu-system"):
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids
