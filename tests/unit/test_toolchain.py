"""Compiling BPF C with clang, and the errors when that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdptest import _toolchain
from xdptest.errors import CompileError, ToolchainError


def test_compiles_a_fixture_into_a_bpf_elf(tmp_path: Path, fixtures_dir: Path) -> None:
    out = _toolchain.compile_bpf(fixtures_dir / "bpf" / "two_xdp.bpf.c", tmp_path / "two.o")
    data = out.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert int.from_bytes(data[18:20], "little") == 247  # EM_BPF


def test_compile_error_carries_clang_output(tmp_path: Path) -> None:
    src = tmp_path / "broken.bpf.c"
    src.write_text("int f(void) { return missing_symbol; }\n")
    with pytest.raises(CompileError) as info:
        _toolchain.compile_bpf(src, tmp_path / "broken.o")
    assert "missing_symbol" in info.value.output
    assert not (tmp_path / "broken.o").exists()


def test_missing_clang_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("XDPTEST_CLANG", raising=False)
    with pytest.raises(ToolchainError, match="apt-get install clang"):
        _toolchain.find_clang()


def test_xdptest_clang_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDPTEST_CLANG", "clang-does-not-exist")
    with pytest.raises(ToolchainError, match="XDPTEST_CLANG"):
        _toolchain.find_clang()
