"""README's Python examples run as written."""

from __future__ import annotations

import re
import textwrap

import pytest

from tests.conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


def test_readme_api_example_runs() -> None:
    api = next(b for b in BLOCKS if "with VethPair" in b)
    exec(compile(api, "README.md", "exec"), {})


@pytest.mark.requires_feature("multi_buffer")
def test_readme_jumbo_example_runs() -> None:
    jumbo = next(b for b in BLOCKS if "mtu=9000" in b)
    exec(compile(jumbo, "README.md", "exec"), {})


def test_readme_jumbo_commands_run() -> None:
    """The jumbo-frame lines pass where the kernel has multi-buffer, else exit 2 naming 6.6."""
    import subprocess
    import sys

    from xdptest.features import probe

    text = (ROOT / "README.md").read_text()
    block = re.search(r"### Jumbo frames \(multi-buffer AF_XDP\)\n.*?```sh\n(.*?)```", text, re.S)
    assert block
    lines = [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 2
    for line in lines:
        argv = [sys.executable, "-m", "xdptest.cli", *line.split()[1:], "--count", "2000"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if probe("multi_buffer").present:
            assert p.returncode == 0, (line, p.stdout, p.stderr)
            assert "multi-buffer" in p.stdout and "corrupted       0" in p.stdout
        else:
            assert p.returncode == 2 and "6.6" in p.stderr, (line, p.stderr)


def test_readme_pytest_example_runs(pytester: pytest.Pytester) -> None:
    example = next(b for b in BLOCKS if "def test_my_program_drops_port_9" in b)
    program = (ROOT / "examples" / "udp_port_counter" / "xdp_port_counter.c").read_text()
    pytester.makefile(".bpf.c", my_prog=program)
    pytester.makepyfile(test_readme=textwrap.dedent(example))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_readme_command_examples_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The xdptest-gen lines that need no interface of the reader's own."""
    import json
    import shlex
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The command: `xdptest-gen`\n\n```sh\n(.*?)```", text, re.S)
    assert block
    lines = [ln.split("#")[0].strip() for ln in block.group(1).splitlines()]
    runnable = [ln for ln in lines if ln.startswith("xdptest-gen") and "--iface" not in ln]
    assert len(runnable) == 7
    for line in runnable:  # paths in the examples are relative to the checkout
        argv = [sys.executable, "-m", "xdptest.cli",
                *(str(ROOT / a) if a.startswith("fixtures/") else a for a in shlex.split(line)[1:])]
        p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        # 1 is an honest verdict on a loaded machine (open loop); 2 would mean the example is wrong
        assert p.returncode in (0, 1), (line, p.stderr)
        assert "xdptest-gen: PASS" in p.stdout or "xdptest-gen: FAIL" in p.stdout
    assert json.loads((tmp_path / "report.json").read_text())["tx_pps"] > 0
    assert (tmp_path / "rx.pcap").stat().st_size > 24
    assert (tmp_path / "sent.pcapng").stat().st_size > 250 * 64
    assert [json.loads(ln)["type"] for ln in (tmp_path / "run.ndjson").read_text().splitlines()][-1] == "report"


def test_readme_whole_frame_example_is_the_router_example() -> None:
    """README's whole-frame example is examples/router's first test, which the suite runs."""
    example = next(b for b in BLOCKS if "def router_hop" in b)
    test = (ROOT / "examples" / "router" / "test_router.py").read_text()
    assert textwrap.dedent(example).split("\n\n\n", 1)[1].strip() in test


def test_readme_report_commands_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The commands of "Reports people read", as written (about 15 s of traffic)."""
    import json
    import shlex
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    block = re.search(r"### Reports people read\n\n```sh\n(.*?)```", text, re.S)
    assert block
    lines = [ln for ln in block.group(1).splitlines() if ln.startswith("xdptest-gen")]
    assert len(lines) == 2
    for line in lines:
        p = subprocess.run([sys.executable, "-m", "xdptest.cli", *shlex.split(line)[1:]], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode in (0, 1), (line, p.stderr)  # 1: an honest verdict on a loaded machine
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")
    assert "<svg" in (tmp_path / "run.html").read_text()
    records = [json.loads(ln) for ln in (tmp_path / "run.ndjson").read_text().splitlines()]
    assert len(records) >= 8 and records[-1]["type"] == "report"  # about ten 1-second rows, then the report
