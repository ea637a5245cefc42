"""The xsk and traffic fixtures, failure artifacts, and parallel runs, as users meet them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_steering_example_passes(pytester: pytest.Pytester) -> None:
    for item in (ROOT / "examples" / "steering").iterdir():
        shutil.copy(item, pytester.path / item.name)
    _run(pytester).assert_outcomes(passed=3)


def test_xsk_fixture_splits_umem_and_socket_options(veth_pair, xsk) -> None:
    pair = veth_pair()
    rx = xsk(pair.b, frame_size=2048, frames=256, rx_size=512, fill_size=512)
    tx = xsk(pair.a, rx_size=0, frame_size=2048, frames=64)
    assert (rx.umem.frame_size, rx.umem.frames) == (2048, 256)
    frame = bytes.fromhex(pair.b.mac.replace(":", "") + pair.a.mac.replace(":", "")) + b"\x88\xb5" + b"x" * 50
    assert tx.send([frame]) == 1
    assert rx.recv(timeout=1.0) == [frame]


def test_failed_traffic_test_leaves_pcaps_named_in_the_report(pytester: pytest.Pytester, tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "steering" / "steer.bpf.c", pytester.path / "steer.bpf.c")
    pytester.makepyfile(textwrap.dedent('''
        from xdptest.assertions import assert_delivered

        def test_dropped(veth_pair, xdp_program, traffic):
            pair = veth_pair()
            prog = xdp_program("steer.bpf.c")
            prog.attach(pair.b)
            report = traffic(pair.a, pair.b, count=300, rx_program=prog, vary=["udp.dport=5000-5002"])
            assert report.received == 300
            report = traffic(pair.a, pair.b, count=300, rx_program=prog, packet="Ether()/IP()/UDP(dport=9)")
            assert_delivered(report)  # the program drops port 9: this fails
    '''))
    artifacts = tmp_path / "artifacts"
    result = _run(pytester, f"--xdptest-artifacts={artifacts}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*traffic not delivered: lost 300 of 300*", "*xdptest artifacts*",
                                 "*traffic2-rx.pcap*", "*programs.json*"])
    (folder,) = artifacts.iterdir()
    for name, expected in (("traffic1-tx.pcap", 300), ("traffic1-rx.pcap", 300), ("traffic2-tx.pcap", 300),
                           ("traffic2-rx.pcap", 0)):
        out = subprocess.run(["tcpdump", "-nr", str(folder / name)], capture_output=True, text=True, check=True)
        assert len(out.stdout.splitlines()) == expected, name
    programs = json.loads((folder / "programs.json").read_text())
    assert programs["programs"][0]["name"] == "steer"
    assert any("native" in att for att in programs["programs"][0]["attached"])
    report = json.loads((folder / "traffic2-report.json").read_text())
    assert (report["sent"], report["lost"]) == (300, 300)


def test_a_dozen_traffic_tests_in_parallel_leave_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    names = tmp_path / "names"
    names.mkdir()
    pytester.makepyfile(textwrap.dedent(f'''
        import pytest

        @pytest.mark.parametrize("i", range(12))
        def test_traffic(veth_pair, traffic, i):
            pair = veth_pair(queues=1 + i % 2)
            open({str(names)!r} + f"/{{i}}", "w").write(pair.a.netns.name + " " + pair.b.netns.name)
            report = traffic(pair.a, pair.b, count=5000, queues=1 + i % 2, vary=[f"udp.sport={{i}}-{{i + 9}}"])
            assert report.delivered, report.summary()
    '''))
    _run(pytester, "-n", "4").assert_outcomes(passed=12)
    created = {n for f in names.iterdir() for n in f.read_text().split()}
    assert len(created) == 24
    assert not created & set(os.listdir("/run/netns"))


def test_session_traffic_report_and_summary_lines(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Two workers, three traffic runs: each run is a line in the terminal summary and a report in
    the session's JSON document, with its test id and kernel."""
    pytester.makepyfile(textwrap.dedent('''
        import pytest

        @pytest.mark.parametrize("count", [300, 500])
        def test_runs(veth_pair, traffic, count):
            pair = veth_pair()
            assert traffic(pair.a, pair.b, count=count).received == count

        def test_two_runs(veth_pair, traffic):
            pair = veth_pair()
            traffic(pair.a, pair.b, count=100)
            traffic(pair.a, pair.b, count=200, vary=["size=64-128"])

        def test_without_traffic(veth_pair):
            veth_pair()
    '''))
    path = tmp_path / "session.json"
    result = _run(pytester, "-n", "2", f"--xdptest-report={path}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*xdptest traffic*", "*test_runs?300?: sent 300, received 300, lost 0, corrupted 0*",
                                 "*4 traffic report(s) written to*"])
    document = json.loads(path.read_text())
    runs = sorted((r["test"].split("::")[1], r["report"]["sent"]) for r in document["runs"])
    assert runs == [("test_runs[300]", 300), ("test_runs[500]", 500), ("test_two_runs", 100), ("test_two_runs", 200)]
    assert {r["kernel"] for r in document["runs"]} == {os.uname().release}
    assert all(r["outcome"] == "passed" and r["report"]["config"]["count"] == r["report"]["sent"]
               for r in document["runs"])
