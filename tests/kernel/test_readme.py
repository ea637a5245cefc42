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


def test_readme_pytest_example_runs(pytester: pytest.Pytester) -> None:
    example = next(b for b in BLOCKS if "def test_" in b)
    program = (ROOT / "examples" / "udp_port_counter" / "xdp_port_counter.c").read_text()
    pytester.makefile(".bpf.c", my_prog=program)
    pytester.makepyfile(test_readme=textwrap.dedent(example))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
