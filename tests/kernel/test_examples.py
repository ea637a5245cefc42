"""The examples are run the way a stranger runs them: a separate pytest session in their folder."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT


def run_example(pytester: pytest.Pytester, name: str) -> pytest.RunResult:
    """Copy ``examples/NAME`` into a fresh directory and run pytest there, verbose."""
    for item in (ROOT / "examples" / name).iterdir():
        shutil.copy(item, pytester.path / item.name)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")


def test_udp_port_counter_example_passes(pytester: pytest.Pytester) -> None:
    result = run_example(pytester, "udp_port_counter")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*native*PASSED*", "*generic*PASSED*"])


@pytest.mark.parametrize("name", [
    "icmp_echo",  # a tutorial-style program whose UAPI headers reach glibc compiles as it is
    "global_config",  # const volatile configuration before load, .bss and .data after
    "pinned_stats",  # two programs share a pinned map in one test; the next test starts from zero
    "core_counter",  # #include "vmlinux.h" (CO-RE), the header generated from the kernel's BTF
    "router",  # a rewriting program, every byte of every frame checked against expect
])
def test_program_example_passes(pytester: pytest.Pytester, name: str) -> None:
    run_example(pytester, name).assert_outcomes(passed=3 if name == "icmp_echo" else 2)
