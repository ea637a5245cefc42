"""The plugin as users meet it: markers, options, xdp_run, assertions, strategies, examples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from xdptest.netns import reap_leftovers


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_report_header_names_kernel_libbpf_and_features(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(xdp_run): pass")
    result = _run(pytester)
    result.stdout.fnmatch_lines(["xdptest: kernel *", "xdptest: libbpf v*; features: af_xdp=yes need_wakeup=yes*"])


def test_header_of_a_session_that_does_not_use_the_kit_probes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = _run(pytester)
    result.stdout.fnmatch_lines(["xdptest: kernel *"])
    result.stdout.no_fnmatch_line("*features:*")
    result.assert_outcomes(passed=1)


def _traced_session(pytester: pytest.Pytester, *args: str) -> str:
    """Run a pytest session under strace; the bpf() and execve() calls of all its processes."""
    log = pytester.path / "strace.log"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=bpf,execve", "-o", str(log),
                    sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                   cwd=pytester.path, capture_output=True, text=True, timeout=120, check=True)
    return log.read_text()


def test_an_unrelated_session_loads_no_bpf_program_and_runs_no_modprobe(pytester: pytest.Pytester) -> None:
    """Installing the plugin changes nothing for sessions that do not use it (syscalls counted)."""
    pytester.makepyfile(test_unrelated="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_arithmetic(n):
            assert n + n == 2 * n
    """)
    trace = _traced_session(pytester, "-v")
    assert "BPF_PROG_LOAD" not in trace
    assert "modprobe" not in trace
    # The control: the same tracing sees the kit's probes as soon as a session uses a fixture.
    pytester.makepyfile(test_unrelated="def test_uses_the_kit(xdp_run): pass")
    assert "BPF_PROG_LOAD" in _traced_session(pytester)


def test_requires_feature_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import pytest

        @pytest.mark.requires_feature("hugepages")
        def test_needs_hugepages():
            pass

        @pytest.mark.requires_feature("need_wakeup", "busy_poll")
        def test_needs_what_this_kernel_has():
            pass
    ''')
    result = _run(pytester, "-rs")
    outcome = result.parseoutcomes()
    # Which of them skip depends on the machine; each skip names its feature and the kernel.
    if "skipped" in outcome:
        result.stdout.re_match_lines([r".*(hugepages|need_wakeup|busy_poll)( \(Linux [\d.]+\+\))? "
                                      r"not available on \S+: .+"])
    assert outcome.get("passed", 0) + outcome.get("skipped", 0) == 2


def test_required_by_kernel_turns_a_missing_feature_into_a_failure() -> None:
    from xdptest.features import FeatureStatus

    assert FeatureStatus("busy_poll", False, "x", "5.11").required_by_kernel
    assert not FeatureStatus("hugepages", False, "x", None).required_by_kernel
    assert not FeatureStatus("future", False, "x", "99.0").required_by_kernel


def test_xdp_run_fixture_and_action_assertion(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        from scapy.layers.l2 import Ether
        from scapy.layers.inet import IP, UDP
        from xdptest import XdpAction
        from xdptest.assertions import assert_action

        def test_builtins(xdp_run):
            pkt = Ether() / IP(dst="198.18.0.2") / UDP()
            assert xdp_run("drop", pkt).action is XdpAction.DROP
            assert xdp_run("pass", bytes(pkt), repeat=10).action is XdpAction.PASS

        def test_explains_a_wrong_verdict(xdp_run):
            assert_action(xdp_run("drop", bytes(64)), XdpAction.PASS)
    ''')
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the program returned DROP, expected PASS*"])


def test_packet_assertion_shows_a_byte_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        from scapy.layers.l2 import Ether
        from scapy.layers.inet import IP, UDP
        from xdptest.assertions import assert_packet_equal

        def test_diff():
            a = Ether(src="02:00:00:00:00:01") / IP(ttl=64) / UDP()
            b = Ether(src="02:00:00:00:00:01") / IP(ttl=63) / UDP()
            assert_packet_equal(a, b)
    ''')
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*packets differ*", "*byte(s) differ, first at offset 22*",
                                 "*ttl       = 64*", "*ttl       = 63*"])


def test_keep_leaves_a_failed_topology_and_the_next_run_removes_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        def test_fails(veth_pair, xdp_program):
            pair = veth_pair()
            xdp_program("count").attach(pair.b)
            assert False, "deliberate"

        def test_passes(veth_pair):
            veth_pair()
    ''')
    result = _run(pytester, "--xdptest-keep", "-s")
    result.assert_outcomes(passed=1, failed=1)
    kept = [line.split()[3] for line in result.outlines if line.strip().startswith("ip netns exec xt")]
    assert len(kept) == 2
    assert set(kept) <= set(os.listdir("/run/netns"))
    out = pytester.run("ip", "-n", kept[1], "-d", "link").stdout.str()
    assert "prog/xdp" in out  # the program stays attached for inspection
    assert set(kept) <= set(reap_leftovers())
    assert not set(kept) & set(os.listdir("/run/netns"))


def test_property_example_runs(pytester: pytest.Pytester) -> None:
    for item in (ROOT / "examples" / "property_test").iterdir():
        shutil.copy(item, pytester.path / item.name)
    result = _run(pytester)
    result.assert_outcomes(passed=1)
