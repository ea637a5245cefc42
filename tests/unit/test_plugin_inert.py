"""The plugin must cost nothing until a fixture is used."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_plugin_loads_no_heavy_module() -> None:
    code = (
        "import sys, xdptest.plugin\n"
        "heavy = [m for m in ('pyroute2', 'scapy', 'xdptest._native', 'xdptest.netns') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_is_registered_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="pytest11") if ep.name == "xdptest"]
    assert [ep.value for ep in eps] == ["xdptest.plugin"]
