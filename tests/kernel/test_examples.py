"""The examples are run the way a stranger runs them: a separate pytest session in their folder."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT


def test_udp_port_counter_example_passes(pytester: pytest.Pytester) -> None:
    example = ROOT / "examples" / "udp_port_counter"
    for item in example.iterdir():
        shutil.copy(item, pytester.path / item.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*native*PASSED*", "*generic*PASSED*"])


def test_icmp_echo_example_passes(pytester: pytest.Pytester) -> None:
    """A tutorial-style program whose UAPI headers reach glibc compiles as it is."""
    example = ROOT / "examples" / "icmp_echo"
    for item in example.iterdir():
        shutil.copy(item, pytester.path / item.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)


def test_global_config_example_passes(pytester: pytest.Pytester) -> None:
    """const volatile configuration set before load, .bss and .data read and written after."""
    example = ROOT / "examples" / "global_config"
    for item in example.iterdir():
        shutil.copy(item, pytester.path / item.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)


def test_pinned_stats_example_passes(pytester: pytest.Pytester) -> None:
    """Two programs share a pinned map in one test; the next test starts from zero."""
    example = ROOT / "examples" / "pinned_stats"
    for item in example.iterdir():
        shutil.copy(item, pytester.path / item.name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
