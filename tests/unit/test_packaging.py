"""Building the kit as a user's `pip install .` does: quiet, and the wheel holds what it needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

from tests.conftest import ROOT


def test_a_wheel_builds_without_warnings_and_ships_the_programs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp_path), "--no-deps",
                           "--no-build-isolation", "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    [wheel] = tmp_path.glob("xdptest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for program in ("pass", "drop", "redirect", "tx", "count"):
        assert f"xdptest/bpf-objects/{program}.bpf.o" in names
    assert any(n.startswith("xdptest/_native") and n.endswith(".so") for n in names)


def test_the_declared_pytest_floor_has_new_style_hook_wrappers() -> None:
    """The plugin uses hookimpl(wrapper=True), which pytest supports from 8.0 on."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pytest>=8" in extras["test"]
    assert "wrapper=True" in (ROOT / "xdptest" / "plugin.py").read_text()
