"""Nothing survives a failing test, Ctrl-C in the middle of a test, or a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import default_stop_signals
from xdptest.netns import reap_leftovers

INNER_TEST = textwrap.dedent('''
    import json, os, time
    from xdptest.bpf import attached_programs

    def test_inner(veth_pair, xdp_program):
        pair = veth_pair()
        prog = xdp_program("count")
        prog.attach(pair.b, mode="native")
        with open(os.environ["XT_NAMES"], "w") as f:
            json.dump([pair.a.netns.name, pair.b.netns.name, pair.b.ifname, prog.id], f)
        if os.environ.get("XT_SLEEP"):
            time.sleep(60)
        assert attached_programs(pair.b) == {}, "deliberate failure"
''')


def _existing_netns() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def _wait_for(path: Path, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"the inner test never wrote {path}")


def _program_exists(prog_id: int) -> bool:
    out = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True)
    return out.returncode == 0


def test_failing_test_leaves_nothing(pytester: pytest.Pytester, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    names = tmp_path / "names.json"
    monkeypatch.setenv("XT_NAMES", str(names))
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*deliberate failure*"])
    ns_a, ns_b, _, prog_id = json.loads(names.read_text())
    assert not {ns_a, ns_b} & _existing_netns()
    assert not _program_exists(prog_id)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_in_the_middle_of_a_test_leaves_nothing(pytester: pytest.Pytester, tmp_path: Path,
                                                              signum: signal.Signals) -> None:
    """Ctrl-C, and what timeout, CI cancellation and a closed terminal send, run every teardown."""
    names = tmp_path / "names.json"
    pytester.makepyfile(test_inner=INNER_TEST)
    env = dict(os.environ, XT_NAMES=str(names), XT_SLEEP="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(pytester.path)],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=default_stop_signals,
    )
    try:
        ns_a, ns_b, _, prog_id = _wait_for(names)
        assert {ns_a, ns_b} <= _existing_netns()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    want = b"KeyboardInterrupt" if signum == signal.SIGINT else f"terminated by {signum.name}".encode()
    assert want in out, out.decode(errors="replace")[-2000:]
    assert not {ns_a, ns_b} & _existing_netns()
    assert not _program_exists(prog_id)


def test_killed_process_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    names = tmp_path / "names.json"
    code = textwrap.dedent(f'''
        import json, time
        from xdptest import VethPair
        pair = VethPair()
        json.dump([pair.a.netns.name, pair.b.netns.name], open({str(names)!r}, "w"))
        time.sleep(60)
    ''')
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        ns_a, ns_b = _wait_for(names)
    finally:
        proc.kill()
        proc.wait()
    assert {ns_a, ns_b} <= _existing_netns()  # SIGKILL: no chance to clean up
    removed = reap_leftovers()
    assert {ns_a, ns_b} <= set(removed)
    assert not {ns_a, ns_b} & _existing_netns()
