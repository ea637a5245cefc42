"""cffi build script for ``xdptest._native._ffi`` (only the ``xdptest._native`` package imports it).

Every ``cnative/xt_*.h`` header is a cffi declaration file (declarations only,
read by ``cdef``) and every ``cnative/*.c`` file is compiled into the module.
A new concern adds its own header and source; this script needs no change.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent


def _pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(
            ["pkg-config", *args, "libbpf"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return out.split()


def _check_headers() -> None:
    include_dirs = [flag[2:] for flag in _pkg_config("--cflags") if flag.startswith("-I")]
    candidates = [Path(d) / "bpf" / "libbpf.h" for d in include_dirs] + [
        Path("/usr/include/bpf/libbpf.h"),
        Path("/usr/local/include/bpf/libbpf.h"),
    ]
    if not any(c.exists() for c in candidates):
        raise SystemExit(
            "xdptest build: libbpf headers not found (bpf/libbpf.h); "
            "install them with: apt-get install libbpf-dev"
        )
    if not Path("/usr/include/linux/if_xdp.h").exists():
        raise SystemExit(
            "xdptest build: kernel UAPI headers not found (linux/if_xdp.h); "
            "install them with: apt-get install linux-libc-dev"
        )


def _headers() -> list[Path]:
    return sorted(HERE.glob("xt_*.h"))


def make_ffibuilder() -> FFI:
    _check_headers()
    ffibuilder = FFI()
    for header in _headers():
        ffibuilder.cdef(header.read_text())
    includes = "\n".join(f'#include "{h.name}"' for h in _headers())
    libs = [flag[2:] for flag in _pkg_config("--libs") if flag.startswith("-l")] or ["bpf"]
    # setuptools wants sources relative to the project root, where the build runs.
    sources = sorted(f"{HERE.name}/{p.name}" for p in HERE.glob("*.c") if p.name != "_ffi.c")
    ffibuilder.set_source(
        "xdptest._native._ffi",
        includes,
        sources=sources,
        include_dirs=[HERE.name],
        libraries=libs,
        extra_compile_args=[
            "-O2", "-g", "-Wall", "-Wno-unused-function",
            "-Werror=implicit-function-declaration", "-std=gnu11",
        ],
    )
    return ffibuilder


ffibuilder = make_ffibuilder()
