"""Finding clang and compiling BPF C sources (used by the build and at run time).

Standard library only: ``setup.py`` imports this module before the kit's dependencies exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from xdptest.errors import CompileError, ToolchainError

# Where the built-in programs' objects live inside the package: not a name Python could import,
# so setuptools ships it as plain package data.
BUILTIN_OBJECTS = "bpf-objects"
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-Wall", "-Wno-unused-value"]
_CLANG_NAMES = ["clang", *(f"clang-{v}" for v in range(21, 13, -1))]


def find_clang() -> str:
    """Return the clang to use: ``$XDPTEST_CLANG``, else ``clang``, else the newest ``clang-N``."""
    wanted = os.environ.get("XDPTEST_CLANG")
    if wanted:
        path = shutil.which(wanted)
        if not path:
            raise ToolchainError(f"XDPTEST_CLANG={wanted!r} is not an executable on PATH")
        return path
    for name in _CLANG_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ToolchainError("clang not found (needed to compile BPF programs): apt-get install clang")


def _multiarch_include() -> list[str]:
    """Debian keeps asm/types.h under a multiarch directory that `clang -target bpf` skips."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    triplet = ""
    if gcc:
        try:
            triplet = subprocess.run(
                [gcc, "-print-multiarch"], capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            triplet = ""
    if not triplet:
        machine = os.uname().machine
        triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, "")
    path = Path("/usr/include") / triplet
    return [f"-I{path}"] if triplet and path.is_dir() else []


def bpf_include_flags(extra: list[str] | None = None) -> list[str]:
    flags = _multiarch_include()
    if not any(Path(p, "bpf", "bpf_helpers.h").exists() for p in ["/usr/include", "/usr/local/include"]):
        raise ToolchainError(
            "bpf/bpf_helpers.h not found (needed to compile BPF programs): apt-get install libbpf-dev"
        )
    return flags + list(extra or [])


def compile_bpf(source: Path, target: Path, include_dirs: list[Path] | None = None) -> Path:
    """Compile one BPF C file into an ELF object with clang; raise with clang's output on failure."""
    clang = find_clang()
    flags = bpf_include_flags([f"-I{d}" for d in (include_dirs or [])] + [f"-I{source.parent}"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cmd = [clang, *BPF_CFLAGS, *flags, "-c", str(source), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise CompileError(
            f"clang could not compile {source}:\n{proc.stderr.strip()}", proc.stderr
        )
    os.replace(tmp, target)
    return target
