"""Global data: variables by name before and after load, typed from BTF; map sizes before load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from xdptest import ConfigError, XdpProgram

PROGRAM = ROOT / "examples" / "global_config" / "xdp_port_filter.c"


def test_variables_are_listed_with_their_sections_and_initial_values() -> None:
    prog = XdpProgram.open(PROGRAM)
    try:
        assert not prog.loaded
        assert {n: prog.variables.info(n).section for n in prog.variables} == {
            "blocked_port": ".rodata", "verdict": ".rodata", "label": ".rodata", "seen": ".bss",
            "blocked": ".bss", "per_protocol": ".bss", "budget": ".data"}
        assert (prog.variables["verdict"], prog.variables["budget"], prog.variables["per_protocol"]) == \
            (1, 1_000_000, [0, 0, 0, 0])
    finally:
        prog.close()


def test_values_are_checked_against_their_types_before_anything_loads() -> None:
    prog = XdpProgram.open(PROGRAM)
    try:
        with pytest.raises(ConfigError, match="does not fit its 2-byte unsigned"):
            prog.variables["blocked_port"] = 70_000
        with pytest.raises(ConfigError, match="5 values for an array of 4"):
            prog.variables["per_protocol"] = [1, 2, 3, 4, 5]
        with pytest.raises(ConfigError, match="9 bytes do not fit its 8"):
            prog.variables["label"] = b"123456789"
        with pytest.raises(ConfigError, match=r"cannot store 1\.5"):
            prog.variables["seen"] = 1.5
        prog.variables["label"] = "short"  # shorter strings are zero-padded
        assert prog.variables["label"] == b"short\0\0\0"
        with pytest.raises(ConfigError, match="not in the kernel yet"):
            prog.maps["by_port"].lookup(1)
        with pytest.raises(ConfigError, match="opened but not loaded"):
            prog.run(bytes(64))
        with pytest.raises(ConfigError, match="max_entries must be a positive integer"):
            prog.maps["by_port"].max_entries = 0
    finally:
        prog.close()


def test_rodata_in_one_step_refuses_what_is_not_rodata() -> None:
    with pytest.raises(ConfigError, match=r"seen is in \.bss, not \.rodata"):
        XdpProgram.load(PROGRAM, rodata={"seen": 1})
    with pytest.raises(ConfigError, match="no global variable 'port'"):
        XdpProgram.load(PROGRAM, rodata={"port": 9})
    with XdpProgram.load(PROGRAM, rodata={"blocked_port": 53, "verdict": 2}) as prog:
        assert prog.loaded and (prog.variables["blocked_port"], prog.variables["verdict"]) == (53, 2)
        with pytest.raises(ConfigError, match="loaded already"):
            prog.load()


def test_a_program_without_globals_has_no_variables(tmp_path: Path) -> None:
    with XdpProgram.load("pass") as prog:
        assert dict(prog.variables) == {}
        with pytest.raises(ConfigError, match="its variables: none"):
            prog.variables["x"]
