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


def test_a_compile_error_leads_with_the_first_error_and_its_place(tmp_path: Path) -> None:
    src = tmp_path / "two_errors.bpf.c"
    src.write_text("#include <linux/bpf.h>\nint f(void)\n{\n\treturn missing_one + missing_two;\n}\n")
    with pytest.raises(CompileError) as info:
        _toolchain.compile_bpf(src, tmp_path / "x.o")
    first = str(info.value).splitlines()[0]
    assert f"{src}:4:" in first and "missing_one" in first and "error:" in first
    assert "missing_two" not in str(info.value)  # the rest stays in .output, not in the message
    assert "missing_two" in info.value.output


def test_uapi_headers_that_reach_glibc_compile_without_multilib(tmp_path: Path) -> None:
    """<linux/icmp.h> and <linux/if.h> reach glibc's gnu/stubs.h, which wants the 32-bit stubs
    for a target without __x86_64__; the kit supplies an empty one after every system directory."""
    src = tmp_path / "uapi.bpf.c"
    src.write_text("#include <linux/bpf.h>\n#include <linux/if.h>\n#include <linux/icmp.h>\n"
                   "#include <bpf/bpf_helpers.h>\n"
                   'SEC("xdp") int f(struct xdp_md *ctx) { return IFNAMSIZ == 16 ? XDP_PASS : XDP_DROP; }\n'
                   'char LICENSE[] SEC("license") = "GPL";\n')
    assert _toolchain.compile_bpf(src, tmp_path / "uapi.o").read_bytes()[:4] == b"\x7fELF"
    assert "-idirafter" in _toolchain.compile_flags(src)  # a real stubs-32.h, where installed, wins


def test_user_cflags_and_include_dirs_reach_clang(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "limits_of_mine.h").write_text("#define MY_LIMIT 7\n")
    src = tmp_path / "flags.bpf.c"
    src.write_text('#include "limits_of_mine.h"\n#if MY_LIMIT != 7 || WANTED != 3\n#error flags lost\n#endif\n'
                   "int f(void) { return 0; }\n")
    with pytest.raises(CompileError, match="flags lost"):
        _toolchain.compile_bpf(src, tmp_path / "f.o", [inc])
    _toolchain.compile_bpf(src, tmp_path / "f.o", [inc], ["-DWANTED=3"])


def test_vmlinux_h_is_generated_once_from_the_kernels_btf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _toolchain.VMLINUX_BTF.exists():
        pytest.skip("this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
    monkeypatch.setenv("XDPTEST_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "core.bpf.c"
    src.write_text('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("xdp") int f(struct xdp_md *ctx) { struct ethhdr *e = (void *)(long)ctx->data;\n'
                   "  return (void *)(e + 1) > (void *)(long)ctx->data_end ? XDP_DROP : XDP_PASS; }\n"
                   'char LICENSE[] SEC("license") = "GPL";\n')
    _toolchain.compile_bpf(src, tmp_path / "core.o")
    [header] = (tmp_path / "cache" / "vmlinux").glob("*/vmlinux.h")
    assert b"struct xdp_md {" in header.read_bytes()
    stamp = header.stat().st_mtime_ns
    _toolchain.compile_bpf(src, tmp_path / "core2.o")
    assert header.stat().st_mtime_ns == stamp  # generated once
